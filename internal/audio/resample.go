package audio

import (
	"math"
)

// Resampler design. Conversion from rate `from` to rate `to` is done as rational
// polyphase filtering: with g = gcd(from, to), L = to/g and M = from/g, output sample n
// sits at input time t = n·M/L. Its value is Σ_k x[k]·h(t−k), where h is a
// Kaiser-windowed sinc low-pass expressed in input-sample units. The fractional part of
// t takes only L values, so h is tabulated once per phase.
//
// The cut-off sits at 45 % of the lower rate with a transition band of 10 % of the lower
// rate, so the pass band runs flat to 40 % of the lower rate (6.4 kHz when the target is
// 16 kHz) and everything from the lower Nyquist frequency up is at least stopbandDB down
// before it could alias.
const (
	cutoffFraction     = 0.45 // of the lower rate
	transitionFraction = 0.10 // of the lower rate
	stopbandDB         = 80.0
	// maxTableTaps bounds the precomputed coefficient table. Rates with a huge L (e.g.
	// 44099 → 16000) compute coefficients on the fly instead.
	maxTableTaps = 1 << 20
)

// Resample converts in from rate `from` to rate `to` (Hz) with an anti-aliasing
// windowed-sinc filter and no delay: output sample n is the band-limited input at time
// n·from/to. The output has ceil(len(in)·to/from) samples. from == to returns a copy.
// Rates outside [MinRate, 1 MHz], or a ratio between them above 256, are not resampling
// requests we serve and return nil.
func Resample(in []float32, from, to int) []float32 {
	if !validRates(from, to) {
		return nil
	}
	if from == to {
		return append([]float32(nil), in...)
	}
	r := NewResampler(from, to)
	out := make([]float32, 0, outputLen(int64(len(in)), r.up, r.down))
	out = r.appendProcess(out, in)
	return r.appendFlush(out)
}

// MinRate is the lowest sample rate Decode and Resample accept.
const MinRate = 1000

// maxRatio bounds from/to and to/from: the filter length grows with the ratio.
const maxRatio = 256

func validRates(from, to int) bool {
	return from >= MinRate && to >= MinRate && from <= maxRate && to <= maxRate &&
		from <= maxRatio*to && to <= maxRatio*from
}

func outputLen(n int64, up, down int) int64 {
	return (n*int64(up) + int64(down) - 1) / int64(down)
}

// Resampler is the streaming form of Resample for live capture. The concatenation of
// every Process output followed by Flush equals Resample of the concatenated input,
// whatever the chunk sizes. Latency is the filter's half-length: HalfTaps input samples
// (about 1.6 ms at 48 kHz). A Resampler is not safe for concurrent use.
type Resampler struct {
	up, down int // L and M
	half     int // taps each side of the output instant, in input samples
	scale    float64
	table    []float32 // up phases × 2·half taps, or nil when computed on the fly
	scratch  []float32 // one phase's taps when there is no table
	scratchP int       // the phase held in scratch, −1 for none

	identity bool
	invalid  bool

	// hist holds input samples from absolute index histStart on.
	hist      []float32
	histStart int64
	consumed  int64 // input samples received
	// Next output: at input time base + phase/up.
	base   int64
	phase  int
	flushd bool
}

// NewResampler returns a streaming resampler from rate `from` to rate `to`. Invalid rates
// (see Resample) give a resampler whose Process returns nil.
func NewResampler(from, to int) *Resampler {
	if !validRates(from, to) {
		return &Resampler{invalid: true}
	}
	if from == to {
		return &Resampler{identity: true, up: 1, down: 1}
	}
	g := gcd(from, to)
	r := &Resampler{up: to / g, down: from / g}
	lower := float64(min(from, to))
	// Cut-off and transition width in cycles per input sample.
	fc := cutoffFraction * lower / float64(from)
	df := transitionFraction * lower / float64(from)
	// Kaiser's estimate of the filter length for the wanted attenuation.
	taps := (stopbandDB - 7.95) / (14.36 * df)
	r.half = int(math.Ceil(taps / 2))
	r.scale = 2 * fc
	if r.up*2*r.half <= maxTableTaps {
		r.table = make([]float32, r.up*2*r.half)
		for p := range r.up {
			r.fillPhase(r.table[p*2*r.half:(p+1)*2*r.half], p)
		}
	}
	return r
}

// HalfTaps is the number of input samples the resampler looks ahead (its latency).
func (r *Resampler) HalfTaps() int { return r.half }

var kaiserBeta = 0.1102 * (stopbandDB - 8.7)

