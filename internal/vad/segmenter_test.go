package vad

import (
	"math"
	"math/rand"
	"testing"

	"scribe/internal/domain"
)

// energyScorer stands in for Silero in unit tests: a window is speech when loud. The real
// model is exercised in internal/whisper and internal/pipeline tests.
type energyScorer struct{ resets int }

func (e *energyScorer) Reset() { e.resets++ }
func (e *energyScorer) Probs(s []float32) ([]float32, error) {
	out := make([]float32, len(s)/Window)
	for i := range out {
		var sum float64
		for _, v := range s[i*Window : (i+1)*Window] {
			sum += float64(v * v)
		}
		if math.Sqrt(sum/Window) > 0.05 {
			out[i] = 0.95
		} else {
			out[i] = 0.02
		}
	}
	return out, nil
}

// stream builds audio with loud tone bursts at the given intervals and faint noise elsewhere.
func stream(total float64, bursts []domain.Interval) []float32 {
	r := rand.New(rand.NewSource(1))
	out := make([]float32, int(total*domain.SampleRate))
	for i := range out {
		out[i] = float32(r.NormFloat64() * 0.003)
	}
	for _, b := range bursts {
		for i := int(b.Start * domain.SampleRate); i < int(b.End*domain.SampleRate) && i < len(out); i++ {
			out[i] += float32(0.3 * math.Sin(2*math.Pi*220*float64(i)/domain.SampleRate))
		}
	}
	return out
}

func run(t *testing.T, cfg Config, audio []float32, chunk int) []domain.Utterance {
	t.Helper()
	seg, err := New(cfg, &energyScorer{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var out []domain.Utterance
	for i := 0; i < len(audio); i += chunk {
		j := min(i+chunk, len(audio))
		us, err := seg.Push(audio[i:j], [][]float32{audio[i:j]})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, us...)
	}
	us, err := seg.Flush()
	if err != nil {
		t.Fatal(err)
	}
	return append(out, us...)
}

func finals(us []domain.Utterance) []domain.Utterance {
	var out []domain.Utterance
	for _, u := range us {
		if u.Final {
			out = append(out, u)
		}
	}
	return out
}

func TestSegmenterNeverPassesSilence(t *testing.T) {
	cfg := DefaultConfig()
	// Noise only: nothing at all reaches the decoder.
	if us := run(t, cfg, stream(20, nil), 1600); len(us) != 0 {
		t.Fatalf("silence produced %d utterances", len(us))
	}
	bursts := []domain.Interval{{Start: 1, End: 3}, {Start: 6, End: 6.8}, {Start: 12, End: 16}}
	us := finals(run(t, cfg, stream(20, bursts), 1600))
	if len(us) != len(bursts) {
		t.Fatalf("got %d utterances for %d bursts: %+v", len(us), len(bursts), us)
	}
	var passed float64
	for i, u := range us {
		b := bursts[i]
		tol := cfg.Padding + 2*float64(Window)/domain.SampleRate
		if math.Abs(u.Start-(b.Start-cfg.Padding)) > tol || math.Abs(u.End-(b.End+cfg.Padding)) > tol {
			t.Errorf("utterance %d spans %.2f–%.2f, burst %.2f–%.2f", i, u.Start, u.End, b.Start, b.End)
		}
		if got, want := len(u.Channels[0]), int((u.End-u.Start)*domain.SampleRate+0.5); got != want {
			t.Errorf("utterance %d has %d samples for %.3f s", i, got, u.End-u.Start)
		}
		if u.Seq != i {
			t.Errorf("utterance %d has seq %d", i, u.Seq)
		}
		passed += u.End - u.Start
	}
	// Only speech plus its padding goes to the decoder: 6.8 s of bursts in 20 s of audio.
	if limit := 6.8 + float64(len(bursts))*(2*cfg.Padding+0.1); passed > limit {
		t.Errorf("%.2f s passed to the decoder, at most %.2f expected", passed, limit)
	}
}

func TestSegmenterChunkSizeDoesNotMatter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GrowEvery = 0
	audio := stream(15, []domain.Interval{{Start: 0.5, End: 2}, {Start: 2.3, End: 4}, {Start: 9, End: 14}})
	a := run(t, cfg, audio, 37)
	b := run(t, cfg, audio, 16000)
	if len(a) != len(b) {
		t.Fatalf("%d vs %d utterances", len(a), len(b))
	}
	for i := range a {
		if a[i].Interval != b[i].Interval || len(a[i].Channels[0]) != len(b[i].Channels[0]) {
			t.Errorf("utterance %d: %+v vs %+v", i, a[i].Interval, b[i].Interval)
		}
	}
	// 2.0→2.3 is a short pause: one utterance, not two.
	if len(a) != 2 {
		t.Errorf("want 2 utterances (a 0.3 s pause does not cut), got %d", len(a))
	}
}

