package ct2ggml

import "math"

// melFilters computes the Slaney-style mel filter bank Whisper was trained with (librosa's
// filters.mel with sr 16000, n_fft 400, its defaults fmin 0, fmax sr/2, htk False, norm
// "slaney"), row-major n_mels × (1 + n_fft/2), rounded as librosa rounds into float32.
// CTranslate2 directories do not carry the filters; libwhisper reads them from the file.
func melFilters(nMels, nFFT, sampleRate int) []float32 {
	nBins := 1 + nFFT/2
	fftFreqs := make([]float64, nBins)
	step := float64(sampleRate) / 2 / float64(nBins-1)
	for i := range fftFreqs {
		fftFreqs[i] = float64(i) * step
	}
	fftFreqs[nBins-1] = float64(sampleRate) / 2

	minMel, maxMel := hzToMel(0), hzToMel(float64(sampleRate)/2)
	n := nMels + 2
	melF := make([]float64, n)
	melStep := (maxMel - minMel) / float64(n-1)
	for i := range melF {
		melF[i] = melToHz(float64(i)*melStep + minMel)
	}
	melF[n-1] = melToHz(maxMel)

	w := make([]float32, nMels*nBins)
	for m := 0; m < nMels; m++ {
		lowDiff, highDiff := melF[m+1]-melF[m], melF[m+2]-melF[m+1]
		enorm := 2.0 / (melF[m+2] - melF[m])
		for k, f := range fftFreqs {
			lower := -(melF[m] - f) / lowDiff
			upper := (melF[m+2] - f) / highDiff
			v := float32(math.Max(0, math.Min(lower, upper)))
			w[m*nBins+k] = float32(float64(v) * enorm)
		}
	}
	return w
}

const (
	melFSP       = 200.0 / 3
	melMinLogHz  = 1000.0
	melMinLogMel = melMinLogHz / melFSP
)

var melLogStep = math.Log(6.4) / 27.0

func hzToMel(f float64) float64 {
	if f >= melMinLogHz {
		return melMinLogMel + math.Log(f/melMinLogHz)/melLogStep
	}
	return f / melFSP
}

func melToHz(m float64) float64 {
	if m >= melMinLogMel {
		return melMinLogHz * math.Exp(melLogStep*(m-melMinLogMel))
	}
	return melFSP * m
}

// sinusoids are Whisper's fixed encoder positions (whisper/model.py: sin of the first half
// of the channels, cos of the second, timescales from 1 to 10,000), computed in float32 as
// the reference does, then rounded through float16 as the published checkpoints hold them.
func sinusoids(length, channels int) []float32 {
	half := channels / 2
	inc := float32(math.Log(10000)) / float32(half-1)
	out := make([]float32, length*channels)
	for t := 0; t < length; t++ {
		for i := 0; i < half; i++ {
			inv := float32(math.Exp(float64(-inc * float32(i))))
			x := float32(t) * inv
			out[t*channels+i] = halfToFloat(floatToHalf(float32(math.Sin(float64(x)))))
			out[t*channels+half+i] = halfToFloat(floatToHalf(float32(math.Cos(float64(x)))))
		}
	}
	return out
}
