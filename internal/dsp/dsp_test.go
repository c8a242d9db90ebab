package dsp

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"os"
	"sort"
	"testing"

	"scribe/internal/audio"
	"scribe/internal/domain"
)

const jfkPath = "/work/shared/audio/jfk.wav"

// jfkSpeech are the speech intervals of jfk.wav, found by listening.
var jfkSpeech = []domain.Interval{{Start: 0.32, End: 2.27}, {Start: 3.27, End: 4.41}, {Start: 5.38, End: 7.68}, {Start: 8.16, End: 10.62}}

func loadJFK(t testing.TB) []float32 {
	t.Helper()
	if _, err := os.Stat(jfkPath); err != nil {
		t.Skipf("real speech sample %s not available: %v", jfkPath, err)
	}
	clip, err := audio.ReadFile(jfkPath)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Rate != Rate {
		t.Fatalf("%s is %d Hz, want %d", jfkPath, clip.Rate, Rate)
	}
	return clip.Channels[0]
}

func tone(n int, freq, amp float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/Rate))
	}
	return out
}

func dbfs(x []float32) float64 {
	var p float64
	for _, v := range x {
		p += float64(v) * float64(v)
	}
	return 10 * math.Log10(p/float64(len(x)))
}

func TestFFTMatchesDFT(t *testing.T) {
	const n = 64
	f := NewFFT(n)
	rng := rand.New(rand.NewPCG(3, 4))
	re, im := make([]float64, n), make([]float64, n)
	x := make([]complex128, n)
	for i := range n {
		re[i], im[i] = rng.NormFloat64(), rng.NormFloat64()
		x[i] = complex(re[i], im[i])
	}
	f.Transform(re, im, false)
	for k := range n {
		var want complex128
		for j := range n {
			want += x[j] * cmplx.Exp(complex(0, -2*math.Pi*float64(j*k)/n))
		}
		if cmplx.Abs(complex(re[k], im[k])-want) > 1e-9 {
			t.Fatalf("bin %d: %v, want %v", k, complex(re[k], im[k]), want)
		}
	}
	f.Transform(re, im, true)
	for j := range n {
		if cmplx.Abs(complex(re[j]/n, im[j]/n)-x[j]) > 1e-12 {
			t.Fatalf("inverse sample %d: %v, want %v", j, complex(re[j]/n, im[j]/n), x[j])
		}
	}
}

// With unit gains the STFT must reconstruct the input exactly, delayed by the latency.
func TestSuppressorPerfectReconstruction(t *testing.T) {
	s := newSuppressor(18)
	s.unity = true
	rng := rand.New(rand.NewPCG(5, 6))
	in := make([]float64, 5000)
	for i := range in {
		in[i] = rng.NormFloat64() * 0.3
	}
	var out []float64
	for rest := in; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(400))
		out = s.process(rest[:n], out)
		rest = rest[n:]
	}
	if len(out) != len(in) {
		t.Fatalf("%d samples out, want %d", len(out), len(in))
	}
	for i := range out {
		want := 0.0
		if j := i - suppressorDelay; j >= 0 {
			want = in[j]
		}
		if math.Abs(out[i]-want) > 1e-9 {
			t.Fatalf("sample %d = %v, want %v", i, out[i], want)
		}
	}
}

func TestHighPass(t *testing.T) {
	cfg := Config{HighPass: true, HighPassHz: 90, LimiterCeiling: -1}
	n := Rate * 2
	for _, tc := range []struct {
		freq, minDB, maxDB float64
	}{
		{0, math.Inf(-1), -60}, // DC
		{40, -40, -26},         // well below the cut-off: 4th order falls 24 dB/octave
		{90, -3.5, -2.5},       // Butterworth: −3 dB at the cut-off
		{1000, -0.05, 0.05},
		{6000, -0.05, 0.05},
	} {
		in := tone(n, tc.freq, 0.5)
		if tc.freq == 0 {
			for i := range in {
				in[i] = 0.5
			}
		}
		out := ProcessAll(cfg, in)
		gain := dbfs(out[n/2:]) - dbfs(in[n/2:])
		if !(gain >= tc.minDB && gain <= tc.maxDB) {
			t.Errorf("%g Hz: gain %.2f dB, want %g…%g", tc.freq, gain, tc.minDB, tc.maxDB)
		}
	}
}

