package store

import (
	"context"
	"database/sql"
	"fmt"

	"scribe/internal/domain"
)

// ReplaceSecondPass swaps an utterance's committed segments (first, as the pipeline
// committed them: found by their exact times among the session's machine segments) for
// the second-pass model's (refined, flagged second_pass), in the first ones' place in
// the transcript. It replaces nothing — and returns no segments and no error — when any
// of the first ones is gone or the clinician has touched it: edited (its version moved
// on), deleted, split or merged (its times changed) or flagged. An approved session
// refuses with ErrReadOnly. It returns the replaced ids and the new segments.
func (s *Store) ReplaceSecondPass(ctx context.Context, sessionID string, first, refined []domain.Segment) ([]string, []Segment, error) {
	if len(first) == 0 || len(refined) == 0 {
		return nil, nil, nil
	}
	tx, err := s.beginEditable(ctx, sessionID, "second pass")
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	var old []Segment
	for _, f := range first {
		rows, err := tx.QueryContext(ctx, `SELECT `+segCols+` FROM segments WHERE session_id = ? AND start_s = ? AND end_s = ? AND origin = ?`,
			sessionID, f.Start, f.End, OriginMachine)
		if err != nil {
			return nil, nil, fmt.Errorf("second pass: %w", err)
		}
		var found []Segment
		for rows.Next() {
			g, err := scanSegment(rows)
			if err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("second pass: %w", err)
			}
			found = append(found, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("second pass: %w", err)
		}
		// (The version moves on as words are committed to a line in progress, so it says
		// nothing here: the edits and flags do.)
		if len(found) != 1 || found[0].Deleted {
			return nil, nil, nil
		}
		if t, err := touched(ctx, tx, sessionID, found[0].ID); err != nil || t {
			return nil, nil, err
		}
		old = append(old, found[0])
	}
	// The new segments take the old ones' place: from the first one's position up to the
	// next segment's.
	lo, hi := old[0].Pos, old[0].Pos
	for _, g := range old {
		lo, hi = min(lo, g.Pos), max(hi, g.Pos)
	}
	var next sql.NullFloat64
	if err := tx.QueryRowContext(ctx, `SELECT MIN(pos) FROM segments WHERE session_id = ? AND pos > ?`, sessionID, hi).Scan(&next); err != nil {
		return nil, nil, fmt.Errorf("second pass: %w", err)
	}
	end := hi + 1
	if next.Valid {
		end = next.Float64
	}
	var out []Segment
	for i, seg := range refined {
		seg, fj := normaliseNewSegment(seg)
		seq, _, err := nextSeqPos(ctx, tx, sessionID)
		if err != nil {
			return nil, nil, err
		}
		pos := lo + (end-lo)*float64(i)/float64(len(refined))
		// The refined text becomes the machine draft that edit rates are measured against.
		g, err := s.insertMachine(ctx, tx, sessionID, seq, pos, seg, fj)
		if err != nil {
			return nil, nil, fmt.Errorf("second pass: %w", err)
		}
		out = append(out, g)
	}
	// Deleted after the inserts, so no new segment reuses an old one's id (ids follow seq).
	var replaced []string
	for _, g := range old {
		if _, err := tx.ExecContext(ctx, `DELETE FROM segments WHERE session_id = ? AND id = ?`, sessionID, g.ID); err != nil {
			return nil, nil, fmt.Errorf("second pass: %w", err)
		}
		replaced = append(replaced, g.ID)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("second pass: %w", err)
	}
	return replaced, out, nil
}
