// Package outbox makes sure an approved note reaches the patient record exactly once.
// Approval writes the note into the outbox table in the same SQLite transaction that
// approves it; a Worker then delivers it through a fhir.Sink, retrying transient failures
// with exponential backoff and holding permanent ones for a person to fix.
//
// Exactly-once rests on two things: a row is only marked sent after the sink confirmed
// delivery, and every delivery carries the document's identifier as an idempotency key
// (FHIR conditional create or a search first, a file named after it, a MESH local id), so
// re-delivering after a crash finds the first copy instead of making a second. Routes that
// confirm later (a folder an engine collects from, MESH with ITK3 acknowledgements) leave
// the note "awaiting_ack" until the sink reports the acknowledgement.
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"scribe/internal/fhir"
)

// State is where a note is on its way to the record.
type State string

const (
	StateQueued   State = "queued"       // waiting for (another) attempt
	StateSending  State = "sending"      // an attempt is in flight
	StateAwaiting State = "awaiting_ack" // handed over; waiting for the receiver's acknowledgement
	StateSent     State = "sent"         // the record has it
	StateHeld     State = "held"         // a permanent problem; Reason says what to fix
	StateFailed   State = "failed"       // retryable failures went on too long; Reason has the last
)

// ErrNotFound is returned for an unknown outbox id.
var ErrNotFound = errors.New("outbox entry not found")

// Kind is what an outbox entry does to the record.
type Kind string

const (
	KindNote     Kind = "note"     // a newly approved note
	KindAmend    Kind = "amend"    // a new version that replaces a delivered note
	KindWithdraw Kind = "withdraw" // marks a delivered note entered-in-error
)

// tableSQL is the outbox table. Times are Unix milliseconds. kind and related_document_id
// (ids only, no patient data) let the CSO list amendments and withdrawals without
// decrypting notes.
const tableSQL = `CREATE TABLE IF NOT EXISTS fhir_outbox (
	id                  INTEGER PRIMARY KEY AUTOINCREMENT,
	document_id         TEXT    NOT NULL UNIQUE,
	session_id          TEXT    NOT NULL,
	note_json           TEXT    NOT NULL,
	state               TEXT    NOT NULL CHECK (state IN ('queued','sending','awaiting_ack','sent','held','failed')),
	reason              TEXT    NOT NULL DEFAULT '',
	attempts            INTEGER NOT NULL DEFAULT 0,
	next_attempt_at     INTEGER NOT NULL,
	created_at          INTEGER NOT NULL,
	updated_at          INTEGER NOT NULL,
	sent_at             INTEGER,
	location            TEXT    NOT NULL DEFAULT '',
	kind                TEXT    NOT NULL DEFAULT 'note' CHECK (kind IN ('note','amend','withdraw')),
	related_document_id TEXT    NOT NULL DEFAULT '',
	actor               TEXT    NOT NULL DEFAULT ''
)`

// Schema creates the outbox table and its indexes.
const Schema = tableSQL + `;
CREATE INDEX IF NOT EXISTS fhir_outbox_due ON fhir_outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS fhir_outbox_session ON fhir_outbox (session_id);
`

