package pipeline

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"scribe/internal/domain"
	"scribe/internal/source"
	"scribe/internal/transcribe"
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

// slowEngine takes a fixed time per decode, can fail, and records what it decoded.
type slowEngine struct {
	delay time.Duration
	fail  bool
	mu    sync.Mutex
	busy  bool
	calls int
}

func (e *slowEngine) Transcribe(ctx context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	e.mu.Lock()
	e.busy = true
	e.calls++
	e.mu.Unlock()
	defer func() { e.mu.Lock(); e.busy = false; e.mu.Unlock() }()
	select {
	case <-time.After(e.delay):
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	if e.fail {
		return nil, e.delay, errors.New("decoder exploded")
	}
	return []domain.Segment{{ID: "x", Start: u.Start, End: u.End, Speaker: domain.SpeakerUnknown, Text: "words"}}, e.delay, nil
}

func (e *slowEngine) TryTranscribe(ctx context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	e.mu.Lock()
	busy := e.busy
	e.mu.Unlock()
	if busy {
		return nil, 0, transcribe.ErrBusy
	}
	return e.Transcribe(ctx, u)
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

func newPipeline(t *testing.T, e Transcriber) *Pipeline {
	t.Helper()
	cfg := DefaultConfig()
	cfg.VAD.ProvisionalEvery = 0.5
	p, err := New(cfg, Deps{Engine: e, NewScorer: func() (vad.Scorer, func(), error) { return loudScorer{}, func() {}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommittedNeverDroppedProvisionalCoalesced(t *testing.T) {
	audio := bursts(24, 3, 2) // eight 2 s utterances, 1 s apart
	src, _ := source.NewClip([][]float32{audio}, 100*time.Millisecond, 0)
	e := &slowEngine{delay: 30 * time.Millisecond}
	var events []domain.LiveEvent
	err := newPipeline(t, e).Transcribe(context.Background(), src, 100, func(ev domain.LiveEvent) { events = append(events, ev) })
	if err != nil {
		t.Fatal(err)
	}
	var committed, prov int
	last := -1
	for _, ev := range events {
		switch ev.Kind {
		case domain.EventCommitted:
			committed++
			if ev.Utterance != last+1 {
				t.Errorf("committed utterance %d after %d: out of order or missing", ev.Utterance, last)
			}
			last = ev.Utterance
			if ev.Segment.Start < 100 {
				t.Errorf("offset not applied: %+v", ev.Segment)
			}
		case domain.EventProvisional:
			prov++
			if ev.Utterance <= last {
				t.Errorf("provisional text for utterance %d after it was committed", ev.Utterance)
			}
		}
	}
	if committed != 8 {
		t.Errorf("%d committed utterances, want 8", committed)
	}
	// Snapshots come every 0.5 s of a 2 s utterance (3-4 each), but the reader runs far
	// ahead of the 30 ms decoder, so most are coalesced away.
	if prov >= 8*3 {
		t.Errorf("%d provisional updates: not coalesced", prov)
	}
	t.Logf("%d committed, %d provisional, %d decodes", committed, prov, e.calls)
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
