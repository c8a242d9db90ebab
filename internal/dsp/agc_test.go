package dsp

import (
	"math"
	"testing"

	"scribe/internal/domain"
)

// speechLevel is the mean-square level in dBFS over the speech intervals.
func speechLevel(x []float32, ivs []domain.Interval) float64 {
	mask := inIntervals(len(x), ivs, Rate)
	var p float64
	var n int
	for i, m := range mask {
		if m {
			p += float64(x[i]) * float64(x[i])
			n++
		}
	}
	return 10 * math.Log10(p/float64(n))
}

func scaled(x []float32, gain float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(float64(v) * gain)
	}
	return out
}

// jfkTwice is jfk.wav played twice (22 s) with its speech intervals.
func jfkTwice(t *testing.T) ([]float32, []domain.Interval) {
	speech := loadJFK(t)
	dur := float64(len(speech)) / Rate
	ivs := append([]domain.Interval(nil), jfkSpeech...)
	for _, iv := range jfkSpeech {
		ivs = append(ivs, domain.Interval{Start: iv.Start + dur, End: iv.End + dur})
	}
	return append(append([]float32(nil), speech...), speech...), ivs
}

func TestAGCBoostsWeakVoiceToTarget(t *testing.T) {
	speech, ivs := jfkTwice(t)
	weak := scaled(speech, math.Pow(10, (-40-speechLevel(speech, ivs))/20))
	cfg := DefaultConfig()
	c := NewChain(cfg)
	out := append(c.Process(weak), c.Flush()...)[c.Latency():]
	// Judge the second playing, once the gain has settled.
	second := ivs[len(jfkSpeech):]
	in2, out2 := speechLevel(weak, second), speechLevel(out, second)
	st := c.Stats()
	t.Logf("weak voice: speech %.1f dBFS in → %.1f dBFS out (target %.0f); AGC gain %.1f dB, tracked speech level %.1f dBFS, limiter hits %d",
		in2, out2, cfg.TargetDBFS, st.AGCGainDB, st.SpeechLevelDBFS, st.LimiterHits)
	if math.Abs(out2-cfg.TargetDBFS) > 3 {
		t.Fatalf("weak voice came out at %.1f dBFS, want %.0f ± 3", out2, cfg.TargetDBFS)
	}
}

func TestAGCRespectsMaxGain(t *testing.T) {
	speech, ivs := jfkTwice(t)
	faint := scaled(speech, math.Pow(10, (-60-speechLevel(speech, ivs))/20))
	cfg := Config{AGC: true, MaxGainDB: 12}
	out := ProcessAll(cfg, faint)
	gain := speechLevel(out, ivs[len(jfkSpeech):]) - speechLevel(faint, ivs[len(jfkSpeech):])
	if gain > 12.5 || gain < 9 {
		t.Fatalf("gain %.1f dB on a -60 dBFS voice with MaxGainDB 12", gain)
	}
}

// Noise alone is not speech: the AGC must not pump it up.
func TestAGCFrozenInNoise(t *testing.T) {
	noise := scaled(WhiteNoise(Rate*10, 9), 0.1) // -40 dBFS
	c := NewChain(DefaultConfig())
	c.Process(noise)
	if g := c.Stats().AGCGainDB; math.Abs(g) > 1 {
		t.Fatalf("AGC gain moved to %.1f dB on noise alone", g)
	}
}

func TestLimiterNeverExceedsCeiling(t *testing.T) {
	speech := loadJFK(t)
	loud := scaled(speech, 8) // peaks far beyond full scale
	for _, x := range []float32{float32(math.NaN()), float32(math.Inf(1)), 50, -50} {
		loud[1000] = x
	}
	for _, cfg := range []Config{DefaultConfig(), {LimiterCeiling: 0.5}, {AGC: true, MaxGainDB: 50, TargetDBFS: -6}} {
		c := NewChain(cfg)
		out := append(c.Process(loud), c.Flush()...)
		ceiling := cfg.normalized().LimiterCeiling
		for i, v := range out {
			if !(math.Abs(float64(v)) <= ceiling) {
				t.Fatalf("%+v: sample %d = %v beyond ceiling %v", cfg, i, v, ceiling)
			}
		}
		if c.Stats().LimiterHits == 0 {
			t.Fatalf("%+v: limiter never engaged on an 8× overdriven input", cfg)
		}
	}
}

func TestStatsNoiseFloor(t *testing.T) {
	noise := scaled(WhiteNoise(Rate*3, 5), 0.1) // -40 dBFS
	for _, cfg := range []Config{{NoiseSuppression: true}, {AGC: true}} {
		c := NewChain(cfg)
		c.Process(noise)
		st := c.Stats()
		t.Logf("%+v: %+v", cfg, st)
		if math.Abs(st.InputDBFS+40) > 0.2 || st.Samples != int64(len(noise)) {
			t.Fatalf("input level %.2f dBFS over %d samples, want -40 over %d", st.InputDBFS, st.Samples, len(noise))
		}
		// The AGC's floor is the quietest 10 ms block, a little under the mean.
		if st.NoiseFloorDBFS < -43 || st.NoiseFloorDBFS > -38 {
			t.Fatalf("noise floor %.1f dBFS, want about -40", st.NoiseFloorDBFS)
		}
	}
	// Noise suppression from the first frame: no noise-only calibration.
	out := ProcessAll(Config{NoiseSuppression: true}, noise)
	for i := 0; i+Rate/4 <= len(out); i += Rate / 4 {
		if att := dbfs(out[i:i+Rate/4]) - dbfs(noise[i:i+Rate/4]); att > -12 {
			t.Fatalf("noise at %.2f s only %.1f dB down", float64(i)/Rate, att)
		}
	}
}
