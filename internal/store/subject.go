package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"scribe/internal/audit"
)

// MarkInterrupted records that a session was still recording when the server went down
// (found at start): it becomes paused, InterruptedAt is set to its last heartbeat (when
// the recording was last known to be running, not when the server came back), and the
// audit trail says why. Segments committed before the crash are kept as they are.
func (s *Store) MarkInterrupted(ctx context.Context, id string) (Consultation, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Consultation{}, fmt.Errorf("mark interrupted: %w", err)
	}
	defer tx.Rollback()
	c, err := s.consultation(ctx, tx, id)
	if err != nil {
		return Consultation{}, err
	}
	if c.State != StateRecording {
		return c, fmt.Errorf("%w: only a recording session can have been interrupted (it is %s)", ErrBadState, c.State)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consultations SET state = 'paused', interrupted_at = COALESCE(heartbeat_at, started_at) WHERE id = ?`, id); err != nil {
		return Consultation{}, fmt.Errorf("mark interrupted: %w", err)
	}
	var segments int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM segments WHERE session_id = ?`, id).Scan(&segments); err != nil {
		return Consultation{}, fmt.Errorf("mark interrupted: %w", err)
	}
	if c, err = s.consultation(ctx, tx, id); err != nil {
		return Consultation{}, err
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: "system", Action: audit.ActionSessionPause, SessionID: id,
		Details: map[string]any{"reason": "interrupted", "segments_kept": segments, "last_heartbeat": c.InterruptedAt.Format(time.RFC3339Nano)}}); err != nil {
		return Consultation{}, fmt.Errorf("mark interrupted: %w", err)
	}
	return c, tx.Commit()
}