func TestSegmenterCutsLongSpeechAndBoundsMemory(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxUtterance = 5
	audio := stream(14, []domain.Interval{{Start: 1, End: 13}})
	seg, err := New(cfg, &energyScorer{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var us []domain.Utterance
	maxBuf := 0
	for i := 0; i < len(audio); i += 800 {
		out, err := seg.Push(audio[i:i+800], [][]float32{audio[i : i+800]})
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, out...)
		maxBuf = max(maxBuf, seg.Buffered())
	}
	out, _ := seg.Flush()
	us = finals(append(us, out...))
	if len(us) < 3 {
		t.Fatalf("12 s of speech with a 5 s limit gave %d utterances", len(us))
	}
	for i, u := range us {
		if u.End-u.Start > cfg.MaxUtterance+0.05 {
			t.Errorf("utterance %d is %.2f s long", i, u.End-u.Start)
		}
		if i < len(us)-1 && !u.Cut {
			t.Errorf("utterance %d should be marked cut", i)
		}
		if i > 0 && math.Abs(u.Start-us[i-1].End) > 1e-9 {
			t.Errorf("gap or overlap between cut utterances: %.3f then %.3f", us[i-1].End, u.Start)
		}
	}
	if limit := secondsToSamples(cfg.MaxUtterance + 0.2); maxBuf > limit {
		t.Errorf("buffered %d samples, bound is %d", maxBuf, limit)
	}
}

// A growing utterance is returned piece by piece: each piece's audio follows the last
// one's, never repeating it, the pieces and the finished utterance carry the same start,
// and the audio is the finished utterance's, sample for sample.
func TestSegmenterGrowthReturnsEachSampleOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GrowEvery = 0.25
	audio := stream(12, []domain.Interval{{Start: 1, End: 5}, {Start: 7, End: 9.5}})
	us := run(t, cfg, audio, 1000)
	var grown []float32
	next := -1.0
	utts := 0
	for _, u := range us {
		if u.Final {
			if len(grown) == 0 {
				t.Fatalf("utterance %d finished without growing", u.Seq)
			}
			for i, v := range u.Channels[0] {
				if i < len(grown) && grown[i] != v {
					t.Fatalf("utterance %d: grown sample %d differs from the finished one", u.Seq, i)
				}
			}
			if end := u.Start + float64(len(grown))/domain.SampleRate; end < u.End-1e-9 {
				t.Errorf("utterance %d grew to %.3f, ends at %.3f", u.Seq, end, u.End)
			}
			if pad := u.End - u.SpeechEnd; pad < cfg.Padding-0.04 || pad > cfg.Padding+0.001 {
				t.Errorf("finished utterance %d: speech ends %.3f, the utterance with its padding %.3f", u.Seq, u.SpeechEnd, u.End)
			}
			grown, next = nil, -1
			utts++
			continue
		}
		if u.Seq != utts {
			t.Errorf("growing utterance has seq %d, want %d", u.Seq, utts)
		}
		if next < 0 && math.Abs(u.AudioStart()-u.Start) > 1e-9 {
			t.Errorf("first piece of utterance %d starts at %.3f, utterance at %.3f", u.Seq, u.AudioStart(), u.Start)
		}
		if next >= 0 && math.Abs(u.AudioStart()-next) > 1e-9 {
			t.Errorf("piece starts at %.4f, the last one ended at %.4f", u.AudioStart(), next)
		}
		if u.SpeechEnd > u.End || u.SpeechEnd < u.Start {
			t.Errorf("speech end %.3f outside %.3f–%.3f", u.SpeechEnd, u.Start, u.End)
		}
		grown = append(grown, u.Channels[0]...)
		next = u.End
	}
	if utts != 2 {
		t.Fatalf("want 2 utterances, got %d", utts)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Threshold = 0 },
		func(c *Config) { c.NegThreshold = 0.9 },
		func(c *Config) { c.MaxUtterance = 40 },
		func(c *Config) { c.MinSilence = 0 },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("case %d: invalid config accepted", i)
		}
	}
}

// Two microphones, speakers taking turns with no pause between them: each turn becomes
// its own utterance, cut where the new speaker starts.
func TestSegmenterCutsAtSpeakerTurns(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GrowEvery = 0
	turns := []domain.Interval{{Start: 1, End: 3}, {Start: 3, End: 4.5}, {Start: 4.5, End: 7}}
	n := 9 * domain.SampleRate
	chans := [][]float32{make([]float32, n), make([]float32, n)}
	for k, iv := range turns {
		near, far := chans[k%2], chans[(k+1)%2]
		for i := int(iv.Start * domain.SampleRate); i < int(iv.End*domain.SampleRate); i++ {
			v := float32(0.3 * math.Sin(2*math.Pi*200*float64(i)/domain.SampleRate))
			near[i], far[i] = v, v*0.1 // crosstalk 20 dB down
		}
	}
	seg, err := New(cfg, &energyScorer{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	var us []domain.Utterance
	for i := 0; i < n; i += 1600 {
		mix := domain.MixDown([][]float32{chans[0][i : i+1600], chans[1][i : i+1600]})
		out, err := seg.Push(mix, [][]float32{chans[0][i : i+1600], chans[1][i : i+1600]})
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, out...)
	}
	out, _ := seg.Flush()
	us = append(us, out...)
	if len(us) != 3 {
		t.Fatalf("want 3 turns, got %d: %+v", len(us), us)
	}
	for i, u := range us {
		if i > 0 && math.Abs(u.Start-turns[i].Start) > 0.05 {
			t.Errorf("turn %d starts at %.3f, want %.2f", i, u.Start, turns[i].Start)
		}
		if i < 2 && math.Abs(u.End-turns[i].End) > 0.05 {
			t.Errorf("turn %d ends at %.3f, want %.2f", i, u.End, turns[i].End)
		}
	}
}
