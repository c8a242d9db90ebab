package dsp

import (
	"math"
	"math/bits"
)

// FFT is an in-place iterative radix-2 complex FFT of a fixed power-of-two size, with
// twiddles and the bit-reversal permutation precomputed. Transform only reads the tables,
// so one FFT may serve several goroutines.
type FFT struct {
	n       int
	rev     []int
	cos     []float64 // cos(2πk/n), k < n/2
	sin     []float64 // sin(2πk/n)
	logSize int
}

// NewFFT makes an FFT of size n, a power of two (a programming error otherwise: it panics).
func NewFFT(n int) *FFT {
	if n < 2 || n&(n-1) != 0 {
		panic("dsp: FFT size must be a power of two") // programming error: sizes are constants
	}
	f := &FFT{n: n, rev: make([]int, n), cos: make([]float64, n/2), sin: make([]float64, n/2)}
	f.logSize = bits.TrailingZeros(uint(n))
	for i := range n {
		f.rev[i] = int(bits.Reverse(uint(i)) >> (bits.UintSize - f.logSize))
	}
	for k := range n / 2 {
		a := 2 * math.Pi * float64(k) / float64(n)
		f.cos[k], f.sin[k] = math.Cos(a), math.Sin(a)
	}
	return f
}

// Transform computes X[k] = Σ x[n]·e^{∓2πikn/N} in place (− for forward, + for inverse;
// the inverse is not scaled by 1/N).
func (f *FFT) Transform(re, im []float64, inverse bool) {
	n := f.n
	for i, j := range f.rev {
		if i < j {
			re[i], re[j] = re[j], re[i]
			im[i], im[j] = im[j], im[i]
		}
	}
	sign := -1.0
	if inverse {
		sign = 1
	}
	for size := 2; size <= n; size <<= 1 {
		half := size / 2
		step := n / size
		for start := 0; start < n; start += size {
			for k := range half {
				wr, wi := f.cos[k*step], sign*f.sin[k*step]
				a, b := start+k, start+k+half
				tr := re[b]*wr - im[b]*wi
				ti := re[b]*wi + im[b]*wr
				re[b], im[b] = re[a]-tr, im[a]-ti
				re[a] += tr
				im[a] += ti
			}
		}
	}
}
