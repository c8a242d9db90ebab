package outbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"scribe/internal/fhir"
)

// Flush (the last round of a graceful shutdown) tries every queued note once, including
// one waiting out an hour's Retry-After, delivers what it can, and when the EPR is still
// down tries each note only once and reports it still queued; sent and held notes are
// left alone.
func TestFlushTriesEveryQueuedNoteOnce(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	clock := &fakeClock{t: time.Now().Add(time.Second)}
	busy := &fhir.DeliveryError{Reason: "busy (HTTP 503)", RetryAfter: time.Hour}
	sink := &scriptedSink{errs: []error{busy}}
	w := testWorker(db, sink, clock)
	ctx := context.Background()
	waiting := enqueue(t, db, note("9434765919"))
	if did, err := w.RunOnce(ctx); !did || err != nil {
		t.Fatalf("first attempt: %v %v", did, err)
	}
	if it := get(t, db, waiting); it.State != StateQueued || !it.NextAttemptAt.After(clock.t.Add(59*time.Minute)) {
		t.Fatalf("after a 503 with Retry-After: %+v", it)
	}
	fresh := enqueue(t, db, note("9434765919"))

	left, err := w.Flush(ctx)
	if err != nil || left != 0 {
		t.Fatalf("Flush: %d left, %v", left, err)
	}
	for _, id := range []int64{waiting, fresh} {
		if it := get(t, db, id); it.State != StateSent {
			t.Errorf("note %d: %s (%s) after the flush, want sent", id, it.State, it.Reason)
		}
	}
	if sink.calls != 3 {
		t.Errorf("%d deliveries, want 3 (one failed, then one each)", sink.calls)
	}

	// The EPR is down for the whole flush: each note is tried once (its backoff puts the
	// next try after the flush), then Flush returns with both still queued.
	down := &fhir.DeliveryError{Reason: "the patient record server could not be reached"}
	sink = &scriptedSink{errs: []error{down, down, down, down}}
	w = testWorker(db, sink, clock)
	a, b := enqueue(t, db, note("9434765919")), enqueue(t, db, note("9434765919"))
	left, err = w.Flush(ctx)
	if err != nil || left != 2 {
		t.Fatalf("Flush with the EPR down: %d left, %v; want 2 left", left, err)
	}
	if sink.calls != 2 {
		t.Errorf("%d deliveries with the EPR down, want 2 (each queued note once)", sink.calls)
	}
	for _, id := range []int64{a, b} {
		if it := get(t, db, id); it.State != StateQueued || it.Attempts != 1 {
			t.Errorf("note %d: %s after %d attempts, want queued after 1", id, it.State, it.Attempts)
		}
	}
}
