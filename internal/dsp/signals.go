package dsp

import (
	"math"
	"math/bits"
	"math/rand/v2"

	"scribe/internal/domain"
)

// noiseRMS is the level the noise generators produce: 0.1 RMS, −20 dBFS.
const noiseRMS = 0.1

// WhiteNoise returns n samples of Gaussian white noise at −20 dBFS RMS (σ = 0.1), the
// same for the same seed.
func WhiteNoise(n int, seed int64) []float32 {
	if n <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * noiseRMS)
	}
	return out
}

// PinkNoise returns n samples of pink (1/f, −3 dB per octave) noise, scaled to exactly
// −20 dBFS RMS, the same for the same seed. It uses the Voss–McCartney method: 11 random
// rows, row r re-drawn every 2^r samples (the row is picked by the trailing zeros of the
// sample index), summed with a fresh white term; the rows' overlapping octaves give the
// 1/f spectrum from about 10 Hz (row 10 changes every 1024 samples) up to the Nyquist
// frequency; more rows would only add inaudible sub-10 Hz power.
func PinkNoise(n int, seed int64) []float32 {
	if n <= 0 {
		return nil
	}
	const rows = 11
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6a09e667f3bcc909))
	var row [rows]float64
	var sum float64
	for r := range row {
		row[r] = rng.NormFloat64()
		sum += row[r]
	}
	raw := make([]float64, n)
	var pow float64
	for i := range raw {
		if i > 0 {
			r := bits.TrailingZeros(uint(i))
			if r < rows {
				sum -= row[r]
				row[r] = rng.NormFloat64()
				sum += row[r]
			}
		}
		v := sum + rng.NormFloat64()
		raw[i] = v
		pow += v * v
	}
	// Remove the mean (the slowest rows give a near-DC offset over short spans), then
	// scale to the nominal level.
	var mean float64
	for _, v := range raw {
		mean += v
	}
	mean /= float64(n)
	pow = 0
	for i := range raw {
		raw[i] -= mean
		pow += raw[i] * raw[i]
	}
	scale := 0.0
	if pow > 0 {
		scale = noiseRMS / math.Sqrt(pow/float64(n))
	}
	out := make([]float32, n)
	for i, v := range raw {
		out[i] = float32(v * scale)
	}
	return out
}

// inIntervals reports, per sample, whether it lies in one of the intervals.
func inIntervals(n int, ivs []domain.Interval, rate int) []bool {
	mask := make([]bool, n)
	for _, iv := range ivs {
		lo := max(0, int(math.Round(iv.Start*float64(rate))))
		hi := min(n, int(math.Round(iv.End*float64(rate))))
		for i := lo; i < hi; i++ {
			mask[i] = true
		}
	}
	return mask
}

// MixAtSNR returns speech plus noise scaled so that, over the speech intervals, the
// speech power is snrDB above the noise power (both mean squares over the same samples).
// The result has len(speech) samples; a shorter noise is repeated. Nothing is clipped.
// With no speech samples in the intervals, or silent noise, it returns a copy of speech.
func MixAtSNR(speech, noise []float32, speechIntervals []domain.Interval, rate int, snrDB float64) []float32 {
	out := append([]float32(nil), speech...)
	if len(noise) == 0 || rate <= 0 {
		return out
	}
	mask := inIntervals(len(speech), speechIntervals, rate)
	var ps, pn float64
	var count int
	for i, m := range mask {
		if m {
			s, v := float64(speech[i]), float64(noise[i%len(noise)])
			ps += s * s
			pn += v * v
			count++
		}
	}
	if count == 0 || pn == 0 {
		return out
	}
	scale := math.Sqrt(ps / pn / math.Pow(10, snrDB/10))
	for i := range out {
		out[i] += float32(scale * float64(noise[i%len(noise)]))
	}
	return out
}

// SNR estimates the signal-to-noise ratio of signal in dB, knowing where speech is.
// Samples inside the speech intervals hold speech plus noise, with mean square P_speech;
// the samples outside hold noise alone, with mean square P_noise. Assuming the noise is
// stationary and independent of the speech, the speech power is P_speech − P_noise, so
//
//	SNR = 10·log10((P_speech − P_noise) / P_noise).
//
// It returns −Inf when the speech intervals are no louder than the rest, +Inf when the
// rest is digital silence, and NaN when either set of samples is empty.
func SNR(signal []float32, speech []domain.Interval, rate int) float64 {
	if rate <= 0 {
		return math.NaN()
	}
	mask := inIntervals(len(signal), speech, rate)
	var ps, pn float64
	var ns, nn int
	for i, m := range mask {
		v := float64(signal[i])
		if m {
			ps += v * v
			ns++
		} else {
			pn += v * v
			nn++
		}
	}
	if ns == 0 || nn == 0 {
		return math.NaN()
	}
	ps /= float64(ns)
	pn /= float64(nn)
	switch {
	case ps <= pn:
		return math.Inf(-1)
	case pn == 0:
		return math.Inf(1)
	}
	return 10 * math.Log10((ps-pn)/pn)
}
