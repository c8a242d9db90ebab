// Package dsp is scribe's audio clean-up chain for 16 kHz mono speech: DC removal and
// high-pass, STFT noise suppression with a tracked noise floor, and automatic gain with a
// peak limiter. It runs live on arbitrary-sized chunks (one Chain per channel) and offline
// through ProcessAll; both give the same samples. It also has the test-signal helpers
// (white and pink noise, mixing at a given SNR, an SNR estimate) that the tests, corpus
// renderer and benchmarks share.
package dsp

import (
	"math"

	"scribe/internal/domain"
)

// Rate is the sample rate the chain is designed for.
const Rate = domain.SampleRate

// Config switches and tunes the stages. Zero numeric fields take the defaults, and
// out-of-range values are clamped (noted per field), so any Config yields a working
// chain.
type Config struct {
	// HighPass enables DC removal plus a 4th-order Butterworth high-pass at HighPassHz
	// (default 90, clamped to 20–1000) to cut rumble, handling noise and mains hum.
	HighPass   bool
	HighPassHz float64
	// NoiseSuppression enables the STFT noise suppressor. NoiseReductionDB is the most
	// it attenuates any bin (default 18, clamped to 3–40): a floor keeps residual noise
	// smooth instead of "musical".
	NoiseSuppression bool
	NoiseReductionDB float64
	// AGC enables the slow gain toward TargetDBFS (speech RMS, default −20, clamped to
	// −40…−6), boosting by at most MaxGainDB (default 30, clamped to 0–50). Gain only
	// moves during speech.
	AGC        bool
	TargetDBFS float64
	MaxGainDB  float64
	// LimiterCeiling is the peak limit the output never exceeds (default 0.98; values
	// above 1 are clamped to 1). A negative value disables the limiter.
	LimiterCeiling float64
}

// DefaultConfig enables every stage with its default settings.
func DefaultConfig() Config {
	return Config{
		HighPass: true, HighPassHz: 90,
		NoiseSuppression: true, NoiseReductionDB: 18,
		AGC: true, TargetDBFS: -20, MaxGainDB: 30,
		LimiterCeiling: 0.98,
	}
}

func (c Config) normalized() Config {
	def := DefaultConfig()
	orDefault := func(v, d, lo, hi float64) float64 {
		if v == 0 || math.IsNaN(v) {
			return d
		}
		return math.Max(lo, math.Min(hi, v))
	}
	c.HighPassHz = orDefault(c.HighPassHz, def.HighPassHz, 20, 1000)
	c.NoiseReductionDB = orDefault(c.NoiseReductionDB, def.NoiseReductionDB, 3, 40)
	c.TargetDBFS = orDefault(c.TargetDBFS, def.TargetDBFS, -40, -6)
	if math.IsNaN(c.MaxGainDB) || c.MaxGainDB <= 0 {
		c.MaxGainDB = def.MaxGainDB
	}
	c.MaxGainDB = math.Min(c.MaxGainDB, 50)
	switch {
	case c.LimiterCeiling < 0:
		c.LimiterCeiling = 0 // disabled
	case c.LimiterCeiling == 0 || math.IsNaN(c.LimiterCeiling):
		c.LimiterCeiling = def.LimiterCeiling
	case c.LimiterCeiling > 1:
		c.LimiterCeiling = 1
	}
	return c
}

// Stats are running measurements of a chain. Levels are 20·log10(RMS) of everything
// processed so far (a full-scale sine is −3 dBFS); −Inf before any audio or for silence.
type Stats struct {
	Samples         int64   // input samples processed
	InputDBFS       float64 // chain input
	HighPassDBFS    float64 // after the high-pass (equals input when off)
	SuppressedDBFS  float64 // after noise suppression (equals the previous stage when off)
	OutputDBFS      float64 // chain output
	NoiseFloorDBFS  float64 // current noise estimate: the suppressor's when on, else the AGC's block-level floor; NaN before the first estimate
	SpeechLevelDBFS float64 // speech level the AGC tracks (before its gain); NaN before any speech
	AGCGainDB       float64 // gain the AGC currently aims at (0 when off)
	LimiterHits     int64   // samples where the limiter had to pull the gain down
}