// Chunked processing must give exactly what one call gives, at the documented latency.
func TestChainStreamingMatchesProcessAll(t *testing.T) {
	speech := loadJFK(t)
	in := MixAtSNR(speech, WhiteNoise(len(speech), 1), jfkSpeech, Rate, 10)
	for _, cfg := range []Config{DefaultConfig(), {HighPass: true, AGC: true}, {}} {
		want := ProcessAll(cfg, in)
		if len(want) != len(in) {
			t.Fatalf("ProcessAll gave %d samples for %d", len(want), len(in))
		}
		c := NewChain(cfg)
		rng := rand.New(rand.NewPCG(7, 8))
		var got []float32
		for rest := in; len(rest) > 0; {
			n := min(len(rest), rng.IntN(1200))
			out := c.Process(rest[:n])
			if len(out) != n {
				t.Fatalf("Process(%d samples) returned %d", n, len(out))
			}
			got = append(got, out...)
			rest = rest[n:]
		}
		got = append(got, c.Flush()...)
		lat := c.Latency()
		if len(got) != len(in)+lat {
			t.Fatalf("%d samples with flush, want %d", len(got), len(in)+lat)
		}
		for i := range lat {
			if math.Abs(float64(got[i])) > 1e-4 {
				t.Fatalf("%+v: latency sample %d = %v, want ~0", cfg, i, got[i])
			}
		}
		for i := range want {
			if got[lat+i] != want[i] {
				t.Fatalf("%+v: sample %d: streamed %v, ProcessAll %v", cfg, i, got[lat+i], want[i])
			}
		}
	}
}

func TestChainAllOffIsIdentityAndLatencyDocumented(t *testing.T) {
	in := tone(3000, 440, 0.5)
	c := NewChain(Config{LimiterCeiling: -1})
	if c.Latency() != 0 {
		t.Fatalf("latency %d with every stage off", c.Latency())
	}
	out := c.Process(in)
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("sample %d changed: %v → %v", i, in[i], out[i])
		}
	}
	if lat := NewChain(DefaultConfig()).Latency(); lat*1000/Rate > 32 {
		t.Fatalf("latency %d samples is over 32 ms", lat)
	}
}

// Acceptance: real speech in white and pink noise at 5 dB SNR gains ≥ 6 dB of SNR, and
// the speech itself keeps its level.
func TestNoiseSuppressionImprovesSNR(t *testing.T) {
	speech := loadJFK(t)
	cfg := Config{HighPass: true, NoiseSuppression: true, LimiterCeiling: -1}
	cleanOut := ProcessAll(cfg, speech)
	speechMask := inIntervals(len(speech), jfkSpeech, Rate)
	speechPow := func(x []float32) float64 {
		var p float64
		var n int
		for i, m := range speechMask {
			if m {
				p += float64(x[i]) * float64(x[i])
				n++
			}
		}
		return p / float64(n)
	}
	keep := 10 * math.Log10(speechPow(cleanOut)/speechPow(speech))
	t.Logf("clean speech through the chain: speech-interval level %+.2f dB", keep)
	if math.Abs(keep) > 2 {
		t.Errorf("clean speech level changed by %.2f dB, want within 2 dB", keep)
	}
	for _, noise := range []struct {
		name string
		gen  func(int, int64) []float32
	}{{"white", WhiteNoise}, {"pink", PinkNoise}} {
		mix := MixAtSNR(speech, noise.gen(len(speech), 42), jfkSpeech, Rate, 5)
		before := SNR(mix, jfkSpeech, Rate)
		noiseSNRRise(t, noise.name, mix, jfkSpeech)
		// The high-pass alone already removes some (pink) noise; the suppressor must earn
		// its 6 dB on top of that, not ride on it.
		highPassOnly := SNR(ProcessAll(Config{HighPass: true, LimiterCeiling: -1}, mix), jfkSpeech, Rate)
		c := NewChain(cfg)
		out := append(c.Process(mix), c.Flush()...)[c.Latency():]
		after := SNR(out, jfkSpeech, Rate)
		st := c.Stats()
		// Speech power estimate after cleaning, relative to the clean speech's.
		var pn, nn float64
		for i, m := range speechMask {
			if !m {
				pn += float64(out[i]) * float64(out[i])
				nn++
			}
		}
		speechKept := 10 * math.Log10((speechPow(out)-pn/nn)/speechPow(speech))
		t.Logf("%s noise: SNR %.2f dB → %.2f dB (%+.2f dB; high-pass alone %.2f dB); speech level %+.2f dB; noise floor %.1f dBFS; in %.1f dBFS, out %.1f dBFS",
			noise.name, before, after, after-before, highPassOnly, speechKept, st.NoiseFloorDBFS, st.InputDBFS, st.OutputDBFS)
		if math.Abs(before-5) > 0.5 { // jfk.wav's own background adds a little noise
			t.Errorf("%s: mixture SNR %.2f dB, want 5", noise.name, before)
		}
		if after-before < 6 || after-highPassOnly < 6 {
			t.Errorf("%s: SNR rose %.2f dB (%.2f dB over the high-pass alone), want ≥ 6", noise.name, after-before, after-highPassOnly)
		}
		if math.Abs(speechKept) > 3 {
			t.Errorf("%s: speech level changed %.2f dB, want within 3 dB", noise.name, speechKept)
		}
	}
}

