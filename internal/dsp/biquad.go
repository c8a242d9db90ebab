package dsp

import "math"

// biquad is a direct-form-I second-order section with float64 state.
type biquad struct {
	b0, b1, b2, a1, a2 float64
	x1, x2, y1, y2     float64
}

// newHighPass returns a high-pass biquad (bilinear transform of the analogue prototype
// with quality factor q, cut-off prewarped to fc).
func newHighPass(fc, q, rate float64) *biquad {
	w := 2 * math.Pi * fc / rate
	alpha := math.Sin(w) / (2 * q)
	cw := math.Cos(w)
	a0 := 1 + alpha
	return &biquad{
		b0: (1 + cw) / 2 / a0,
		b1: -(1 + cw) / a0,
		b2: (1 + cw) / 2 / a0,
		a1: -2 * cw / a0,
		a2: (1 - alpha) / a0,
	}
}

func (f *biquad) step(x float64) float64 {
	y := f.b0*x + f.b1*f.x1 + f.b2*f.x2 - f.a1*f.y1 - f.a2*f.y2
	// Flush denormals: after long silence the state decays into subnormals, which are slow.
	if math.Abs(y) < 1e-30 {
		y = 0
	}
	f.x2, f.x1 = f.x1, x
	f.y2, f.y1 = f.y1, y
	return y
}

// highPass4 is a 4th-order Butterworth high-pass: two biquads whose Qs are those of the
// Butterworth pole pairs. It also removes DC.
type highPass4 struct{ s1, s2 *biquad }

func newHighPass4(fc, rate float64) *highPass4 {
	return &highPass4{
		s1: newHighPass(fc, 1/(2*math.Cos(math.Pi/8)), rate),
		s2: newHighPass(fc, 1/(2*math.Cos(3*math.Pi/8)), rate),
	}
}

func (h *highPass4) step(x float64) float64 { return h.s2.step(h.s1.step(x)) }
