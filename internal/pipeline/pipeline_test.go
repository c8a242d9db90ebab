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

// gatedEngine's provisional decodes never finish by themselves: they end only when their
// context is cancelled. Committed decodes return at once.
type gatedEngine struct {
	provStarted chan struct{}
	provErr     chan error
}

func (g *gatedEngine) Transcribe(_ context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	return []domain.Segment{{ID: "c", Start: u.Start, End: u.End}}, 0, nil
}

func (g *gatedEngine) TryTranscribe(ctx context.Context, _ domain.Utterance) ([]domain.Segment, time.Duration, error) {
	select {
	case g.provStarted <- struct{}{}:
	default:
	}
	<-ctx.Done()
	g.provErr <- ctx.Err()
	return nil, 0, ctx.Err()
}

// heldSource plays the first part of a clip, then holds back the rest until release is
// closed, so a test can arrange for the utterance to end while a provisional decode runs.
type heldSource struct {
	first, rest *source.Clip
	release     chan struct{}
	inRest      bool
}

func (h *heldSource) Channels() int { return 1 }
func (h *heldSource) Close() error  { return h.rest.Close() }
func (h *heldSource) Read(ctx context.Context) ([][]float32, error) {
	if !h.inRest {
		c, err := h.first.Read(ctx)
		if err == nil {
			return c, nil
		}
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		h.inRest = true
	}
	return h.rest.Read(ctx)
}

// When an utterance ends while a provisional decode of it is still running, that decode
// is cancelled so the committed decode does not wait behind it.
func TestUtteranceEndSupersedesProvisionalDecode(t *testing.T) {
	audio := bursts(6, 6, 3) // 3 s of speech, 3 s of silence
	first, _ := source.NewClip([][]float32{audio[:2*domain.SampleRate]}, 100*time.Millisecond, 0)
	rest, _ := source.NewClip([][]float32{audio[2*domain.SampleRate:]}, 100*time.Millisecond, 0)
	src := &heldSource{first: first, rest: rest, release: make(chan struct{})}
	g := &gatedEngine{provStarted: make(chan struct{}, 1), provErr: make(chan error, 4)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang, not a timing bound
	defer cancel()
	var events []domain.LiveEvent
	done := make(chan error, 1)
	go func() {
		done <- newPipeline(t, g).Transcribe(ctx, src, 0, func(ev domain.LiveEvent) { events = append(events, ev) })
	}()
	select {
	case <-g.provStarted:
	case <-ctx.Done():
		t.Fatal("no provisional decode started")
	}
	close(src.release) // the speech ends; the utterance is final
	if err := <-done; err != nil {
		t.Fatalf("pipeline: %v (the committed decode waited behind the provisional one)", err)
	}
	if err := <-g.provErr; !errors.Is(err, context.Canceled) {
		t.Errorf("provisional decode ended with %v, want cancelled", err)
	}
	if len(events) != 1 || events[0].Kind != domain.EventCommitted || events[0].Segment.End-events[0].Segment.Start < 3 {
		t.Errorf("events %+v, want the one committed utterance", events)
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

// Every utterance of a stream passes through its attributor in order — committed ones to
// learn from, provisional ones only to label — before the decoder sees it, with the
// stream's channel count and context; the spans travel on the utterance.
func TestStreamAttributesEveryUtterance(t *testing.T) {
	audio := bursts(12, 3, 2)
	src, _ := source.NewClip([][]float32{audio, audio}, 100*time.Millisecond, 0)
	attr := &recordingAttributor{}
	var decoded []domain.Utterance
	var mu sync.Mutex
	e := &spanEngine{seen: func(u domain.Utterance) { mu.Lock(); decoded = append(decoded, u); mu.Unlock() }}
	cfg := DefaultConfig()
	cfg.VAD.ProvisionalEvery = 0.5
	p, err := New(cfg, Deps{Engine: e, NewScorer: func() (vad.Scorer, func(), error) { return loudScorer{}, func() {}, nil },
		NewAttributor: func(ctx context.Context, nch int) Attributor {
			attr.nch, attr.sawSetupFromCtx = nch, ctx.Value(ctxMarker{}) != nil
			return attr
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxMarker{}, true)
	if err := p.Transcribe(ctx, src, 0, func(domain.LiveEvent) {}); err != nil {
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
	mu.Lock()
	defer mu.Unlock()
	for _, u := range decoded {
		if len(u.Speakers) != 1 || u.Speakers[0].Speaker != domain.SpeakerClinician {
			t.Errorf("utterance %d reached the decoder without its speakers: %+v", u.Seq, u.Speakers)
		}
	}
}

// spanEngine reports each utterance it is given.
type spanEngine struct{ seen func(domain.Utterance) }

func (e *spanEngine) Transcribe(_ context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	e.seen(u)
	return []domain.Segment{{Start: u.Start, End: u.End, Text: "words"}}, 0, nil
}

func (e *spanEngine) TryTranscribe(ctx context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	return e.Transcribe(ctx, u)
}
