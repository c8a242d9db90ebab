// Package audit keeps an append-only, hash-chained audit trail in SQLite.
//
// Every entry's hash covers its own content and the previous entry's hash, so editing,
// deleting, reordering or inserting an entry breaks the chain at that point and Verify
// names it. Triggers refuse UPDATE and DELETE on the table as defence in depth; the
// chain still catches anyone who drops the triggers or edits the database file.
//
// The hash is unkeyed, so someone able to rewrite the whole table from a point onwards
// (recomputing every later hash) or truncate its tail is caught only by comparing the
// chain with copies of its head kept elsewhere: the signed checkpoints of anchor.go,
// written to the system journal, a checkpoint file and every backup (CheckAnchors).
//
// # Hash input
//
// hash = lowercase hex SHA-256 of the UTF-8 bytes
//
//	{"seq":N,"at":"…","actor":"…","action":"…","session_id":"…","details":D,"prev_hash":"…"}
//
// with the keys in exactly that order and no whitespace. seq is a decimal integer; at is
// RFC 3339 with nanoseconds in UTC (time.RFC3339Nano, trailing zeros trimmed); strings are
// JSON strings as Go's encoding/json writes them with HTML escaping off. D is the details
// column's text verbatim, which Append writes in canonical form: a JSON object whose keys
// are sorted by byte order at every level, no whitespace, numbers as written by the
// caller's Go values, HTML escaping off, and {} when there are no details. The first
// entry's prev_hash is Genesis.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Genesis is the prev_hash of the first entry: 64 zeros, the hash of "nothing before".
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Action names what an audit entry records.
type Action string

// The actions scribe records. Details noted per action are what callers should include.
const (
	ActionLogin            Action = "login"
	ActionLogout           Action = "logout"
	ActionLoginFailed      Action = "login_failed"
	ActionSessionStart     Action = "session_start" // details: consent_by, consent_at
	ActionSessionPause     Action = "session_pause"
	ActionSessionResume    Action = "session_resume"
	ActionSessionStop      Action = "session_stop"
	ActionSegmentEdit      Action = "segment_edit" // details: segment_id (never the words)
	ActionSegmentFlag      Action = "segment_flag" // details: segment_id, flag
	ActionSessionApprove   Action = "session_approve"
	ActionWritebackAttempt Action = "writeback_attempt"
	ActionWritebackResult  Action = "writeback_result" // details: ok, status, error
	ActionAudioDeleted     Action = "audio_deleted"    // details: session, bytes, reason
	ActionTranscriptPurged Action = "transcript_purged"
	ActionConfigChange     Action = "config_change"
	ActionUserChange       Action = "user_change"
	ActionKeyRotated       Action = "key_rotated" // details: version
	// ActionDataAccess records reading patient data outside the clinician's own review:
	// a CSO opening a flagged segment, a subject access export. details: purpose, ids.
	ActionDataAccess Action = "data_access"
	// Corrections of an approved note (issue #15); details: ids and the clinician's reason
	// category, never the NHS number or the text.
	ActionNHSNumberCorrected Action = "nhs_number_corrected" // a held note's number added or fixed
	ActionNoteAmended        Action = "note_amended"         // a new version replaces a delivered note
	ActionNoteWithdrawn      Action = "note_withdrawn"       // a delivered note marked entered-in-error
)

// Actions of the clinician's review (issue 13).
const (
	// ActionApprovalConfirm records the clinician's explicit decision, at approval, on one
	// item of the pre-approval check (a line without text kept as a marker, a flag
	// checked, no NHS number). details: item, kind, segment_id or flag_id (never words).
	ActionApprovalConfirm Action = "approval_confirm"
	// ActionSessionDiscard: a stopped consultation with an empty note closed, not filed.
	ActionSessionDiscard Action = "session_discard"
)

var knownActions = map[Action]bool{
	ActionLogin: true, ActionLogout: true, ActionLoginFailed: true,
	ActionSessionStart: true, ActionSessionPause: true, ActionSessionResume: true,
	ActionSessionStop: true, ActionSegmentEdit: true, ActionSegmentFlag: true,
	ActionSessionApprove: true, ActionWritebackAttempt: true, ActionWritebackResult: true,
	ActionAudioDeleted: true, ActionTranscriptPurged: true, ActionConfigChange: true,
	ActionUserChange: true, ActionKeyRotated: true, ActionDataAccess: true,
	ActionNHSNumberCorrected: true, ActionNoteAmended: true, ActionNoteWithdrawn: true,
	ActionApprovalConfirm: true, ActionSessionDiscard: true,
}

// Event is one thing to record. At defaults to the current time when zero.
type Event struct {
	At        time.Time
	Actor     string // username, or "system"
	Action    Action
	SessionID string // consultation session, when the event concerns one
	Details   map[string]any
}

// ErrRejected is wrapped by Append errors for events that are invalid or would put
// patient data into the trail.
var ErrRejected = errors.New("audit event rejected")

const schema = `
CREATE TABLE IF NOT EXISTS audit_log (
	seq        INTEGER PRIMARY KEY,
	at         TEXT NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	session_id TEXT NOT NULL DEFAULT '',
	details    TEXT NOT NULL DEFAULT '{}',
	prev_hash  TEXT NOT NULL UNIQUE, -- two entries claiming one predecessor would fork the chain
	hash       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_session ON audit_log(session_id) WHERE session_id <> '';
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END;
`