// Chain is one channel's streaming clean-up chain. It is not safe for concurrent use.
type Chain struct {
	cfg     Config
	hp      *highPass4
	ns      *suppressor
	agc     *agc
	buf     []float64 // scratch, reused between calls
	nsOut   []float64 // scratch for the suppressor output
	flushed bool

	samples                     int64
	inPow, hpPow, nsPow, outPow float64
}

// NewChain builds a chain for 16 kHz mono audio.
func NewChain(cfg Config) *Chain {
	cfg = cfg.normalized()
	c := &Chain{cfg: cfg, agc: newAGC(cfg)}
	if cfg.HighPass {
		c.hp = newHighPass4(cfg.HighPassHz, Rate)
	}
	if cfg.NoiseSuppression {
		c.ns = newSuppressor(cfg.NoiseReductionDB)
	}
	return c
}

// Latency is the chain's delay in samples: Process output sample i is the processed
// input sample i−Latency (zeros before). It is 511 samples (31.9 ms) with noise
// suppression, the STFT frame less one sample, and 0 without.
func (c *Chain) Latency() int {
	if c.ns != nil {
		return suppressorDelay
	}
	return 0
}

// maxInput bounds input samples (24 dB over full scale) so absurd values cannot overflow
// the power sums into Inf and NaN.
const maxInput = 16

// Process cleans a chunk of any size and returns as many samples, delayed by Latency.
// Non-finite input samples are treated as 0 and magnitudes beyond 16 are clipped. After
// Flush it returns nil.
func (c *Chain) Process(in []float32) []float32 {
	if c.flushed {
		return nil
	}
	c.samples += int64(len(in))
	return c.run(in)
}

// Flush returns the last Latency samples still inside the chain, so that Process outputs
// followed by Flush hold the whole processed input after Latency leading samples. The
// chain must not be used afterwards.
func (c *Chain) Flush() []float32 {
	if c.flushed {
		return nil
	}
	out := c.run(make([]float32, c.Latency()))
	c.flushed = true
	return out
}

func (c *Chain) run(in []float32) []float32 {
	buf := c.buf[:0]
	for _, v := range in {
		x := float64(v)
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			x = 0
		case math.Abs(x) > maxInput:
			x = math.Copysign(maxInput, x)
		}
		c.inPow += x * x
		if c.hp != nil {
			x = c.hp.step(x)
		}
		c.hpPow += x * x
		buf = append(buf, x)
	}
	if c.ns != nil {
		c.nsOut = c.ns.process(buf, c.nsOut[:0])
		buf, c.nsOut = c.nsOut, buf
	}
	out := make([]float32, len(buf))
	for i, x := range buf {
		c.nsPow += x * x
		y := c.agc.step(x)
		c.outPow += y * y
		out[i] = float32(y)
		if lim := c.cfg.LimiterCeiling; lim > 0 && math.Abs(float64(out[i])) > lim {
			// Rounding to float32 can land just above the ceiling; step back inside.
			out[i] = math.Nextafter32(out[i], 0)
		}
	}
	c.buf = buf[:0]
	return out
}

// Stats reports the chain's running measurements.
func (c *Chain) Stats() Stats {
	db := func(pow float64) float64 {
		if c.samples == 0 {
			return math.Inf(-1)
		}
		return 10 * math.Log10(pow/float64(c.samples))
	}
	s := Stats{
		Samples:         c.samples,
		InputDBFS:       db(c.inPow),
		HighPassDBFS:    db(c.hpPow),
		SuppressedDBFS:  db(c.nsPow),
		OutputDBFS:      db(c.outPow),
		NoiseFloorDBFS:  c.agc.floorDB,
		SpeechLevelDBFS: c.agc.speechLevelDB(),
		LimiterHits:     c.agc.limiterHit,
	}
	if c.cfg.AGC {
		s.AGCGainDB = c.agc.gainDB
	}
	if c.ns != nil {
		s.NoiseFloorDBFS = math.NaN()
		if p := c.ns.noisePower(); c.ns.frames > 0 {
			s.NoiseFloorDBFS = 10 * math.Log10(p+1e-20)
		}
	}
	return s
}

// ProcessAll runs a fresh chain over in and returns the cleaned audio aligned with the
// input (latency removed), the same length as in.
func ProcessAll(cfg Config, in []float32) []float32 {
	c := NewChain(cfg)
	out := c.Process(in)
	out = append(out, c.Flush()...)
	return out[c.Latency():]
}
