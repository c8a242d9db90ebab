package pipeline

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"scribe/internal/domain"
	"scribe/internal/frontend"
	"scribe/internal/source"
	"scribe/internal/vad"
)

// windowEngine records the utterances it is given and answers each with one segment.
type windowEngine struct {
	got []domain.Utterance
}

func (e *windowEngine) Transcribe(_ context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	e.got = append(e.got, u)
	return []domain.Segment{{ID: fmt.Sprintf("u%d-0", u.Seq), Start: u.Start, End: u.End, Text: fmt.Sprintf("window %d", u.Seq)}}, time.Millisecond, nil
}

func (e *windowEngine) Hypothesis(context.Context, bool, func() ([]float32, string)) ([]domain.DecodedSegment, time.Duration, error) {
	panic("file mode asked for a live decode")
}

// File mode packs the VAD's utterances into windows, decodes each window once with the
// text before it as context, and reports the speech each window held.
func TestFileModePacksUtterancesIntoWindows(t *testing.T) {
	audio := bursts(24, 3, 2) // eight 2 s bursts, 1 s apart
	src, _ := source.NewClip([][]float32{audio}, time.Second, 0)
	e := &windowEngine{}
	cfg := DefaultConfig()
	cfg.PackSeconds = 10 // four padded 2 s utterances (2.4 s each) per window
	var speech []domain.Interval
	p, err := New(cfg, Deps{Engine: e, Frontend: frontend.Config{VAD: vad.DefaultConfig(), NewScorer: func() (vad.Scorer, func(), error) { return loudScorer{}, func() {}, nil }},
		Observe: func(o Observation) {
			if o.Final {
				speech = append(speech, o.Speech...)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	var events []domain.LiveEvent
	if err := p.Transcribe(context.Background(), src, 100, func(ev domain.LiveEvent) { events = append(events, ev) }); err != nil {
		t.Fatal(err)
	}
	if len(e.got) != 2 {
		t.Fatalf("want 2 windows decoded, got %d", len(e.got))
	}
	for i, u := range e.got {
		if len(u.Runs) != 4 || u.Seconds() > 10 {
			t.Errorf("window %d: %d runs, %.1f s", i, len(u.Runs), u.Seconds())
		}
		for j, r := range u.Runs {
			burst := float64(4*i+j) * 3
			if math.Abs(r.Start-burst) > 0.25 || math.Abs(r.End-(burst+2)) > 0.3 {
				t.Errorf("window %d run %d at %.2f–%.2f, burst at %.0f–%.0f", i, j, r.Start, r.End, burst, burst+2)
			}
		}
	}
	if e.got[0].Context != "" || e.got[1].Context != "window 0" {
		t.Errorf("contexts %q, %q: the second window should follow the first's text", e.got[0].Context, e.got[1].Context)
	}
	if len(events) != 2 {
		t.Fatalf("want one committed segment per window, got %+v", events)
	}
	for _, ev := range events {
		if ev.Kind != domain.EventCommitted || ev.Segment.Start < 100 {
			t.Errorf("event %+v: want committed, offset applied", ev)
		}
	}
	if len(speech) != 8 || domain.TotalSeconds(speech) < 16 {
		t.Errorf("observed speech %+v: want the eight runs", speech)
	}
}
