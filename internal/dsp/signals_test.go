package dsp

import (
	"math"
	"testing"

	"scribe/internal/domain"
)

// bandPower is the power of x between lo and hi Hz, from averaged 512-point periodograms.
func bandPower(x []float32, lo, hi float64) float64 {
	f := NewFFT(frameSize)
	re, im := make([]float64, frameSize), make([]float64, frameSize)
	var p float64
	for start := 0; start+frameSize <= len(x); start += frameSize {
		for i := range frameSize {
			re[i], im[i] = float64(x[start+i]), 0
		}
		f.Transform(re, im, false)
		for k := range numBins {
			if fk := float64(k) * Rate / frameSize; fk >= lo && fk < hi {
				p += re[k]*re[k] + im[k]*im[k]
			}
		}
	}
	return p
}

func TestNoiseGenerators(t *testing.T) {
	n := Rate * 8
	white, pink := WhiteNoise(n, 1), PinkNoise(n, 1)
	for name, x := range map[string][]float32{"white": white, "pink": pink} {
		if l := dbfs(x); math.Abs(l+20) > 0.2 {
			t.Errorf("%s noise at %.2f dBFS, want -20", name, l)
		}
	}
	if a, b := WhiteNoise(100, 7), WhiteNoise(100, 7); a[42] != b[42] {
		t.Error("white noise differs for the same seed")
	}
	if a, b := PinkNoise(100, 7), PinkNoise(100, 8); a[42] == b[42] {
		t.Error("pink noise the same for different seeds")
	}
	// White: equal power per hertz, so an octave holds twice the power of the one below.
	// Pink: equal power per octave.
	octaves := [][2]float64{{250, 500}, {500, 1000}, {1000, 2000}, {2000, 4000}}
	for i := 1; i < len(octaves); i++ {
		lo, hi := octaves[i-1], octaves[i]
		w := 10 * math.Log10(bandPower(white, hi[0], hi[1])/bandPower(white, lo[0], lo[1]))
		p := 10 * math.Log10(bandPower(pink, hi[0], hi[1])/bandPower(pink, lo[0], lo[1]))
		t.Logf("octave %v vs %v: white %+.2f dB, pink %+.2f dB", hi, lo, w, p)
		if math.Abs(w-3.01) > 0.5 {
			t.Errorf("white noise: octave %v is %+.2f dB over %v, want +3", hi, w, lo)
		}
		if math.Abs(p) > 1.5 {
			t.Errorf("pink noise: octave %v is %+.2f dB over %v, want 0", hi, p, lo)
		}
	}
	if WhiteNoise(0, 1) != nil || PinkNoise(-1, 1) != nil {
		t.Error("non-positive length must give nil")
	}
}

func TestSNRAndMix(t *testing.T) {
	const n = Rate * 4
	ivs := []domain.Interval{{Start: 1, End: 2}, {Start: 3, End: 3.5}}
	// A tone present only in the intervals.
	speech := make([]float32, n)
	mask := inIntervals(n, ivs, Rate)
	for i := range speech {
		if mask[i] {
			speech[i] = float32(0.3 * math.Sin(2*math.Pi*300*float64(i)/Rate))
		}
	}
	if s := SNR(speech, ivs, Rate); !math.IsInf(s, 1) {
		t.Errorf("SNR with silent gaps = %v, want +Inf", s)
	}
	for _, want := range []float64{-5, 0, 5, 20} {
		mix := MixAtSNR(speech, WhiteNoise(n/3, 3), ivs, Rate, want) // short noise gets repeated
		if len(mix) != n {
			t.Fatalf("mix has %d samples, want %d", len(mix), n)
		}
		if got := SNR(mix, ivs, Rate); math.Abs(got-want) > 0.3 {
			t.Errorf("MixAtSNR(%g dB) measures %.2f dB", want, got)
		}
	}
	noiseOnly := WhiteNoise(n, 4)
	if s := SNR(noiseOnly, ivs, Rate); !(s < -10) {
		t.Errorf("SNR of noise alone = %.1f dB, want very low", s)
	}
	if !math.IsNaN(SNR(speech, nil, Rate)) || !math.IsNaN(SNR(speech, []domain.Interval{{Start: 0, End: 100}}, Rate)) || !math.IsNaN(SNR(speech, ivs, 0)) {
		t.Error("SNR without both speech and non-speech samples must be NaN")
	}
	if got := MixAtSNR(speech, nil, ivs, Rate, 5); len(got) != n || got[Rate+10] != speech[Rate+10] {
		t.Error("MixAtSNR without noise must return the speech")
	}
}

func TestConfigNormalized(t *testing.T) {
	c := Config{HighPassHz: -5, NoiseReductionDB: 100, TargetDBFS: 3, MaxGainDB: math.NaN(), LimiterCeiling: 7}.normalized()
	if c.HighPassHz != 20 || c.NoiseReductionDB != 40 || c.TargetDBFS != -6 || c.MaxGainDB != 30 || c.LimiterCeiling != 1 {
		t.Fatalf("normalized %+v", c)
	}
	if d := (Config{}).normalized(); d.HighPassHz != 90 || d.LimiterCeiling != 0.98 || d.TargetDBFS != -20 {
		t.Fatalf("zero config normalized to %+v", d)
	}
}

func BenchmarkChain(b *testing.B) {
	in := MixAtSNR(tone(Rate*10, 300, 0.3), WhiteNoise(Rate*10, 1), []domain.Interval{{Start: 0, End: 10}}, Rate, 10)
	c := NewChain(DefaultConfig())
	const chunk = 320 // 20 ms, a typical live buffer
	b.SetBytes(int64(len(in) * 4))
	b.ResetTimer()
	for b.Loop() {
		for i := 0; i < len(in); i += chunk {
			c.Process(in[i:min(i+chunk, len(in))])
		}
	}
	b.ReportMetric(10*float64(b.N)/b.Elapsed().Seconds(), "xRT")
}
