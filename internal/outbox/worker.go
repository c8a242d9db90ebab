package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"scribe/internal/audit"
	"scribe/internal/fhir"
)

// Backoff spaces out retries: Base doubles with every failed attempt up to Max, and each
// delay is drawn from its upper half so that many notes failing together (the EPR went
// down) do not come back in lockstep.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// Delay returns the wait after the given number of failed attempts (1 = first failure);
// r in [0,1) picks the point within the jitter range.
func (b Backoff) Delay(attempts int, r float64) time.Duration {
	d := b.Base
	for i := 1; i < attempts && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + time.Duration(r*float64(d/2))
}

// Worker delivers queued notes one at a time. Run exactly one worker per database.
type Worker struct {
	DB   *sql.DB
	Sink fhir.Sink
	Log  *slog.Logger

	Backoff Backoff
	// MaxAttempts is how many retryable failures in a row turn a note "failed" (still
	// retryable by an administrator).
	MaxAttempts int
	// PollInterval bounds how long Run sleeps when nothing is due; Wake cuts it short.
	PollInterval time.Duration
	// Acks, when set (sinks that confirm later: folder, MESH), is asked about notes
	// awaiting acknowledgement at most every AckInterval.
	Acks        fhir.Acknowledger
	AckInterval time.Duration
	lastAcks    time.Time
	// DeliveryTimeout bounds one Deliver call.
	DeliveryTimeout time.Duration
	// Audit, when set, appends a writeback_attempt event in the transaction that claims a
	// note and a writeback_result event in the one that records the outcome, so the trail
	// and the outbox cannot disagree (store.Store.AuditTx: same database, no second
	// handle). Events carry ids, outcome and HTTP status, never the note's text.
	Audit func(ctx context.Context, tx *sql.Tx, ev audit.Event) error

	// Now, Sleep and Rand are the clock, the wait and the jitter source; tests replace them.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64

	wakeOnce sync.Once
	wake     chan struct{}

	// afterDeliver, when set (tests only), runs after the sink returned and before the
	// result is recorded: the window a crash makes dangerous.
	afterDeliver func(Item, fhir.Receipt, error)
}

// NewWorker returns a worker with production defaults.
func NewWorker(db *sql.DB, sink fhir.Sink, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.Default()
	}
	acks, _ := sink.(fhir.Acknowledger)
	return &Worker{
		DB: db, Sink: sink, Log: log, Acks: acks, AckInterval: 30 * time.Second,
		Backoff:         Backoff{Base: 5 * time.Second, Max: 15 * time.Minute},
		MaxAttempts:     60, // about 12 hours at the 15-minute cap
		PollInterval:    30 * time.Second,
		DeliveryTimeout: 2 * time.Minute,
		Now:             time.Now,
		Rand:            rand.Float64,
	}
}

func (w *Worker) wakeChan() chan struct{} {
	w.wakeOnce.Do(func() { w.wake = make(chan struct{}, 1) })
	return w.wake
}

// Wake makes a sleeping Run look for work now (call it after committing an approval).
func (w *Worker) Wake() {
	select {
	case w.wakeChan() <- struct{}{}:
	default:
	}
}

func (w *Worker) sleep(ctx context.Context, d time.Duration) error {
	if w.Sleep != nil {
		return w.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-w.wakeChan():
	}
	return nil
}