// EnsureSchema creates the audit_log table and its guard triggers, and the table of
// checkpoints (anchor.go), if they are missing.
func EnsureSchema(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, schema+checkpointSchema); err != nil {
		return fmt.Errorf("create audit_log schema: %w", err)
	}
	return nil
}

// Log appends events to the audit trail. It is safe for concurrent use.
type Log struct {
	db  *sql.DB
	now func() time.Time
	mu  sync.Mutex // serialises Append so the process never races itself for the chain head
}

// New returns a Log writing to db; call EnsureSchema first.
func New(db *sql.DB) *Log { return &Log{db: db, now: time.Now} }

// Append records ev in its own transaction.
func (l *Log) Append(ctx context.Context, ev Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit append: begin: %w", err)
	}
	defer tx.Rollback()
	if err := l.AppendTx(ctx, tx, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit append: commit: %w", err)
	}
	return nil
}

// AppendTx records ev inside the caller's transaction, so the entry commits or rolls back
// with the change it describes. The chain cannot fork across transactions: SQLite admits
// one writer at a time, seq is the primary key and prev_hash is unique.
func (l *Log) AppendTx(ctx context.Context, tx *sql.Tx, ev Event) error {
	if err := checkEvent(ev); err != nil {
		return err
	}
	details, err := canonicalDetails(ev.Details)
	if err != nil {
		return err
	}
	at := ev.At
	if at.IsZero() {
		at = l.now()
	}
	e := entry{
		At: at.UTC().Format(time.RFC3339Nano), Actor: ev.Actor, Action: string(ev.Action),
		SessionID: ev.SessionID, Details: details, PrevHash: Genesis,
	}
	var last sql.NullInt64
	var lastHash sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&last, &lastHash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		e.Seq = 1
	case err != nil:
		return fmt.Errorf("audit append: read chain head: %w", err)
	default:
		e.Seq, e.PrevHash = last.Int64+1, lastHash.String
	}
	e.Hash = e.computeHash()
	_, err = tx.ExecContext(ctx,
		`INSERT INTO audit_log(seq, at, actor, action, session_id, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)`,
		e.Seq, e.At, e.Actor, e.Action, e.SessionID, e.Details, e.PrevHash, e.Hash)
	if err != nil {
		return fmt.Errorf("audit append %s: %w", ev.Action, err)
	}
	return nil
}

func checkEvent(ev Event) error {
	if !knownActions[ev.Action] {
		return fmt.Errorf("%w: unknown action %q", ErrRejected, ev.Action)
	}
	if ev.Actor == "" {
		return fmt.Errorf("%w: %s event has no actor", ErrRejected, ev.Action)
	}
	if looksLikeNHSNumber(ev.Actor) {
		return fmt.Errorf("%w: actor looks like an NHS number", ErrRejected)
	}
	if looksLikeNHSNumber(ev.SessionID) {
		return fmt.Errorf("%w: session id looks like an NHS number", ErrRejected)
	}
	return nil
}

// canonicalDetails encodes details canonically (see the package comment) after checking
// them for patient data. Encoding, decoding into generic values and encoding again makes
// struct values canonical too and lets the guard see every string, however it was typed.
func canonicalDetails(details map[string]any) (string, error) {
	if len(details) == 0 {
		return "{}", nil
	}
	raw, err := marshal(details)
	if err != nil {
		return "", fmt.Errorf("%w: details do not encode as JSON: %w", ErrRejected, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep numbers exactly as the caller wrote them
	var generic map[string]any
	if err := dec.Decode(&generic); err != nil {
		return "", fmt.Errorf("%w: details: %w", ErrRejected, err)
	}
	if err := checkDetails("details", generic); err != nil {
		return "", err
	}
	out, err := marshal(generic)
	if err != nil {
		return "", fmt.Errorf("%w: details: %w", ErrRejected, err)
	}
	return string(out), nil
}

// marshal is json.Marshal without HTML escaping and without the trailing newline.
// encoding/json writes map keys sorted, which is what makes the output canonical.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// entry is one row of audit_log.
type entry struct {
	Seq                                   int64
	At, Actor, Action, SessionID, Details string
	PrevHash, Hash                        string
}

// computeHash hashes the entry as the package comment describes. It is written out by
// hand rather than through a struct so the byte layout is fixed by this code alone.
func (e entry) computeHash() string {
	str := func(s string) []byte { b, _ := marshal(s); return b } // strings always encode
	var b bytes.Buffer
	b.WriteString(`{"seq":`)
	b.WriteString(strconv.FormatInt(e.Seq, 10))
	b.WriteString(`,"at":`)
	b.Write(str(e.At))
	b.WriteString(`,"actor":`)
	b.Write(str(e.Actor))
	b.WriteString(`,"action":`)
	b.Write(str(e.Action))
	b.WriteString(`,"session_id":`)
	b.Write(str(e.SessionID))
	b.WriteString(`,"details":`)
	b.WriteString(e.Details)
	b.WriteString(`,"prev_hash":`)
	b.Write(str(e.PrevHash))
	b.WriteString(`}`)
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}
