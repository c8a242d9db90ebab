package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"scribe/internal/audit"
	"scribe/internal/domain"
)

// The kinds of item the pre-approval check raises.
const (
	ItemEmpty         = "empty"         // nothing to file: blocks approval
	ItemUntranscribed = "untranscribed" // a line where speech was heard but no words decoded
	ItemFlag          = "flag"          // a flag on a line or on the whole note, not closed
	ItemNHSNumber     = "nhs_number"    // the note has no NHS number: it will be held
)

// ApprovalItem is one thing the clinician must decide before approving a note: fix it,
// or (unless Blocking) confirm it explicitly. Each confirmation is audited.
type ApprovalItem struct {
	// ID is stable while the item stands: "empty", "nhs_number", "untranscribed:<segment>"
	// or "flag:<flag id>". The clinician confirms an item by its ID.
	ID        string      `json:"id"`
	Kind      string      `json:"kind"`
	Blocking  bool        `json:"blocking"`
	SegmentID string      `json:"segment_id,omitempty"`
	FlagID    int64       `json:"flag_id,omitempty"`
	Category  domain.Flag `json:"category,omitempty"`
	Start     float64     `json:"start"`
	Message   string      `json:"message"`           // what needs a decision, in words
	Confirm   string      `json:"confirm,omitempty"` // the statement the clinician ticks
}

// ErrApprovalCheck is wrapped by the error Approve returns while an item is open.
var ErrApprovalCheck = errors.New("the note needs a decision before approval")

// ApprovalCheckError lists the items still open at approval.
type ApprovalCheckError struct{ Open []ApprovalItem }

func (e *ApprovalCheckError) Error() string {
	msgs := make([]string, len(e.Open))
	for i, it := range e.Open {
		msgs[i] = it.Message
	}
	return fmt.Sprintf("%v: %s", ErrApprovalCheck, strings.Join(msgs, "; "))
}

func (e *ApprovalCheckError) Unwrap() error { return ErrApprovalCheck }

