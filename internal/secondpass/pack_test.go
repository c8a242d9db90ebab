package secondpass

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"scribe/internal/domain"
)

// scriptedLive commits one segment per utterance, each utterance 2 s of audio starting
// every 3 s, and hands the utterance's audio on as the pipeline does; after the first
// it calls first.
type scriptedLive struct {
	n     int
	first func()
	text  string // each utterance's first-pass text; "" for "first <n>"
}

func (l scriptedLive) Transcribe(_ context.Context, _ domain.AudioSource, _ float64, emit func(domain.LiveEvent)) error {
	for i := range l.n {
		iv := domain.Interval{Start: float64(3 * i), End: float64(3*i + 2)}
		u := domain.Utterance{Seq: i, Interval: iv, Final: true, Channels: [][]float32{make([]float32, 2*domain.SampleRate)}}
		emit(domain.LiveEvent{Kind: domain.EventCommitted, Utterance: i, Audio: &u,
			Segment: domain.Segment{ID: fmt.Sprintf("u%d-0", i), Start: iv.Start + 100, End: iv.End + 100, Text: l.textOf(i)}})
		if i == 0 {
			l.first()
		}
	}
	return nil
}

func (l scriptedLive) textOf(i int) string {
	if l.text != "" {
		return l.text
	}
	return fmt.Sprintf("first %d", i)
}

// windowRefiner answers a packed window of utterances 1–3 with one segment inside
// utterance 1 and one running from utterance 2 into 3 (stream timeline), as whisper's
// sentence-long segments do; anything else with one segment over the whole utterance.
type windowRefiner struct {
	mu  sync.Mutex
	got []domain.Utterance
}

func (r *windowRefiner) Transcribe(_ context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	r.mu.Lock()
	r.got = append(r.got, u)
	r.mu.Unlock()
	if len(u.Runs) == 3 {
		return []domain.Segment{{Start: 3.2, End: 4.8, Text: "second one"}, {Start: 6.5, End: 10.5, Text: "second two and three"}}, 0, nil
	}
	return []domain.Segment{{Start: u.Start, End: u.End, Text: "second alone"}}, 0, nil
}

// gate runs refinements once open is closed.
type gate struct{ open chan struct{} }

func (g gate) WhenIdle(ctx context.Context, _ time.Duration, fn func(context.Context) error) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return fn(ctx)
}

// Utterances queued together are refined in one packed window; the refined text goes
// back per utterance where whisper's segments keep to one, and utterances a segment runs
// across are replaced together, so nothing is doubled or lost.
func TestQueuedUtterancesAreRefinedPacked(t *testing.T) {
	ref := &windowRefiner{}
	g := gate{open: make(chan struct{})}
	var s *Service
	taken := func() { // the worker takes utterance 0 as soon as it comes
		for s.Stats().Queued > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	s, err := New(Config{}, scriptedLive{n: 4, first: taken}, ref, g)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := transcribeRefined(t, s)
	// Utterances 1–3 queued while the worker held utterance 0 at the gate.
	close(g.open)
	waitStats(t, s, func(st Stats) bool { return st.Refined >= 4 })
	ref.mu.Lock()
	defer ref.mu.Unlock()
	if len(ref.got) != 2 || len(ref.got[0].Runs) != 0 || len(ref.got[1].Runs) != 3 {
		t.Fatalf("decodes: %d, want utterance 0 alone then 1–3 in one window", len(ref.got))
	}
	refined := events()
	want := []struct {
		utt      int
		replaces []string
		text     []string
	}{
		{0, []string{"first 0"}, []string{"second alone"}},
		{1, []string{"first 1"}, []string{"second one"}},
		{2, []string{"first 2", "first 3"}, []string{"second two and three"}},
	}
	if len(refined) != len(want) {
		t.Fatalf("refined events %+v", refined)
	}
	for i, w := range want {
		ev := refined[i]
		var rep, txt []string
		for _, g := range ev.Replaces {
			rep = append(rep, g.Text)
		}
		for _, g := range ev.Refined {
			txt = append(txt, g.Text)
			if !g.HasFlag(domain.FlagSecondPass) || g.Start < 100 {
				t.Errorf("refined segment %+v: want the second-pass flag on the session timeline", g)
			}
		}
		if ev.Utterance != w.utt || fmt.Sprint(rep) != fmt.Sprint(w.replaces) || fmt.Sprint(txt) != fmt.Sprint(w.text) {
			t.Errorf("event %d: utterance %d replaces %v with %v; want %d, %v, %v", i, ev.Utterance, rep, txt, w.utt, w.replaces, w.text)
		}
	}
}

// A refinement with less than half the words the first pass heard (the larger model
// stopping early, as the real tiny.en was seen to on a packed window) does not replace
// them: the first-pass text stands, and the second pass counts it as kept.
func TestRefinementLosingWordsLeavesTheFirstPass(t *testing.T) {
	g := gate{open: make(chan struct{})}
	close(g.open)
	live := scriptedLive{n: 1, first: func() {}, text: "I've had diarrhoea for the last three days"}
	s, err := New(Config{}, live, &windowRefiner{}, g) // refines it to "second alone"
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := transcribeRefined(t, s)
	waitStats(t, s, func(st Stats) bool { return st.Kept+st.Refined >= 1 })
	if st, refined := s.Stats(), events(); st.Kept != 1 || st.Refined != 0 || len(refined) != 0 {
		t.Fatalf("an 8-word line refined to 2 words: stats %+v, refined events %+v; want it kept", st, refined)
	}
}

// transcribeRefined runs s's live transcription (at 100 s into the session) and returns
// what gives the refined events it has emitted so far.
func transcribeRefined(t *testing.T, s *Service) func() []domain.LiveEvent {
	t.Helper()
	var mu sync.Mutex
	var refined []domain.LiveEvent
	if err := s.Transcribe(context.Background(), nil, 100, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventRefined {
			mu.Lock()
			refined = append(refined, ev)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return func() []domain.LiveEvent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(refined)
	}
}

// waitStats waits up to 10 s for s's counters to satisfy done.
func waitStats(t *testing.T, s *Service, done func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("refinements not done: %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