// Recover re-queues notes left "sending" by a crash. Whether that attempt reached the
// record is unknown; re-delivering is safe because the sink's idempotency key finds the
// copy if it did.
func (w *Worker) Recover(ctx context.Context) (int64, error) {
	now := w.Now().UnixMilli()
	res, err := w.DB.ExecContext(ctx, `UPDATE fhir_outbox SET state = 'queued', next_attempt_at = ?, updated_at = ?
		WHERE state = 'sending'`, now, now)
	if err != nil {
		return 0, fmt.Errorf("recover outbox: %w", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		w.Log.Info("outbox: re-queued notes interrupted mid-delivery", "count", n)
	}
	return n, nil
}

// Run recovers interrupted deliveries, then delivers due notes until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	if _, err := w.Recover(ctx); err != nil {
		return err
	}
	for {
		did, err := w.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			w.Log.Error("outbox: delivery round failed", "err", err)
		}
		if w.Acks != nil && w.Now().Sub(w.lastAcks) >= w.AckInterval {
			w.lastAcks = w.Now()
			if _, err := w.CollectAcks(ctx); err != nil && ctx.Err() == nil {
				w.Log.Warn("outbox: reading acknowledgements failed", "err", err)
			}
		}
		if did && err == nil {
			continue
		}
		wait := w.PollInterval
		if w.Acks != nil {
			wait = min(wait, w.AckInterval)
		}
		if next, ok, err := w.nextDue(ctx); err == nil && ok {
			wait = min(wait, max(0, next.Sub(w.Now())))
		}
		if err := w.sleep(ctx, wait); err != nil {
			return nil
		}
	}
}

func (w *Worker) nextDue(ctx context.Context) (time.Time, bool, error) {
	var ms sql.NullInt64
	err := w.DB.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM fhir_outbox WHERE state = 'queued'`).Scan(&ms)
	if err != nil || !ms.Valid {
		return time.Time{}, false, err
	}
	return time.UnixMilli(ms.Int64), true, nil
}

// RunOnce delivers the next due note, if any, and records the outcome. It reports whether
// there was a note to deliver.
func (w *Worker) RunOnce(ctx context.Context) (bool, error) {
	now := w.Now()
	it, err := scanItem(w.DB.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM fhir_outbox
		WHERE state = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT 1`, now.UnixMilli()))
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("outbox: pick next note: %w", err)
	}
	n, err := w.execAudited(ctx, func() audit.Event {
		return w.event(audit.ActionWritebackAttempt, it, map[string]any{"attempt": it.Attempts + 1})
	}, `UPDATE fhir_outbox SET state = 'sending', attempts = attempts + 1, updated_at = ?
		WHERE id = ? AND state = 'queued'`, now.UnixMilli(), it.ID)
	if err != nil {
		return false, fmt.Errorf("outbox: claim note %d: %w", it.ID, err)
	}
	if n == 0 {
		return true, nil // changed under us (an admin action); look again
	}
	it.Attempts++

	dctx, cancel := context.WithTimeout(ctx, w.DeliveryTimeout)
	rc, derr := w.Sink.Deliver(dctx, it.Note)
	cancel()
	if w.afterDeliver != nil {
		w.afterDeliver(it, rc, derr)
	}
	// Record even if we are shutting down, so the note does not wait for Recover.
	return true, w.record(context.WithoutCancel(ctx), it, rc, derr)
}