// clock renders seconds as hh:mm:ss, as the note does.
func clock(sec float64) string {
	s := int(math.Max(0, sec))
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// approvalItems is the pre-approval check of a consultation with its live segments (in
// order) and its review flags.
func approvalItems(c Consultation, segs []Segment, flags []ReviewFlag) []ApprovalItem {
	var items []ApprovalItem
	live := map[string]Segment{}
	for _, g := range segs {
		if !g.Deleted {
			live[g.ID] = g
		}
	}
	if len(live) == 0 {
		items = append(items, ApprovalItem{ID: ItemEmpty, Kind: ItemEmpty, Blocking: true,
			Message: "The note is empty: there is nothing to file. Add what was said, or discard this consultation (nothing is filed)."})
	}
	for _, g := range segs {
		if g.Deleted || strings.TrimSpace(g.Text) != "" {
			continue
		}
		items = append(items, ApprovalItem{ID: ItemUntranscribed + ":" + g.ID, Kind: ItemUntranscribed, SegmentID: g.ID, Start: g.Start,
			Message: fmt.Sprintf("Line at %s has no text: speech was heard but not recognised.", clock(g.Start)),
			Confirm: fmt.Sprintf("Keep it in the note as %q", UntranscribedMarker)})
	}
	for _, f := range flags {
		if f.State == FlagStateClosed {
			continue
		}
		it := ApprovalItem{ID: fmt.Sprintf("%s:%d", ItemFlag, f.ID), Kind: ItemFlag, FlagID: f.ID, Category: f.Category, SegmentID: f.SegmentID}
		what := strings.ReplaceAll(string(f.Category), "_", " ")
		if f.SegmentID == "" {
			it.Message = fmt.Sprintf("The whole note is flagged: %s.", what)
			it.Confirm = "I have dealt with this; the note is right to file"
		} else {
			g, ok := live[f.SegmentID]
			if !ok {
				continue // the flagged line was deleted
			}
			it.Start = g.Start
			it.Message = fmt.Sprintf("Line at %s is flagged: %s.", clock(g.Start), what)
			it.Confirm = "Checked, and corrected where needed"
		}
		items = append(items, it)
	}
	if c.NHSNumber == "" {
		items = append(items, ApprovalItem{ID: ItemNHSNumber, Kind: ItemNHSNumber,
			Message: "No NHS number: the note will be held, not filed, until one is added.",
			Confirm: "Approve without an NHS number for now"})
	}
	return items
}

// ApprovalCheck lists what the clinician must decide before the session can be approved.
func (s *Store) ApprovalCheck(ctx context.Context, sessionID string) ([]ApprovalItem, error) {
	c, err := s.Consultation(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	segs, err := s.Segments(ctx, sessionID, false)
	if err != nil {
		return nil, err
	}
	flags, err := s.Flags(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	items := approvalItems(c, segs, flags)
	if items == nil {
		items = []ApprovalItem{}
	}
	return items, nil
}

// checkApprovalTx runs the check inside the approval transaction: a blocking item or an
// item not in confirmed refuses the approval; each confirmed item is audited.
func (s *Store) checkApprovalTx(ctx context.Context, tx *sql.Tx, c Consultation, segs []Segment, userID int64, confirmed []string) error {
	flags, err := s.flagsTx(ctx, tx, c.ID)
	if err != nil {
		return err
	}
	var open, ok []ApprovalItem
	for _, it := range approvalItems(c, segs, flags) {
		if it.Blocking || !slices.Contains(confirmed, it.ID) {
			open = append(open, it)
		} else {
			ok = append(ok, it)
		}
	}
	if len(open) > 0 {
		return &ApprovalCheckError{Open: open}
	}
	actor := usernameTx(ctx, tx, userID)
	for _, it := range ok {
		d := map[string]any{"item": it.ID, "kind": it.Kind}
		if it.SegmentID != "" {
			d["segment_id"] = it.SegmentID
		}
		if it.FlagID != 0 {
			d["flag_id"], d["category"] = it.FlagID, string(it.Category)
		}
		if err := s.auditTx(ctx, tx, audit.Event{Actor: actor, Action: audit.ActionApprovalConfirm, SessionID: c.ID, Details: d}); err != nil {
			return err
		}
	}
	return nil
}

// flagsTx is Flags without the notes, read in tx (the check needs only ids and states).
func (s *Store) flagsTx(ctx context.Context, tx *sql.Tx, sessionID string) ([]ReviewFlag, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, segment_id, category, state FROM flags WHERE session_id = ? ORDER BY id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("list flags: %w", err)
	}
	defer rows.Close()
	var out []ReviewFlag
	for rows.Next() {
		f := ReviewFlag{SessionID: sessionID}
		if err := rows.Scan(&f.ID, &f.SegmentID, &f.Category, &f.State); err != nil {
			return nil, fmt.Errorf("list flags: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Discard closes a stopped consultation whose note is empty, so it leaves the
// clinician's worklist; nothing is filed. Audited.
func (s *Store) Discard(ctx context.Context, sessionID string, userID int64) error {
	tx, err := s.beginEditable(ctx, sessionID, "discard")
	if err != nil {
		return err
	}
	defer tx.Rollback()
	c, err := s.consultation(ctx, tx, sessionID)
	if err != nil {
		return err
	}
	if c.State != StateStopped {
		return fmt.Errorf("%w: only a stopped consultation can be discarded (it is %s)", ErrBadState, c.State)
	}
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM segments WHERE session_id = ? AND deleted = 0`, sessionID).Scan(&live); err != nil {
		return fmt.Errorf("discard: %w", err)
	}
	if live > 0 {
		return fmt.Errorf("%w: the note has %d lines; only an empty note can be discarded (approve it instead)", ErrBadState, live)
	}
	// Lines the clinician deleted, and their edit history, are not kept (flags stay: they
	// are the Clinical Safety Officer's incident records).
	for _, q := range []string{`DELETE FROM segment_edits WHERE session_id = ?`, `DELETE FROM segments WHERE session_id = ?`} {
		if _, err := tx.ExecContext(ctx, q, sessionID); err != nil {
			return fmt.Errorf("discard: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO session_discards(session_id, user_id, at) VALUES (?, ?, ?)`, sessionID, userID, ms(s.now())); err != nil {
		return fmt.Errorf("discard: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionSessionDiscard, SessionID: sessionID}); err != nil {
		return fmt.Errorf("discard: %w", err)
	}
	return tx.Commit()
}

// Discarded reports whether a consultation was discarded.
func (s *Store) Discarded(ctx context.Context, sessionID string) (bool, error) {
	return discardedQ(ctx, s.db, sessionID)
}

func discardedQ(ctx context.Context, q queryer, sessionID string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM session_discards WHERE session_id = ?`, sessionID).Scan(&n); err != nil {
		return false, fmt.Errorf("discarded: %w", err)
	}
	return n > 0, nil
}
