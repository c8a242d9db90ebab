package dsp

import "math"

// AGC levels are measured on 10 ms blocks; the applied gain is smoothed per sample.
const (
	agcBlock = 160
	// agcFloorRiseDB is how fast (dB per block, 3 dB/s) the block-level noise floor may
	// rise; it falls at once to any quieter block.
	agcFloorRiseDB = 0.03
	// agcSpeechAboveFloorDB: a block this far above the floor counts as speech.
	agcSpeechAboveFloorDB = 10.0
	// agcMinSpeechDBFS: quieter blocks are never speech, so hiss is never boosted.
	agcMinSpeechDBFS = -70.0
	// agcDigitalSilenceDBFS: blocks below this are ignored altogether.
	agcDigitalSilenceDBFS = -100.0
	agcLevelAlpha         = 0.99   // speech level average over ~1 s of speech blocks
	agcUpDB               = 0.12   // max gain rise per speech block: 12 dB/s
	agcDownDB             = 0.4    // max gain fall per speech block: 40 dB/s
	agcMaxCutDB           = 20.0   // loud voices are turned down at most this much
	agcSmoothAlpha        = 0.994  // per-sample gain smoothing, ~10 ms
	limiterRelease        = 0.9992 // per-sample limiter recovery, ~80 ms
)

// agc moves a slow gain toward a target speech level, frozen outside speech, followed by
// an instant-attack peak limiter that guarantees |out| ≤ ceiling.
type agc struct {
	enabled    bool
	targetDB   float64
	maxGainDB  float64
	ceiling    float64 // 0 disables the limiter
	blockPow   float64
	blockN     int
	floorDB    float64
	speechPow  float64 // 0 until the first speech block
	gainDB     float64
	gainLin    float64 // smoothed applied gain
	limGain    float64
	limiterHit int64
}

func newAGC(cfg Config) *agc {
	return &agc{
		enabled:   cfg.AGC,
		targetDB:  cfg.TargetDBFS,
		maxGainDB: cfg.MaxGainDB,
		ceiling:   cfg.LimiterCeiling,
		floorDB:   math.NaN(),
		gainLin:   1,
		limGain:   1,
	}
}

func (a *agc) step(x float64) float64 {
	a.blockPow += x * x
	a.blockN++
	if a.blockN == agcBlock {
		a.endBlock()
	}
	if a.enabled {
		target := math.Pow(10, a.gainDB/20)
		a.gainLin = agcSmoothAlpha*a.gainLin + (1-agcSmoothAlpha)*target
		x *= a.gainLin
	}
	if a.ceiling <= 0 {
		return x
	}
	if ax := math.Abs(x); ax*a.limGain > a.ceiling {
		a.limGain = a.ceiling / ax
		a.limiterHit++
	} else {
		a.limGain = limiterRelease*a.limGain + (1 - limiterRelease)
	}
	y := x * a.limGain
	// Rounding in ceiling/ax can leave y a hair above the ceiling.
	return math.Max(-a.ceiling, math.Min(a.ceiling, y))
}

func (a *agc) endBlock() {
	pow := a.blockPow / agcBlock
	a.blockPow, a.blockN = 0, 0
	level := 10 * math.Log10(pow+1e-20)
	if level < agcDigitalSilenceDBFS {
		// Digital silence (the chain's latency zeros, a muted input) is neither noise nor
		// speech; taken as the floor it would make any later noise look like speech.
		return
	}
	if math.IsNaN(a.floorDB) || level < a.floorDB {
		a.floorDB = level
	} else {
		a.floorDB += agcFloorRiseDB
	}
	if level < a.floorDB+agcSpeechAboveFloorDB || level < agcMinSpeechDBFS {
		return // not speech: gain stays frozen
	}
	if a.speechPow == 0 {
		a.speechPow = pow
	} else {
		a.speechPow = agcLevelAlpha*a.speechPow + (1-agcLevelAlpha)*pow
	}
	want := a.targetDB - 10*math.Log10(a.speechPow)
	want = math.Max(-agcMaxCutDB, math.Min(a.maxGainDB, want))
	switch {
	case want > a.gainDB:
		a.gainDB = math.Min(want, a.gainDB+agcUpDB)
	case want < a.gainDB:
		a.gainDB = math.Max(want, a.gainDB-agcDownDB)
	}
}

// speechLevelDB is the tracked speech level before gain, or NaN before any speech.
func (a *agc) speechLevelDB() float64 {
	if a.speechPow == 0 {
		return math.NaN()
	}
	return 10 * math.Log10(a.speechPow)
}