// noiseSNRRise checks the SNR rise when speech starts at the very first sample: the
// noise estimate then starts on speech and must still settle.
func noiseSNRRise(t *testing.T, name string, mix []float32, ivs []domain.Interval) {
	t.Helper()
	skip := ivs[0].Start
	cut := mix[int(skip*Rate):]
	shifted := make([]domain.Interval, len(ivs))
	for i, iv := range ivs {
		shifted[i] = domain.Interval{Start: iv.Start - skip, End: iv.End - skip}
	}
	before := SNR(cut, shifted, Rate)
	after := SNR(ProcessAll(Config{HighPass: true, NoiseSuppression: true, LimiterCeiling: -1}, cut), shifted, Rate)
	t.Logf("%s noise, speech from the first sample: SNR %.2f dB → %.2f dB (%+.2f dB)", name, before, after, after-before)
	if after-before < 6 {
		t.Errorf("%s noise, speech from the first sample: SNR rose %.2f dB, want ≥ 6", name, after-before)
	}
}

// For VAD after cleaning, speech frames must keep their speech-band energy: frame by
// frame (32 ms) where speech is above the noise in the 300–3400 Hz band, that band's
// energy after the chain must stay close to the clean speech's.
func TestSpeechFramesKeepSpeechBand(t *testing.T) {
	speech := loadJFK(t)
	mix := MixAtSNR(speech, PinkNoise(len(speech), 11), jfkSpeech, Rate, 5)
	cfg := DefaultConfig()
	cfg.AGC = false
	out := ProcessAll(cfg, mix)
	mask := inIntervals(len(speech), jfkSpeech, Rate)
	var devs []float64
	for start := 0; start+frameSize <= len(speech); start += frameSize {
		if !mask[start] || !mask[start+frameSize-1] {
			continue
		}
		clean := bandPower(speech[start:start+frameSize], 300, 3400)
		noise := make([]float32, frameSize)
		for i := range noise {
			noise[i] = mix[start+i] - speech[start+i]
		}
		if clean < bandPower(noise, 300, 3400) {
			continue // speech under the noise here: no suppressor can keep it whole
		}
		devs = append(devs, 10*math.Log10(bandPower(out[start:start+frameSize], 300, 3400)/clean))
	}
	sort.Float64s(devs)
	median, p10, p90 := devs[len(devs)/2], devs[len(devs)/10], devs[len(devs)*9/10]
	t.Logf("%d speech frames with band SNR ≥ 0 dB: speech-band energy change vs clean speech: median %+.2f dB, 10th %+.2f, 90th %+.2f", len(devs), median, p10, p90)
	if math.Abs(median) > 2 || p10 < -5 || p90 > 3 {
		t.Fatalf("speech-band energy not kept: median %+.2f dB, 10th %+.2f, 90th %+.2f", median, p10, p90)
	}
}

// The suppressor backs off on speech that is already clean — suppressing it cost a real
// speech model words (jfk.wav's "Americans") — and suppresses fully in real noise: on
// jfk.wav as recorded (about 24 dB SNR) and with pink noise at 30 dB it leaves the audio
// within 1 dB of the high-pass alone in every 32 ms frame of speech, while at 10 dB it
// still raises the SNR by 6 dB or more.
func TestSuppressionFollowsTheSNR(t *testing.T) {
	speech := loadJFK(t)
	hp := Config{HighPass: true, LimiterCeiling: -1}
	ns := Config{HighPass: true, NoiseSuppression: true, LimiterCeiling: -1}
	for _, c := range []struct {
		name  string
		audio []float32
	}{{"as recorded", speech}, {"pink 30 dB", MixAtSNR(speech, PinkNoise(len(speech), 5), jfkSpeech, Rate, 30)}} {
		a, b := ProcessAll(hp, c.audio), ProcessAll(ns, c.audio)
		worst := 0.0
		mask := inIntervals(len(speech), jfkSpeech, Rate)
		// From the second speech interval on: the SNR estimate needs speech to learn from.
		for start := int(jfkSpeech[1].Start * Rate); start+frameSize <= len(speech); start += frameSize {
			if !mask[start] {
				continue
			}
			d := 10 * math.Log10(power(b[start:start+frameSize])/power(a[start:start+frameSize]))
			worst = max(worst, math.Abs(d))
		}
		t.Logf("%s: largest change by the suppressor in a speech frame %.2f dB", c.name, worst)
		if worst > 1 {
			t.Errorf("%s: the suppressor changed a speech frame by %.2f dB; clean speech should pass", c.name, worst)
		}
	}
	mix := MixAtSNR(speech, PinkNoise(len(speech), 9), jfkSpeech, Rate, 10)
	before := SNR(ProcessAll(hp, mix), jfkSpeech, Rate)
	after := SNR(ProcessAll(ns, mix), jfkSpeech, Rate)
	t.Logf("pink 10 dB: SNR after the high-pass %.2f dB, after suppression %.2f dB", before, after)
	if after-before < 6 {
		t.Errorf("pink 10 dB: suppression raised the SNR %.2f dB, want ≥ 6", after-before)
	}
}

func power(x []float32) float64 {
	var p float64
	for _, v := range x {
		p += float64(v) * float64(v)
	}
	return p/float64(max(len(x), 1)) + 1e-20
}