// AuditEntry is one audit_log row as the auditor's API shows it.
type AuditEntry struct {
	Seq       int64           `json:"seq"`
	At        string          `json:"at"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	SessionID string          `json:"session_id,omitempty"`
	Details   json.RawMessage `json:"details"`
	Hash      string          `json:"hash"`
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	SessionID string
	AfterSeq  int64
	Limit     int // 0: 500
}

// AuditEntries lists audit entries in chain order.
func (s *Store) AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := `SELECT seq, at, actor, action, session_id, details, hash FROM audit_log WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.SessionID != "" {
		q += ` AND session_id = ?`
		args = append(args, f.SessionID)
	}
	if f.Limit <= 0 || f.Limit > 5000 {
		f.Limit = 500
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY seq LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var details string
		if err := rows.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.SessionID, &details, &e.Hash); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		e.Details = json.RawMessage(details)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SubjectSession is everything held about one consultation, decrypted.
type SubjectSession struct {
	Consultation Consultation `json:"session"`
	Segments     []Segment    `json:"segments"` // deleted ones included, marked
	Edits        []Edit       `json:"edits"`
	Flags        []ReviewFlag `json:"flags"`
	Audit        []AuditEntry `json:"audit"`
}

// SubjectRecord answers a subject access request for one NHS number.
type SubjectRecord struct {
	NHSNumber  string           `json:"nhs_number"`
	ExportedAt time.Time        `json:"exported_at"`
	Sessions   []SubjectSession `json:"sessions"`
}

// ExportSubject gathers everything held about the patient with this (normalised) NHS
// number, found through the keyed lookup hash, and records the export in the audit
// trail: one entry by the actor in ctx (WithActor) listing the sessions, never the number.
func (s *Store) ExportSubject(ctx context.Context, nhs string) (SubjectRecord, error) {
	rec := SubjectRecord{NHSNumber: nhs, ExportedAt: s.now().UTC(), Sessions: []SubjectSession{}}
	if nhs == "" {
		return rec, fmt.Errorf("%w: an NHS number is needed", ErrInvalid)
	}
	hashes := s.keys.LookupHashes(nhsHashLabel, []byte(nhs))
	q := `SELECT id FROM consultations WHERE nhs_hash IN (?` + repeatComma(len(hashes)-1) + `) ORDER BY started_at`
	args := make([]any, len(hashes))
	for i, h := range hashes {
		args[i] = h
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return rec, fmt.Errorf("subject access: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return rec, fmt.Errorf("subject access: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rec, fmt.Errorf("subject access: %w", err)
	}
	for _, id := range ids {
		var ss SubjectSession
		if ss.Consultation, err = s.Consultation(ctx, id); err != nil {
			return rec, err
		}
		if ss.Consultation.NHSNumber != nhs {
			continue // a hash collision: vanishingly unlikely, but the plaintext decides
		}
		if ss.Segments, err = s.Segments(ctx, id, true); err != nil {
			return rec, err
		}
		if ss.Edits, err = s.Edits(ctx, id); err != nil {
			return rec, err
		}
		if ss.Flags, err = s.Flags(ctx, id); err != nil {
			return rec, err
		}
		if ss.Audit, err = s.AuditEntries(ctx, AuditFilter{SessionID: id, Limit: 5000}); err != nil {
			return rec, err
		}
		rec.Sessions = append(rec.Sessions, ss)
	}
	// One entry per export, by whoever ran it (the actor in ctx), naming every session
	// handed over; a search that found nothing is recorded too.
	found := make([]string, len(rec.Sessions))
	for i, ss := range rec.Sessions {
		found[i] = ss.Consultation.ID
	}
	if err := s.Audit(ctx, audit.Event{Action: audit.ActionDataAccess,
		Details: map[string]any{"purpose": "subject_access_export", "sessions": found}}); err != nil {
		return SubjectRecord{}, err
	}
	return rec, nil
}

func repeatComma(n int) string {
	b := make([]byte, 0, 3*n)
	for range n {
		b = append(b, ", ?"...)
	}
	return string(b)
}

// DefaultTranscriptRetention is how long a transcript is kept after approval (and
// successful write-back, where there is a write-back outbox): the record of truth is
// then the EPR.
const DefaultTranscriptRetention = 30 * 24 * time.Hour

// PurgeCandidate is a session whose transcript retention has run out.
type PurgeCandidate struct {
	SessionID  string    `json:"session_id"`
	ApprovedAt time.Time `json:"approved_at"`
	Segments   int       `json:"segments"`
	Edits      int       `json:"edits"`
	Flags      int       `json:"flags"`
	Document   bool      `json:"document"`
}

// PurgeCandidates lists approved sessions whose transcripts are older than retention
// (after approval) and, when the write-back outbox exists, were delivered ("sent").
func (s *Store) PurgeCandidates(ctx context.Context, retention time.Duration) ([]PurgeCandidate, error) {
	if retention <= 0 {
		retention = DefaultTranscriptRetention
	}
	var outbox int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'fhir_outbox'`).Scan(&outbox); err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	q := `SELECT c.id, c.approved_at,
		(SELECT COUNT(*) FROM segments g WHERE g.session_id = c.id),
		(SELECT COUNT(*) FROM segment_edits e WHERE e.session_id = c.id),
		(SELECT COUNT(*) FROM flags f WHERE f.session_id = c.id),
		c.document_text <> ''
		FROM consultations c WHERE c.state = 'approved' AND c.approved_at < ?`
	if outbox > 0 {
		// Every note of the session (the original, amendments, withdrawals) must be in the
		// record: an amendment still on its way keeps the transcript.
		q += ` AND EXISTS (SELECT 1 FROM fhir_outbox o WHERE o.session_id = c.id AND o.state = 'sent')
			AND NOT EXISTS (SELECT 1 FROM fhir_outbox o WHERE o.session_id = c.id AND o.state != 'sent')`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY c.approved_at`, ms(s.now().Add(-retention)))
	if err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	defer rows.Close()
	out := []PurgeCandidate{}
	for rows.Next() {
		var p PurgeCandidate
		var at sql.NullInt64
		if err := rows.Scan(&p.SessionID, &at, &p.Segments, &p.Edits, &p.Flags, &p.Document); err != nil {
			return nil, fmt.Errorf("purge: %w", err)
		}
		p.ApprovedAt = fromNullMS(at)
		if p.Segments+p.Edits+p.Flags > 0 || p.Document {
			out = append(out, p)
		}
	}
	return out, rows.Err()
}

// PurgeTranscript deletes a purge candidate's transcript, edits, flags and document
// text, keeping the session row (times, state, document id) and recording the purge.
func (s *Store) PurgeTranscript(ctx context.Context, p PurgeCandidate) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM segments WHERE session_id = ?`, `DELETE FROM segment_edits WHERE session_id = ?`,
		`DELETE FROM flags WHERE session_id = ?`, `UPDATE consultations SET document_text = '' WHERE id = ?`} {
		if _, err := tx.ExecContext(ctx, q, p.SessionID); err != nil {
			return fmt.Errorf("purge %s: %w", p.SessionID, err)
		}
	}
	if err := s.auditTx(ctx, tx, audit.Event{Action: audit.ActionTranscriptPurged, SessionID: p.SessionID,
		Details: map[string]any{"segments": p.Segments, "edits": p.Edits, "flags": p.Flags, "reason": "retention"}}); err != nil {
		return fmt.Errorf("purge %s: %w", p.SessionID, err)
	}
	return tx.Commit()
}