func (w *Worker) record(ctx context.Context, it Item, rc fhir.Receipt, derr error) error {
	now := w.Now()
	ms := now.UnixMilli()
	var err error
	result := func(outcome string) func() audit.Event {
		return func() audit.Event {
			d := map[string]any{"outcome": outcome, "attempts": it.Attempts}
			status := rc.HTTPStatus
			if derr != nil {
				status = fhir.HTTPStatus(derr)
			}
			if status != 0 {
				d["http_status"] = status
			}
			if derr == nil {
				d["created"] = rc.Created
			}
			return w.event(audit.ActionWritebackResult, it, d)
		}
	}
	switch {
	case derr == nil && rc.Pending:
		_, err = w.execAudited(ctx, result("awaiting_ack"), `UPDATE fhir_outbox SET state = 'awaiting_ack', reason = ?, location = ?,
			updated_at = ? WHERE id = ?`, rc.Reason, rc.Location, ms, it.ID)
		w.Log.Info("outbox: note handed over, awaiting acknowledgement", "outbox_id", it.ID, "attempts", it.Attempts)
	case derr == nil:
		_, err = w.execAudited(ctx, result("sent"), `UPDATE fhir_outbox SET state = 'sent', reason = '', sent_at = ?, location = ?,
			updated_at = ? WHERE id = ?`, ms, rc.Location, ms, it.ID)
		// Patient data stays out of logs: ids and states only.
		w.Log.Info("outbox: note delivered", "outbox_id", it.ID, "attempts", it.Attempts, "created", rc.Created)
	case fhir.IsPermanent(derr):
		_, err = w.execAudited(ctx, result("held"), `UPDATE fhir_outbox SET state = 'held', reason = ?, updated_at = ? WHERE id = ?`,
			fhir.Reason(derr), ms, it.ID)
		w.Log.Warn("outbox: note held for attention", "outbox_id", it.ID, "attempts", it.Attempts)
	case it.Attempts >= w.MaxAttempts:
		_, err = w.execAudited(ctx, result("failed"), `UPDATE fhir_outbox SET state = 'failed', reason = ?, updated_at = ? WHERE id = ?`,
			fmt.Sprintf("gave up after %d attempts: %s", it.Attempts, fhir.Reason(derr)), ms, it.ID)
		w.Log.Error("outbox: note failed after repeated attempts", "outbox_id", it.ID, "attempts", it.Attempts)
	default:
		delay := w.Backoff.Delay(it.Attempts, w.Rand())
		if ra, ok := fhir.RetryAfter(derr); ok && ra > delay {
			delay = ra
		}
		_, err = w.execAudited(ctx, result("retry"), `UPDATE fhir_outbox SET state = 'queued', reason = ?, next_attempt_at = ?,
			updated_at = ? WHERE id = ?`, "will retry: "+fhir.Reason(derr), now.Add(delay).UnixMilli(), ms, it.ID)
		w.Log.Info("outbox: delivery will be retried", "outbox_id", it.ID, "attempts", it.Attempts, "delay", delay)
	}
	if err != nil {
		return fmt.Errorf("outbox: record result for note %d: %w", it.ID, err)
	}
	return nil
}

// CollectAcks asks the sink about every note awaiting acknowledgement and records what it
// says: filed → sent, refused → held, resend → queued for another delivery. It reports
// how many notes changed state.
func (w *Worker) CollectAcks(ctx context.Context) (int, error) {
	if w.Acks == nil {
		return 0, nil
	}
	// Asked even when nothing waits: a sink may have acknowledgements to clear away.
	items, err := List(ctx, w.DB, Filter{State: StateAwaiting, Limit: 1000})
	if err != nil {
		return 0, err
	}
	byDoc := map[string]Item{}
	waiting := make([]fhir.Waiting, 0, len(items))
	for _, it := range items {
		byDoc[it.DocumentID] = it
		waiting = append(waiting, fhir.Waiting{DocumentID: it.DocumentID, Location: it.Location, Since: it.UpdatedAt})
	}
	acks, err := w.Acks.Acknowledgements(ctx, waiting)
	changed := 0
	for _, a := range acks {
		it, ok := byDoc[a.DocumentID]
		if !ok {
			continue
		}
		ms := w.Now().UnixMilli()
		ev := func(outcome string) func() audit.Event {
			return func() audit.Event {
				return w.event(audit.ActionWritebackResult, it, map[string]any{"outcome": outcome, "attempts": it.Attempts})
			}
		}
		var n int64
		var uerr error
		switch a.Outcome {
		case fhir.AckFiled:
			loc := a.Location
			if loc == "" {
				loc = it.Location
			}
			n, uerr = w.execAudited(ctx, ev("acknowledged"), `UPDATE fhir_outbox SET state = 'sent', reason = ?, sent_at = ?, location = ?,
				updated_at = ? WHERE id = ? AND state = 'awaiting_ack'`, a.Reason, ms, loc, ms, it.ID)
		case fhir.AckRefused, fhir.AckResend:
			// The receiver answered this copy; whatever goes next (a resend now, or a retry
			// once a person fixed the cause) is a new message.
			note := it.Note
			note.Resends++
			b, eerr := encodeNote(note)
			if eerr != nil {
				return changed, fmt.Errorf("outbox: record acknowledgement for note %d: %w", it.ID, eerr)
			}
			if a.Outcome == fhir.AckRefused {
				n, uerr = w.execAudited(ctx, ev("refused"), `UPDATE fhir_outbox SET state = 'held', reason = ?, note_json = ?, updated_at = ?
					WHERE id = ? AND state = 'awaiting_ack'`, a.Reason, b, ms, it.ID)
			} else {
				n, uerr = w.execAudited(ctx, ev("resend"), `UPDATE fhir_outbox SET state = 'queued', reason = ?, note_json = ?, next_attempt_at = ?,
					updated_at = ? WHERE id = ? AND state = 'awaiting_ack'`, "will resend: "+a.Reason, b, ms, ms, it.ID)
			}
		case fhir.AckWaiting:
			if a.Reason != "" && a.Reason != it.Reason {
				_, uerr = w.DB.ExecContext(ctx, `UPDATE fhir_outbox SET reason = ? WHERE id = ? AND state = 'awaiting_ack'`, a.Reason, it.ID)
			}
		}
		if uerr != nil {
			return changed, fmt.Errorf("outbox: record acknowledgement for note %d: %w", it.ID, uerr)
		}
		if n > 0 {
			changed++
			w.Log.Info("outbox: acknowledgement recorded", "outbox_id", it.ID, "outcome", string(a.Outcome))
		}
	}
	if changed > 0 {
		w.Wake()
	}
	return changed, err
}