// fillPhase computes the taps for fractional offset p/up, normalised to unit sum so DC
// passes exactly at every phase. Tap j multiplies input sample base−half+1+j.
func (r *Resampler) fillPhase(dst []float32, p int) {
	frac := float64(p) / float64(r.up)
	i0beta := besselI0(kaiserBeta)
	var sum float64
	coef := make([]float64, len(dst))
	for j := range dst {
		t := frac + float64(r.half-1-j) // time from tap to output instant
		x := t / float64(r.half)
		if x <= -1 || x >= 1 {
			continue
		}
		w := besselI0(kaiserBeta*math.Sqrt(1-x*x)) / i0beta
		c := r.scale * sinc(r.scale*t) * w
		coef[j] = c
		sum += c
	}
	for j := range dst {
		dst[j] = float32(coef[j] / sum)
	}
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the modified Bessel function of the first kind, order 0 (power series).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1; k < 200; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Process feeds in and returns every output sample that can now be computed. The
// returned slice is newly allocated.
func (r *Resampler) Process(in []float32) []float32 {
	if r.invalid {
		return nil
	}
	if r.identity {
		return append([]float32(nil), in...)
	}
	return r.appendProcess(nil, in)
}

// Flush returns the remaining output, treating the input as zero after its end. The
// Resampler must not be used after Flush.
func (r *Resampler) Flush() []float32 {
	if r.invalid || r.identity {
		return nil
	}
	return r.appendFlush(nil)
}

func (r *Resampler) appendProcess(out, in []float32) []float32 {
	if r.flushd {
		return out
	}
	r.hist = append(r.hist, in...)
	r.consumed += int64(len(in))
	// Output at base+phase/up needs input up to base+half.
	for r.base+int64(r.half) < r.consumed {
		out = append(out, r.compute())
		r.advance()
	}
	r.trim()
	return out
}

func (r *Resampler) appendFlush(out []float32) []float32 {
	if r.flushd {
		return out
	}
	r.flushd = true
	// Outputs exist for every instant before the end of the input.
	total := outputLen(r.consumed, r.up, r.down)
	for n := r.outputsDone(); n < total; n++ {
		out = append(out, r.compute())
		r.advance()
	}
	r.hist = nil
	return out
}

// outputsDone is how many outputs have been produced: base·up + phase = n·down.
func (r *Resampler) outputsDone() int64 {
	return (r.base*int64(r.up) + int64(r.phase)) / int64(r.down)
}

func (r *Resampler) advance() {
	r.phase += r.down
	r.base += int64(r.phase / r.up)
	r.phase %= r.up
}

// trim drops history no future output can reach.
func (r *Resampler) trim() {
	keepFrom := r.base - int64(r.half) + 1
	if drop := keepFrom - r.histStart; drop > 0 && drop >= int64(len(r.hist)/2) {
		drop = min(drop, int64(len(r.hist)))
		n := copy(r.hist, r.hist[drop:])
		r.hist = r.hist[:n]
		r.histStart += drop
	}
}

// compute evaluates the output at base + phase/up; input outside what was received
// counts as zero.
func (r *Resampler) compute() float32 {
	taps := 2 * r.half
	var coef []float32
	if r.table != nil {
		coef = r.table[r.phase*taps : (r.phase+1)*taps]
	} else {
		if r.scratch == nil {
			r.scratch = make([]float32, taps)
			r.scratchP = -1
		}
		if r.scratchP != r.phase {
			r.fillPhase(r.scratch, r.phase)
			r.scratchP = r.phase
		}
		coef = r.scratch
	}
	first := r.base - int64(r.half) + 1 // absolute index of tap 0
	lo := max(first, r.histStart)
	hi := min(first+int64(taps), r.histStart+int64(len(r.hist)))
	if lo >= hi {
		return 0
	}
	x := r.hist[lo-r.histStart : hi-r.histStart]
	c := coef[lo-first : hi-first]
	var acc float32
	for i, v := range x {
		acc += v * c[i]
	}
	return acc
}

// To16k returns the clip resampled to 16 kHz, channel by channel. A clip already at
// 16 kHz is copied. Every clip Decode returns has a rate Resample accepts; for a clip
// built by hand with a rate below MinRate the channels come back nil.
func (c *Clip) To16k() *Clip {
	const rate = 16000
	out := &Clip{Rate: rate, Channels: make([][]float32, len(c.Channels))}
	for i, ch := range c.Channels {
		out.Channels[i] = Resample(ch, c.Rate, rate)
	}
	return out
}
