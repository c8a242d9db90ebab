package audio

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

func sine(n, rate int, freq, amp float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return out
}

// fitSine returns the amplitude and phase of the component at freq in x[lo:hi] (least
// squares on sin/cos) and the RMS of what is left over.
func fitSine(x []float32, rate int, freq float64, lo, hi int) (amp, phase, residualRMS float64) {
	var ss, sc, cc, xs, xc float64
	for i := lo; i < hi; i++ {
		w := 2 * math.Pi * freq * float64(i) / float64(rate)
		s, c := math.Sin(w), math.Cos(w)
		ss += s * s
		sc += s * c
		cc += c * c
		xs += float64(x[i]) * s
		xc += float64(x[i]) * c
	}
	det := ss*cc - sc*sc
	a := (xs*cc - xc*sc) / det // sin coefficient
	b := (xc*ss - xs*sc) / det // cos coefficient
	var res float64
	for i := lo; i < hi; i++ {
		w := 2 * math.Pi * freq * float64(i) / float64(rate)
		d := float64(x[i]) - a*math.Sin(w) - b*math.Cos(w)
		res += d * d
	}
	return math.Hypot(a, b), math.Atan2(b, a), math.Sqrt(res / float64(hi-lo))
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(1, len(x))))
}

func TestResamplePassband(t *testing.T) {
	for _, from := range []int{44100, 48000, 8000, 22050, 96000} {
		in := sine(from, from, 1000, 0.5) // one second
		out := Resample(in, from, 16000)
		if want := 16000; len(out) != want {
			t.Fatalf("%d Hz: %d samples out, want %d", from, len(out), want)
		}
		// Skip the edges, where the zero padding beyond the signal shows.
		amp, phase, res := fitSine(out, 16000, 1000, 1600, 14400)
		gainDB := 20 * math.Log10(amp/0.5)
		t.Logf("%d→16000: 1 kHz gain %+.4f dB, phase %+.4f rad, residual %.1f dB", from, gainDB, phase, 20*math.Log10(res/0.5))
		if math.Abs(gainDB) > 0.1 {
			t.Errorf("%d Hz: gain %.3f dB at 1 kHz, want within 0.1 dB", from, gainDB)
		}
		if math.Abs(phase) > 0.01 {
			t.Errorf("%d Hz: phase %.4f rad: output is delayed", from, phase)
		}
		if res > 0.5*1e-3 { // residual must be 60 dB below the tone: the frequency is right
			t.Errorf("%d Hz: residual %.2g after removing 1 kHz", from, res)
		}
	}
}

func TestResampleAntiAliasing(t *testing.T) {
	in := sine(48000, 48000, 10000, 0.5)
	out := Resample(in, 48000, 16000)
	att := 20 * math.Log10(rms(out[800:len(out)-800])/rms(in))
	t.Logf("10 kHz at 48 kHz → 16 kHz: %.1f dB", att)
	if att > -60 {
		t.Fatalf("10 kHz tone only %.1f dB down after resampling to 16 kHz, want ≤ -60", att)
	}
}

func TestResampleIdentityAndInvalid(t *testing.T) {
	in := []float32{1, 2, 3}
	out := Resample(in, 16000, 16000)
	out[0] = 9
	if in[0] != 1 || len(out) != 3 {
		t.Fatal("from == to must return a copy")
	}
	for _, r := range [][2]int{{0, 16000}, {16000, -1}, {16000, 999}, {2_000_000, 16000}, {1000, 300000}} {
		if got := Resample(in, r[0], r[1]); got != nil {
			t.Errorf("Resample(%d→%d) = %d samples, want nil", r[0], r[1], len(got))
		}
		if got := NewResampler(r[0], r[1]).Process(in); got != nil {
			t.Errorf("Resampler(%d→%d) = %d samples, want nil", r[0], r[1], len(got))
		}
	}
}

func TestResamplerStreamingEqualsOneShot(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rates := range [][2]int{{48000, 16000}, {44100, 16000}, {8000, 16000}, {16000, 44100}, {44099, 16000}} {
		in := make([]float32, 20000)
		for i := range in {
			in[i] = float32(rng.Float64()*2 - 1)
		}
		want := Resample(in, rates[0], rates[1])
		r := NewResampler(rates[0], rates[1])
		var got []float32
		for rest := in; len(rest) > 0; {
			n := min(len(rest), rng.IntN(700))
			got = append(got, r.Process(rest[:n])...)
			rest = rest[n:]
		}
		got = append(got, r.Flush()...)
		if len(got) != len(want) {
			t.Fatalf("%v: streaming gave %d samples, one-shot %d", rates, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%v: sample %d: streaming %v, one-shot %v", rates, i, got[i], want[i])
			}
		}
	}
}

func TestClipTo16kKeepsChannels(t *testing.T) {
	c := &Clip{Rate: 48000, Channels: [][]float32{sine(4800, 48000, 500, 0.3), sine(4800, 48000, 1500, 0.3)}}
	out := c.To16k()
	if out.Rate != 16000 || len(out.Channels) != 2 || len(out.Channels[0]) != 1600 || len(out.Channels[1]) != 1600 {
		t.Fatalf("got rate %d, %d channels", out.Rate, len(out.Channels))
	}
	a0, _, _ := fitSine(out.Channels[0], 16000, 500, 200, 1400)
	a1, _, _ := fitSine(out.Channels[1], 16000, 1500, 200, 1400)
	if math.Abs(a0-0.3) > 0.01 || math.Abs(a1-0.3) > 0.01 {
		t.Fatalf("channel amplitudes %.3f, %.3f; want 0.3 each", a0, a1)
	}
}

func BenchmarkResample48kTo16k(b *testing.B) {
	in := sine(48000*10, 48000, 440, 0.5)
	b.SetBytes(int64(len(in) * 4))
	b.ResetTimer()
	for b.Loop() {
		Resample(in, 48000, 16000)
	}
	b.ReportMetric(10*float64(b.N)/b.Elapsed().Seconds(), "xRT")
}

func BenchmarkDecode(b *testing.B) {
	n := 16000 * 10
	var buf bytes.Buffer
	if err := WriteWAV(&buf, 16000, [][]float32{sine(n, 16000, 440, 0.5)}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(10*float64(b.N)/b.Elapsed().Seconds(), "xRT")
}