// event is a write-back audit event for it with details d (ids and outcome only).
func (w *Worker) event(action audit.Action, it Item, d map[string]any) audit.Event {
	d["document_id"] = it.DocumentID
	d["outbox_id"] = it.ID
	return audit.Event{Actor: "system", Action: action, SessionID: it.SessionID, Details: d}
}

// execAudited runs one outbox update and, when it changed a row and w.Audit is set, the
// audit event ev describes, in one transaction. It returns the rows changed.
func (w *Worker) execAudited(ctx context.Context, ev func() audit.Event, q string, args ...any) (int64, error) {
	if w.Audit == nil {
		res, err := w.DB.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		n, _ := res.RowsAffected()
		return n, nil
	}
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		if err := w.Audit(ctx, tx, ev()); err != nil {
			return 0, err
		}
	}
	return n, tx.Commit()
}

// Flush gives every queued note a delivery attempt now, even one waiting out a backoff
// or a Retry-After, and returns when nothing is due any more or ctx ends (an attempt in
// progress is then cut short and recorded as retryable). A note that fails is
// rescheduled by its backoff as usual, so it is tried again only if that comes round
// before the deadline. It is the last step of a graceful shutdown: the EPR may be back,
// and the next start may be hours away. It reports how many notes are still queued for
// the next start. Call it only after Run has returned: one worker per database.
func (w *Worker) Flush(ctx context.Context) (left int, err error) {
	if _, err := w.Recover(ctx); err != nil {
		return 0, err
	}
	// Everything queued is due now; RunOnce takes them oldest-due first.
	if _, err := w.DB.ExecContext(ctx, `UPDATE fhir_outbox SET next_attempt_at = ? WHERE state = 'queued'`,
		w.Now().UnixMilli()); err != nil {
		return 0, fmt.Errorf("outbox: flush: %w", err)
	}
	for ctx.Err() == nil {
		did, err := w.RunOnce(ctx)
		if err != nil {
			w.Log.Error("outbox: delivery during shutdown failed", "err", err)
			break
		}
		if !did {
			break
		}
	}
	err = w.DB.QueryRowContext(context.WithoutCancel(ctx),
		`SELECT COUNT(*) FROM fhir_outbox WHERE state IN ('queued', 'sending')`).Scan(&left)
	return left, err
}
