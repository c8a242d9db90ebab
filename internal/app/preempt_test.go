package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"scribe/internal/transcribe"
)

// On real libwhisper: a long step decode (a stream's rolling buffer) holding the only
// decoder state is aborted mid-decode when another room's committed utterance needs the
// decoder, and the committed utterance is then decoded.
func TestCommittedPreemptsStepRealWhisper(t *testing.T) {
	e := realEngine(t, 8, nil)
	prov := make(chan error, 1)
	go func() {
		// 29 s of noise: a full-window encode and, on the weightless model, a decode to
		// the token cap, far longer than the committed work below takes to arrive.
		_, _, err := e.Hypothesis(transcribe.WithRoom(context.Background(), "talking"), false, func() ([]float32, string) {
			return noiseUtterance(1, 29).Mono(), ""
		})
		prov <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for e.Stats().Free != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the step decode never took the decoder")
		}
		time.Sleep(time.Millisecond)
	}
	segs, _, err := e.Transcribe(transcribe.WithRoom(context.Background(), "finished"), noiseUtterance(2, 1.5))
	if err != nil || len(segs) == 0 {
		t.Fatalf("committed decode: %v, %d segments", err, len(segs))
	}
	if err := <-prov; !errors.Is(err, transcribe.ErrPreempted) {
		t.Fatalf("step decode: %v, want ErrPreempted", err)
	}
	st := e.Stats()
	if st.Room("talking").Preempted != 1 || st.Free != 1 || st.Waiting != 0 {
		t.Errorf("stats %+v", st)
	}
}
