package secondpass_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"scribe/internal/app"
	"scribe/internal/bench"
	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/source"
	"scribe/internal/transcribe"
)

// gatedIdler holds refinements back until open is closed (or their context ends).
type gatedIdler struct {
	e    *transcribe.Engine
	open chan struct{}
}

func (g *gatedIdler) WhenIdle(ctx context.Context, quiet time.Duration, fn func(context.Context) error) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.e.WhenIdle(ctx, quiet, fn)
}

// Abandoning a session's transcription (its context cancelled, as when the server gives
// up waiting for it) cancels its pending refinements: the queued audio is released and
// nothing is refined once the box is idle. Real libwhisper: tiny.en live, base.en second.
func TestAbandonedSessionCancelsPendingRefinements(t *testing.T) {
	cfg := config.Default()
	cfg.Models.Whisper = config.SharedTestModel("for-tests-ggml-tiny.en.bin")
	cfg.Models.VAD = config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin")
	cfg.Transcription.SecondPassModel = config.SharedTestModel("for-tests-ggml-base.en.bin")
	if cfg.Models.Whisper == "" || cfg.Models.VAD == "" || cfg.Transcription.SecondPassModel == "" {
		t.Skip("../shared/models not available")
	}
	truth, _ := filepath.Abs("../../testdata/audio/day1_consultation01-60s.truth.json")
	if _, err := os.Stat(truth); err != nil {
		t.Skip("rendered consultation missing (scripts/make-test-audio)")
	}
	rec, err := bench.LoadRendered(truth)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Models.Workers, cfg.Models.Threads = 1, 2
	cfg.Transcription.TemperatureInc = 0
	rt, err := app.Load(cfg, app.Options{Provisional: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	gate := &gatedIdler{e: rt.Engine, open: make(chan struct{})}
	sp, err := rt.NewSecondPass(rt.Pipeline, app.SecondPassOptions{Idler: gate, Quiet: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()

	src, err := source.NewClip(rec.Channels, 100*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, abandon := context.WithCancel(context.Background())
	var mu sync.Mutex
	var committed, refined int
	err = sp.Transcribe(ctx, src, 0, func(ev domain.LiveEvent) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Audio != nil {
			t.Error("the utterance's audio was passed on to the session")
		}
		switch ev.Kind {
		case domain.EventCommitted:
			if committed++; committed == 4 {
				abandon()
			}
		case domain.EventRefined:
			refined++
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned transcription returned %v", err)
	}
	// Every refinement that was accepted (one held by the worker, the rest queued) is
	// cancelled, and the queue is empty.
	deadline := time.Now().Add(time.Minute)
	for s := sp.Stats(); s.Cancelled < 4 || s.Queued != 0; s = sp.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("pending refinements not cancelled: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(gate.open) // the box is idle now: nothing of the abandoned session may run
	sp.Close()
	mu.Lock()
	defer mu.Unlock()
	if s := sp.Stats(); refined != 0 || s.Refined != 0 || s.Cancelled != committed {
		t.Errorf("after abandoning: %d refined events, stats %+v, %d committed", refined, s, committed)
	}
}