// Execer is what Enqueue needs: a *sql.Tx (normally) or a *sql.DB.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Querier is what the read functions need: a *sql.DB or a *sql.Tx.
type Querier interface {
	Execer
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// EnsureSchema creates the outbox table if it is missing, and brings a table made by an
// earlier version up to date (SQLite cannot change a CHECK constraint in place, so the
// table is rebuilt in one transaction, rows and ids kept).
func EnsureSchema(ctx context.Context, db *sql.DB) error {
	var old string
	err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'fhir_outbox'`).Scan(&old)
	if err == nil && !strings.Contains(old, "awaiting_ack") {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("upgrade outbox schema: %w", err)
		}
		defer tx.Rollback()
		const cols = `id, document_id, session_id, note_json, state, reason, attempts, next_attempt_at, created_at, updated_at, sent_at, location`
		for _, q := range []string{
			`ALTER TABLE fhir_outbox RENAME TO fhir_outbox_old`,
			tableSQL,
			`INSERT INTO fhir_outbox (` + cols + `) SELECT ` + cols + ` FROM fhir_outbox_old`,
			`DROP TABLE fhir_outbox_old`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("upgrade outbox schema: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("upgrade outbox schema: %w", err)
		}
	} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read outbox schema: %w", err)
	}
	if _, err := db.ExecContext(ctx, Schema); err != nil {
		return fmt.Errorf("create outbox schema: %w", err)
	}
	return nil
}

// Item is one note in the outbox, as shown in the UI and API.
type Item struct {
	ID            int64      `json:"id"`
	DocumentID    string     `json:"document_id"`
	SessionID     string     `json:"session_id"`
	State         State      `json:"state"`
	Reason        string     `json:"reason,omitempty"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	SentAt        *time.Time `json:"sent_at,omitempty"`
	Location      string     `json:"location,omitempty"`
	Kind          Kind       `json:"kind"`
	// RelatedDocumentID is the delivered note an amendment replaces or a withdrawal retracts.
	RelatedDocumentID string `json:"related_document_id,omitempty"`
	// Actor is who asked for an amendment or withdrawal (username).
	Actor string `json:"actor,omitempty"`
	// Note is the document itself; it holds patient data, so it is not part of the JSON view.
	Note fhir.Note `json:"-"`
}

// Enqueue adds an approved note to the outbox inside the caller's transaction, so the note
// is queued if and only if the approval commits. Enqueueing the same DocumentID again
// returns the existing entry's id and changes nothing.
func Enqueue(ctx context.Context, tx Execer, n fhir.Note) (int64, error) {
	return insertNote(ctx, tx, n, "")
}

// EnqueueCorrection queues an amendment (n.ReplacesDocumentID set) or a withdrawal
// (n.WithdrawsDocumentID set) of a delivered note, asked for by actor.
func EnqueueCorrection(ctx context.Context, tx Execer, n fhir.Note, actor string) (int64, error) {
	if n.ReplacesDocumentID == "" && n.WithdrawsDocumentID == "" {
		return 0, fmt.Errorf("enqueue correction: neither an amendment nor a withdrawal")
	}
	return insertNote(ctx, tx, n, actor)
}

func kindOf(n fhir.Note) (Kind, string) {
	switch {
	case n.WithdrawsDocumentID != "":
		return KindWithdraw, n.WithdrawsDocumentID
	case n.ReplacesDocumentID != "":
		return KindAmend, n.ReplacesDocumentID
	}
	return KindNote, ""
}

func insertNote(ctx context.Context, tx Execer, n fhir.Note, actor string) (int64, error) {
	if n.DocumentID == "" {
		return 0, fmt.Errorf("enqueue note: no document id")
	}
	b, err := encodeNote(n)
	if err != nil {
		return 0, fmt.Errorf("enqueue note: encode: %w", err)
	}
	ms := time.Now().UnixMilli()
	kind, related := kindOf(n)
	if _, err := tx.ExecContext(ctx, `INSERT INTO fhir_outbox
		(document_id, session_id, note_json, state, next_attempt_at, created_at, updated_at, kind, related_document_id, actor)
		VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?) ON CONFLICT (document_id) DO NOTHING`,
		n.DocumentID, n.SessionID, b, ms, ms, ms, kind, related, actor); err != nil {
		return 0, fmt.Errorf("enqueue note: %w", err)
	}
	var id int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM fhir_outbox WHERE document_id = ?`, n.DocumentID).Scan(&id); err != nil {
		return 0, fmt.Errorf("enqueue note: read id: %w", err)
	}
	return id, nil
}

const itemColumns = `id, document_id, session_id, note_json, state, reason, attempts,
	next_attempt_at, created_at, updated_at, sent_at, location, kind, related_document_id, actor`

type scanner interface{ Scan(dest ...any) error }

func scanItem(s scanner) (Item, error) {
	var it Item
	var noteJSON string
	var next, created, updated int64
	var sent sql.NullInt64
	if err := s.Scan(&it.ID, &it.DocumentID, &it.SessionID, &noteJSON, &it.State, &it.Reason, &it.Attempts,
		&next, &created, &updated, &sent, &it.Location, &it.Kind, &it.RelatedDocumentID, &it.Actor); err != nil {
		return Item{}, err
	}
	if err := decodeNote(noteJSON, it.DocumentID, &it.Note); err != nil {
		return Item{}, fmt.Errorf("outbox entry %d: decode note: %w", it.ID, err)
	}
	it.NextAttemptAt, it.CreatedAt, it.UpdatedAt = time.UnixMilli(next), time.UnixMilli(created), time.UnixMilli(updated)
	if sent.Valid {
		t := time.UnixMilli(sent.Int64)
		it.SentAt = &t
	}
	return it, nil
}

// Get returns one outbox entry.
func Get(ctx context.Context, db Querier, id int64) (Item, error) {
	it, err := scanItem(db.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM fhir_outbox WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, fmt.Errorf("outbox entry %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Item{}, fmt.Errorf("get outbox entry %d: %w", id, err)
	}
	return it, nil
}

// Filter narrows List; zero values match everything.
type Filter struct {
	SessionID string
	State     State
	// Corrections lists only amendments and withdrawals.
	Corrections bool
	Limit       int // default 100
}

// List returns outbox entries, newest first.
func List(ctx context.Context, db Querier, f Filter) ([]Item, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := db.QueryContext(ctx, `SELECT `+itemColumns+` FROM fhir_outbox
		WHERE (? = '' OR session_id = ?) AND (? = '' OR state = ?) AND (? = 0 OR kind != 'note')
		ORDER BY id DESC LIMIT ?`, f.SessionID, f.SessionID, string(f.State), string(f.State), f.Corrections, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("list outbox: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return out, nil
}

// Retry puts a held or failed note back in the queue for an immediate attempt, after an
// administrator fixed what its reason named. Notes in any other state are left alone.
func Retry(ctx context.Context, db Execer, id int64) error {
	now := time.Now()
	res, err := db.ExecContext(ctx, `UPDATE fhir_outbox SET state = 'queued', reason = '', attempts = 0,
		next_attempt_at = ?, updated_at = ? WHERE id = ? AND state IN ('held', 'failed')`, now.UnixMilli(), now.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("retry outbox entry %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var state string
		err := db.QueryRowContext(ctx, `SELECT state FROM fhir_outbox WHERE id = ?`, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("retry outbox entry %d: %w", id, ErrNotFound)
		}
		return fmt.Errorf("retry outbox entry %d: it is %s, only held or failed notes can be retried", id, state)
	}
	return nil
}

// ReplaceNote swaps the stored note of a queued, held or failed entry (for example after the
// clinician corrected the NHS number) and queues it again. The document id must not change.
func ReplaceNote(ctx context.Context, db Execer, id int64, n fhir.Note) error {
	now := time.Now()
	b, err := encodeNote(n)
	if err != nil {
		return fmt.Errorf("replace outbox note: encode: %w", err)
	}
	res, err := db.ExecContext(ctx, `UPDATE fhir_outbox SET note_json = ?, state = 'queued', reason = '', attempts = 0,
		next_attempt_at = ?, updated_at = ? WHERE id = ? AND document_id = ? AND state IN ('queued', 'held', 'failed')`,
		b, now.UnixMilli(), now.UnixMilli(), id, n.DocumentID)
	if err != nil {
		return fmt.Errorf("replace outbox note %d: %w", id, err)
	}
	if c, _ := res.RowsAffected(); c == 0 {
		return fmt.Errorf("replace outbox note %d: no held or failed entry with that document id", id)
	}
	return nil
}

// Counts returns how many entries are in each state.
func Counts(ctx context.Context, db Querier) (map[State]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT state, COUNT(*) FROM fhir_outbox GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("outbox counts: %w", err)
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var st State
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("outbox counts: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}
