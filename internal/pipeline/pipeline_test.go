package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scribe/internal/domain"
	"scribe/internal/frontend"
	"scribe/internal/source"
	"scribe/internal/stream/streamtest"
	"scribe/internal/vad"
)

// loudScorer marks loud windows as speech; the real Silero runs in internal/app's tests.
type loudScorer struct{}

func (loudScorer) Reset() {}
func (loudScorer) Probs(s []float32) ([]float32, error) {
	out := make([]float32, len(s)/vad.Window)
	for i := range out {
		var e float64
		for _, v := range s[i*vad.Window : (i+1)*vad.Window] {
			e += float64(v * v)
		}
		if e/vad.Window > 1e-3 {
			out[i] = 0.9
		}
	}
	return out, nil
}

// slowEngine takes a fixed time per decode, can fail, and says every stretch of audio it
// hears is one word, "words", aligned to the end of the audio.
type slowEngine struct {
	delay time.Duration
	fail  bool
	mu    sync.Mutex
	calls int
	final int
}

func (e *slowEngine) Hypothesis(ctx context.Context, final bool, prepare func() ([]float32, string)) ([]domain.DecodedSegment, time.Duration, error) {
	e.mu.Lock()
	e.calls++
	if final {
		e.final++
	}
	e.mu.Unlock()
	samples, _ := prepare()
	select {
	case <-time.After(e.delay):
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	if e.fail {
		return nil, e.delay, errors.New("decoder exploded")
	}
	at := float64(len(samples)) / domain.SampleRate
	return []domain.DecodedSegment{{Tokens: []domain.DecodedToken{{Text: " words", At: at}}}}, e.delay, nil
}

// bursts makes n seconds of audio with a tone burst of length on, every period seconds.
func bursts(n, period, on float64) []float32 {
	out := make([]float32, int(n*domain.SampleRate))
	for i := range out {
		if math.Mod(float64(i)/domain.SampleRate, period) < on {
			out[i] = float32(0.3 * math.Sin(float64(i)*0.1))
		}
	}
	return out
}

func newPipeline(t *testing.T, e Decoder) *Pipeline {
	t.Helper()
	fe := frontend.Config{VAD: vad.DefaultConfig(), NewScorer: func() (vad.Scorer, func(), error) { return loudScorer{}, func() {}, nil }}
	p, err := New(DefaultConfig(), Deps{Engine: e, Frontend: fe})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wordDecoder hears words as tone bursts (see speak): each burst is one word, named by its
// amplitude and aligned just after its end, as DTW aligns a word.
type wordDecoder struct {
	delay  time.Duration
	calls  atomic.Int64
	finals atomic.Int64
}

func (w *wordDecoder) Hypothesis(ctx context.Context, final bool, prepare func() ([]float32, string)) ([]domain.DecodedSegment, time.Duration, error) {
	w.calls.Add(1)
	if final {
		w.finals.Add(1)
	}
	x, _ := prepare()
	select {
	case <-time.After(w.delay):
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	var toks []domain.DecodedToken
	for i := 0; i < len(x); {
		if math.Abs(float64(x[i])) < 0.02 {
			i++
			continue
		}
		last, peak := i, 0.0
		for j := i; j < len(x) && j-last < 160; j++ {
			if a := math.Abs(float64(x[j])); a >= 0.02 {
				last, peak = j, max(peak, a)
			}
		}
		k := int(math.Round((peak - 0.1) / 0.005))
		toks = append(toks, domain.DecodedToken{Text: fmt.Sprintf(" w%d", k), At: float64(last+1)/domain.SampleRate + 0.05})
		i = last + 161
	}
	return []domain.DecodedSegment{{Tokens: toks}}, w.delay, nil
}

// speak renders phrases of words as tone bursts (0.35 s each, 0.15 s apart), the phrases
// 1.2 s apart; word k is a burst of amplitude 0.1 + 0.005k.
func speak(phrases [][]int) []float32 {
	var out []float32
	out = append(out, make([]float32, domain.SampleRate/2)...)
	for _, ph := range phrases {
		for _, k := range ph {
			amp := 0.1 + 0.005*float64(k)
			for i := range int(0.35 * domain.SampleRate) {
				out = append(out, float32(amp*math.Sin(2*math.Pi*300*float64(i)/domain.SampleRate)))
			}
			out = append(out, make([]float32, int(0.15*domain.SampleRate))...)
		}
		out = append(out, make([]float32, int(1.05*domain.SampleRate))...)
	}
	return out
}

// lines checks the committed events (streamtest.Read) and returns the lines.
func lines(t *testing.T, events []domain.LiveEvent) []domain.Segment {
	t.Helper()
	c, err := streamtest.Read(events)
	if err != nil {
		t.Fatal(err)
	}
	return c.Lines
}

// Every word is committed exactly once and in order, each phrase is one line, and a
// line's later pieces only add words — whether the decoder keeps up (steps of 0.5 s of
// real time) or the audio arrives far faster than it decodes (each step then covers more).
func TestWordsCommittedOnceInOrder(t *testing.T) {
	var phrases [][]int
	var want []string
	for p := range 6 {
		var ph []int
		for i := range 3 + p%3 {
			k := 1 + len(want) + i
			ph = append(ph, k)
		}
		for _, k := range ph {
			want = append(want, fmt.Sprintf("w%d", k))
		}
		phrases = append(phrases, ph)
	}
	audio := speak(phrases)
	for _, c := range []struct {
		name  string
		pace  float64
		delay time.Duration
	}{{"real time", 8, 20 * time.Millisecond}, {"decoder behind", 0, 30 * time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			src, _ := source.NewClip([][]float32{audio}, 100*time.Millisecond, c.pace)
			w := &wordDecoder{delay: c.delay}
			var events []domain.LiveEvent
			if err := newPipeline(t, w).Transcribe(context.Background(), src, 100, func(ev domain.LiveEvent) { events = append(events, ev) }); err != nil {
				t.Fatal(err)
			}
			ls := lines(t, events)
			var got []string
			for _, l := range ls {
				got = append(got, strings.Fields(l.Text)...)
				if l.Start < 100 {
					t.Errorf("offset not applied: %+v", l)
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("committed %q\nwant      %q", got, want)
			}
			if len(ls) != len(phrases) {
				t.Errorf("%d lines for %d phrases", len(ls), len(phrases))
			}
			var prov int
			for _, ev := range events {
				if ev.Kind == domain.EventProvisional {
					prov++
				}
			}
			t.Logf("%d lines, %d events (%d provisional), %d decodes (%d closes)", len(ls), len(events), prov, w.calls.Load(), w.finals.Load())
		})
	}
}

func TestDecodeFailureKeepsSpeechVisible(t *testing.T) {
	src, _ := source.NewClip([][]float32{bursts(4, 4, 2)}, 100*time.Millisecond, 0)
	var events []domain.LiveEvent
	err := newPipeline(t, &slowEngine{fail: true}).Transcribe(context.Background(), src, 0, func(ev domain.LiveEvent) { events = append(events, ev) })
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || !events[0].Segment.HasFlag(domain.FlagUntranscribed) || events[0].Segment.End-events[0].Segment.Start < 2 {
		t.Fatalf("a failed decode must leave an untranscribed segment, got %+v", events)
	}
}

func TestCancelStopsPromptly(t *testing.T) {
	src, _ := source.NewClip([][]float32{bursts(600, 3, 2.5)}, 100*time.Millisecond, 1) // real time
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := newPipeline(t, &slowEngine{delay: 10 * time.Second}).Transcribe(ctx, src, 0, func(domain.LiveEvent) {})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to stop", d)
	}
}

func TestCloseCommitsPendingSpeech(t *testing.T) {
	// Speech still going on when the clinician presses Stop is committed, not lost.
	src, _ := source.NewClip([][]float32{bursts(10, 10, 10)}, 100*time.Millisecond, 4)
	time.AfterFunc(500*time.Millisecond, func() { src.Close() })
	var events []domain.LiveEvent
	if err := newPipeline(t, &slowEngine{}).Transcribe(context.Background(), src, 0, func(ev domain.LiveEvent) { events = append(events, ev) }); err != nil {
		t.Fatal(err)
	}
	var got bool
	for _, ev := range events {
		got = got || ev.Kind == domain.EventCommitted
	}
	if !got {
		t.Fatal("speech in progress at Stop was not committed")
	}
}

// mute decodes nothing, as whisper.cpp's weightless test model does.
type mute struct{}

func (mute) Hypothesis(_ context.Context, _ bool, prepare func() ([]float32, string)) ([]domain.DecodedSegment, time.Duration, error) {
	prepare()
	return nil, 0, nil
}

// A file read far faster than it is decoded, of speech whose pauses are too short for
// the VAD to drop any audio, with a decoder that finds no words: the buffer fills, its
// lines are committed (empty, flagged) and it is trimmed all the same, to the end.
func TestFullBufferOfUnwordedSpeechDrains(t *testing.T) {
	audio := bursts(90, 3, 2.6) // 0.4 s pauses: one utterance after another, no silence dropped
	src, _ := source.NewClip([][]float32{audio}, 100*time.Millisecond, 0)
	fe := frontend.Config{VAD: vad.DefaultConfig(), NewScorer: func() (vad.Scorer, func(), error) { return loudScorer{}, func() {}, nil }}
	cfg := DefaultConfig()
	cfg.Provisional = false
	p, err := New(cfg, Deps{Engine: mute{}, Frontend: fe})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang, not a timing bound
	defer cancel()
	var lines int
	err = p.Transcribe(ctx, src, 0, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventCommitted && ev.Audio != nil && ev.Segment.HasFlag(domain.FlagUntranscribed) {
			lines++
		}
	})
	if err != nil {
		t.Fatalf("%v after %d lines", err, lines)
	}
	if lines != 5 {
		t.Errorf("%d untranscribed lines, want 5 (20 s each)", lines)
	}
}

// recordingAttributor labels every utterance wholly as the clinician and records what it
// was shown.
type recordingAttributor struct {
	mu              sync.Mutex
	commits, provs  []int
	nch             int
	sawSetupFromCtx bool
}

func (a *recordingAttributor) Attribute(u domain.Utterance, commit bool) ([]domain.SpeakerSpan, []float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if commit {
		a.commits = append(a.commits, u.Seq)
	} else {
		a.provs = append(a.provs, u.Seq)
	}
	return []domain.SpeakerSpan{{Interval: u.Interval, Speaker: domain.SpeakerClinician}}, nil
}

type ctxMarker struct{}

// Every utterance of a stream passes through its attributor in order — finished ones to
// learn from, growing ones only to label — with the stream's channel count and context,
// and every committed segment ends with the speaker of the spans it returned.
func TestStreamAttributesEveryUtterance(t *testing.T) {
	audio := bursts(12, 3, 2)
	src, _ := source.NewClip([][]float32{audio, audio}, 100*time.Millisecond, 0)
	attr := &recordingAttributor{}
	fe := frontend.Config{VAD: vad.DefaultConfig(), NewScorer: func() (vad.Scorer, func(), error) { return loudScorer{}, func() {}, nil }}
	p, err := New(DefaultConfig(), Deps{Engine: &slowEngine{}, Frontend: fe,
		NewAttributor: func(ctx context.Context, nch int) Attributor {
			attr.nch, attr.sawSetupFromCtx = nch, ctx.Value(ctxMarker{}) != nil
			return attr
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxMarker{}, true)
	var committed []domain.Segment
	if err := p.Transcribe(ctx, src, 0, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventCommitted {
			committed = append(committed, ev.Segment)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if attr.nch != 2 || !attr.sawSetupFromCtx {
		t.Errorf("attributor made for %d channels, context passed %v", attr.nch, attr.sawSetupFromCtx)
	}
	if len(attr.commits) != 4 || len(attr.provs) == 0 {
		t.Fatalf("committed %v, provisional %v", attr.commits, attr.provs)
	}
	for i, seq := range attr.commits {
		if seq != i {
			t.Errorf("committed utterances attributed out of order: %v", attr.commits)
		}
	}
	if len(committed) == 0 {
		t.Fatal("nothing committed")
	}
	// A piece committed before the reader's next label of its growing utterance may say
	// "unknown"; the segment's last piece decides its speaker (package stream), and that
	// must be the attributed one.
	last := map[string]domain.Segment{}
	for _, s := range committed {
		last[s.ID] = s
	}
	for _, s := range last {
		if s.Speaker != domain.SpeakerClinician {
			t.Errorf("segment %s %.2f–%.2f %q ends as %q, want the attributed clinician", s.ID, s.Start, s.End, s.Text, s.Speaker)
		}
	}
}
