package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"scribe/internal/audit"
	"scribe/internal/cleantext"
	"scribe/internal/domain"
)

// Segment origins.
const (
	OriginMachine = "machine" // committed by the transcription pipeline
	OriginSplit   = "split"   // second half of a segment the clinician split
	OriginAdded   = "added"   // a missed line the clinician typed in
)

// MaxSegmentText bounds one segment's text, in characters.
const MaxSegmentText = 10000

// MaxSessionText bounds a session's transcript, in characters, against edits and added
// lines that grow it (about eight hours of speech; a consultation has a few thousand).
const MaxSessionText = 500_000

// Segment is a transcript segment as stored, with its edit version.
type Segment struct {
	ID             string         `json:"id"`
	Seq            int64          `json:"seq"`
	Pos            float64        `json:"pos"`
	Start          float64        `json:"start"`
	End            float64        `json:"end"`
	Speaker        domain.Speaker `json:"speaker"`
	Text           string         `json:"text"`
	Flags          []domain.Flag  `json:"flags"`        // machine flags
	ReviewFlags    []domain.Flag  `json:"review_flags"` // raised by clinicians (see Flags)
	Origin         string         `json:"origin"`
	MachineText    string         `json:"-"`
	MachineSpeaker domain.Speaker `json:"-"`
	NoSpeechProb   float64        `json:"no_speech_prob,omitempty"`
	AvgLogProb     float64        `json:"avg_logprob,omitempty"`
	Version        int64          `json:"version"`
	Deleted        bool           `json:"deleted"`
}

const segCols = `id, seq, pos, start_s, end_s, speaker, text, flags, origin, machine_text, machine_speaker, no_speech_prob, avg_logprob, version, deleted`

func scanSegment(row interface{ Scan(...any) error }) (Segment, error) {
	var g Segment
	var flags string
	err := row.Scan(&g.ID, &g.Seq, &g.Pos, &g.Start, &g.End, &g.Speaker, &g.Text, &flags, &g.Origin, &g.MachineText,
		&g.MachineSpeaker, &g.NoSpeechProb, &g.AvgLogProb, &g.Version, &g.Deleted)
	if err != nil {
		return g, err
	}
	if err := json.Unmarshal([]byte(flags), &g.Flags); err != nil {
		return g, fmt.Errorf("segment %s flags: %w", g.ID, err)
	}
	if g.Flags == nil {
		g.Flags = []domain.Flag{}
	}
	g.ReviewFlags = []domain.Flag{}
	return g, nil
}

// openSegment decrypts a scanned segment's text fields.
func (s *Store) openSegment(sessionID string, g *Segment) error {
	id := sessionID + "/" + g.ID
	var err error
	if g.Text, err = s.unseal("segments", "text", id, g.Text); err != nil {
		return err
	}
	g.MachineText, err = s.unseal("segments", "machine_text", id, g.MachineText)
	return err
}

// normaliseNewSegment prepares a machine segment for its row: a speaker label the store
// does not know becomes unknown (the review page only offers known ones), and the flags
// are stored as a JSON array, never null, so readers need no nil case.
func normaliseNewSegment(seg domain.Segment) (domain.Segment, string) {
	if _, err := domain.ParseSpeaker(string(seg.Speaker)); err != nil {
		seg.Speaker = domain.SpeakerUnknown
	}
	flags := seg.Flags
	if flags == nil {
		flags = []domain.Flag{}
	}
	fj, _ := json.Marshal(flags)
	return seg, string(fj)
}

func (s *Store) sealSegmentText(sessionID, segID, text string) (string, error) {
	return s.seal("segments", "text", sessionID+"/"+segID, text)
}

// InsertCommitted stores a segment the pipeline committed, at the end of the transcript,
// and returns it with its session-local id ("s1", "s2", …).
func (s *Store) InsertCommitted(ctx context.Context, sessionID string, seg domain.Segment) (Segment, error) {
	seg, fj := normaliseNewSegment(seg)
	tx, err := s.beginEditable(ctx, sessionID, "insert segment")
	if err != nil {
		return Segment{}, err
	}
	defer tx.Rollback()
	seq, pos, err := nextSeqPos(ctx, tx, sessionID)
	if err != nil {
		return Segment{}, err
	}
	g, err := s.insertMachine(ctx, tx, sessionID, seq, pos, seg, fj)
	if err != nil {
		return Segment{}, err
	}
	return g, tx.Commit()
}

// ExtendCommitted appends a piece the pipeline committed to the line it is still
// committing words to (domain.LiveEvent.Continues), machine segment id: its text and
// machine draft grow, its end moves on, and its version moves on, so an edit based on the
// shorter line is refused as a conflict rather than dropping the new words. A segment the
// clinician has touched meanwhile (edited, split, merged, deleted or flagged) is left as
// it is, and the piece becomes a segment of its own after it. It returns the segment that
// holds the piece.
func (s *Store) ExtendCommitted(ctx context.Context, sessionID, id string, piece domain.Segment) (Segment, error) {
	tx, err := s.beginEditable(ctx, sessionID, "extend segment")
	if err != nil {
		return Segment{}, err
	}
	defer tx.Rollback()
	g, err := s.getSegment(ctx, tx, sessionID, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Segment{}, err
	}
	keep := err != nil || g.Deleted || g.Origin != OriginMachine
	if !keep {
		if keep, err = touched(ctx, tx, sessionID, id); err != nil {
			return Segment{}, err
		}
	}
	if keep {
		seg, fj := normaliseNewSegment(piece)
		seq, pos, err := nextSeqPos(ctx, tx, sessionID)
		if err != nil {
			return Segment{}, err
		}
		if g, err = s.insertMachine(ctx, tx, sessionID, seq, pos, seg, fj); err != nil {
			return Segment{}, err
		}
		return g, tx.Commit()
	}
	line := domain.Segment{Start: g.Start, End: g.End, Speaker: g.Speaker, Text: g.Text, Flags: g.Flags, NoSpeechProb: g.NoSpeechProb, AvgLogProb: g.AvgLogProb}
	line.Extend(piece)
	line, fj := normaliseNewSegment(line)
	text, err := s.sealSegmentText(sessionID, id, line.Text)
	if err != nil {
		return Segment{}, err
	}
	machine, err := s.seal("segments", "machine_text", sessionID+"/"+id, line.Text)
	if err != nil {
		return Segment{}, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE segments SET end_s = ?, speaker = ?, text = ?, flags = ?, machine_text = ?, machine_speaker = ?,
		no_speech_prob = ?, avg_logprob = ?, version = version + 1 WHERE session_id = ? AND id = ?`,
		line.End, line.Speaker, text, fj, machine, line.Speaker, line.NoSpeechProb, line.AvgLogProb, sessionID, id)
	if err != nil {
		return Segment{}, fmt.Errorf("extend segment: %w", err)
	}
	if g, err = s.getSegment(ctx, tx, sessionID, id); err != nil {
		return Segment{}, err
	}
	return g, tx.Commit()
}

// touched says whether the clinician has edited or flagged segment id.
func touched(ctx context.Context, tx *sql.Tx, sessionID, id string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM segment_edits WHERE session_id = ?1 AND segment_id = ?2)
		+ (SELECT COUNT(*) FROM flags WHERE session_id = ?1 AND segment_id = ?2)`, sessionID, id).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("segment %s edits: %w", id, err)
	}
	return n > 0, nil
}

// insertMachine writes a normalised machine segment (flags fj) as row seq at pos, its
// text also kept as the machine draft that edit rates are measured against, and returns it.
func (s *Store) insertMachine(ctx context.Context, tx *sql.Tx, sessionID string, seq int64, pos float64, seg domain.Segment, fj string) (Segment, error) {
	id := fmt.Sprintf("s%d", seq)
	text, err := s.sealSegmentText(sessionID, id, seg.Text)
	if err != nil {
		return Segment{}, err
	}
	machine, err := s.seal("segments", "machine_text", sessionID+"/"+id, seg.Text)
	if err != nil {
		return Segment{}, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO segments(session_id, id, seq, pos, start_s, end_s, speaker, text, flags, origin, machine_text, machine_speaker, no_speech_prob, avg_logprob)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'machine', ?, ?, ?, ?)`, sessionID, id, seq, pos, seg.Start, seg.End, seg.Speaker, text, fj,
		machine, seg.Speaker, seg.NoSpeechProb, seg.AvgLogProb)
	if err != nil {
		return Segment{}, fmt.Errorf("insert segment: %w", err)
	}
	return s.getSegment(ctx, tx, sessionID, id)
}

func nextSeqPos(ctx context.Context, tx *sql.Tx, sessionID string) (int64, float64, error) {
	var seq int64
	var pos float64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1, COALESCE(MAX(pos), 0) + 1 FROM segments WHERE session_id = ?`, sessionID).Scan(&seq, &pos)
	if err != nil {
		return 0, 0, fmt.Errorf("next segment number: %w", err)
	}
	return seq, pos, nil
}

func (s *Store) getSegment(ctx context.Context, q queryer, sessionID, id string) (Segment, error) {
	g, err := scanSegment(q.QueryRowContext(ctx, `SELECT `+segCols+` FROM segments WHERE session_id = ? AND id = ?`, sessionID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Segment{}, fmt.Errorf("segment %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Segment{}, fmt.Errorf("segment %q: %w", id, err)
	}
	if err := s.openSegment(sessionID, &g); err != nil {
		return Segment{}, err
	}
	return g, nil
}

// Segments returns a session's segments in transcript order, with their review flags.
// Deleted segments are included only when includeDeleted is set.
func (s *Store) Segments(ctx context.Context, sessionID string, includeDeleted bool) ([]Segment, error) {
	q := `SELECT ` + segCols + ` FROM segments WHERE session_id = ?`
	if !includeDeleted {
		q += ` AND deleted = 0`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY pos, seq`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	defer rows.Close()
	out := []Segment{}
	index := map[string]int{}
	for rows.Next() {
		g, err := scanSegment(rows)
		if err == nil {
			err = s.openSegment(sessionID, &g)
		}
		if err != nil {
			return nil, fmt.Errorf("list segments: %w", err)
		}
		index[g.ID] = len(out)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	flags, err := s.Flags(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	for _, f := range flags {
		if i, ok := index[f.SegmentID]; ok && !slices.Contains(out[i].ReviewFlags, f.Category) {
			out[i].ReviewFlags = append(out[i].ReviewFlags, f.Category)
		}
	}
	return out, nil
}

// Segment returns one segment with its review flags.
func (s *Store) Segment(ctx context.Context, sessionID, id string) (Segment, error) {
	g, err := s.getSegment(ctx, s.db, sessionID, id)
	if err != nil {
		return g, err
	}
	flags, err := s.Flags(ctx, sessionID)
	if err != nil {
		return g, err
	}
	for _, f := range flags {
		if f.SegmentID == id && !slices.Contains(g.ReviewFlags, f.Category) {
			g.ReviewFlags = append(g.ReviewFlags, f.Category)
		}
	}
	return g, nil
}

// snapshot is the editable part of a segment, as kept in segment_edits.
type snapshot struct {
	Pos     float64        `json:"pos"`
	Start   float64        `json:"start"`
	End     float64        `json:"end"`
	Speaker domain.Speaker `json:"speaker"`
	Text    string         `json:"text"`
	Deleted bool           `json:"deleted"`
}

func snap(g Segment) *snapshot {
	return &snapshot{Pos: g.Pos, Start: g.Start, End: g.End, Speaker: g.Speaker, Text: g.Text, Deleted: g.Deleted}
}

// editTx is one edit in progress: it remembers the first state of every segment it
// touches so the edit can be undone.
type editTx struct {
	s       *Store
	ctx     context.Context
	tx      *sql.Tx
	session string
	before  map[string]*snapshot
	order   []string
}

func (e *editTx) get(id string) (Segment, error) { return e.s.getSegment(e.ctx, e.tx, e.session, id) }

// update writes g's editable fields and bumps its version.
func (e *editTx) update(old, g Segment) error {
	if _, seen := e.before[g.ID]; !seen {
		e.before[g.ID] = snap(old)
		e.order = append(e.order, g.ID)
	}
	text, err := e.s.sealSegmentText(e.session, g.ID, g.Text)
	if err != nil {
		return err
	}
	_, err = e.tx.ExecContext(e.ctx, `UPDATE segments SET pos = ?, start_s = ?, end_s = ?, speaker = ?, text = ?, deleted = ?, version = version + 1
		WHERE session_id = ? AND id = ?`, g.Pos, g.Start, g.End, g.Speaker, text, g.Deleted, e.session, g.ID)
	if err != nil {
		return fmt.Errorf("update segment %s: %w", g.ID, err)
	}
	return nil
}

// insert adds a segment made by the clinician (split or added line).
func (e *editTx) insert(g Segment) (Segment, error) {
	seq, _, err := nextSeqPos(e.ctx, e.tx, e.session)
	if err != nil {
		return Segment{}, err
	}
	g.Seq = seq
	g.ID = fmt.Sprintf("s%d", seq)
	text, err := e.s.sealSegmentText(e.session, g.ID, g.Text)
	if err != nil {
		return Segment{}, err
	}
	_, err = e.tx.ExecContext(e.ctx, `INSERT INTO segments(session_id, id, seq, pos, start_s, end_s, speaker, text, origin)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.session, g.ID, g.Seq, g.Pos, g.Start, g.End, g.Speaker, text, g.Origin)
	if err != nil {
		return Segment{}, fmt.Errorf("insert segment: %w", err)
	}
	e.before[g.ID] = nil
	e.order = append(e.order, g.ID)
	return g, nil
}

// nextPos returns the position of the first segment after pos (deleted ones included, so
// an undo never lands two segments on one place), or pos+1 when there is none.
func (e *editTx) nextPos(pos float64) (float64, error) {
	var next sql.NullFloat64
	if err := e.tx.QueryRowContext(e.ctx, `SELECT MIN(pos) FROM segments WHERE session_id = ? AND pos > ?`, e.session, pos).Scan(&next); err != nil {
		return 0, fmt.Errorf("next position: %w", err)
	}
	if !next.Valid {
		return pos + 1, nil
	}
	return next.Float64, nil
}

// beginEditable starts a transaction on a session that still accepts changes: an
// approved or discarded session is read-only. The caller rolls the transaction back or commits it.
func (s *Store) beginEditable(ctx context.Context, sessionID, what string) (*sql.Tx, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	c, err := s.consultation(ctx, tx, sessionID)
	if err == nil && c.State == StateApproved {
		err = ErrReadOnly
	}
	if err == nil {
		var discarded bool
		if discarded, err = discardedQ(ctx, tx, sessionID); err == nil && discarded {
			err = fmt.Errorf("%w: this consultation was discarded", ErrReadOnly)
		}
	}
	if err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// edit runs fn as one undoable edit by userID on the session, after checking the session
// still accepts edits. It returns the touched segments in their new state.
func (s *Store) edit(ctx context.Context, sessionID string, userID int64, segmentID, kind string, fn func(e *editTx) error) ([]Segment, error) {
	tx, err := s.beginEditable(ctx, sessionID, kind)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	e := &editTx{s: s, ctx: ctx, tx: tx, session: sessionID, before: map[string]*snapshot{}}
	if err := fn(e); err != nil {
		return nil, err
	}
	after := map[string]*snapshot{}
	var out []Segment
	grew := 0 // characters the edit adds to the live transcript
	for _, id := range e.order {
		g, err := e.get(id)
		if err != nil {
			return nil, err
		}
		after[id] = snap(g)
		out = append(out, g)
		grew += liveChars(after[id]) - liveChars(e.before[id])
	}
	if grew > 0 {
		if err := s.checkSessionSize(ctx, tx, sessionID); err != nil {
			return nil, err
		}
	}
	bj, _ := json.Marshal(e.before)
	aj, _ := json.Marshal(after)
	// The row id names the ciphertexts, so the row is made first and sealed after.
	res, err := tx.ExecContext(ctx, `INSERT INTO segment_edits(session_id, segment_id, user_id, at, kind, before, after) VALUES (?, ?, ?, ?, ?, '', '')`,
		sessionID, segmentID, userID, ms(s.now()), kind)
	if err != nil {
		return nil, fmt.Errorf("%s: record edit: %w", kind, err)
	}
	editID, _ := res.LastInsertId()
	if err := s.sealEdit(ctx, tx, editID, string(bj), string(aj)); err != nil {
		return nil, fmt.Errorf("%s: record edit: %w", kind, err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionSegmentEdit, SessionID: sessionID,
		Details: map[string]any{"segment_id": segmentID, "kind": kind, "edit_id": editID}}); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return out, nil
}

// liveChars is how many characters a segment snapshot adds to the transcript (0 for none
// or a deleted one).
func liveChars(sn *snapshot) int {
	if sn == nil || sn.Deleted {
		return 0
	}
	return utf8.RuneCountInString(sn.Text)
}

// MaxSessionSegments bounds the rows of one session (lines added and split included).
const MaxSessionSegments = 5000

// checkSessionSize refuses an edit that leaves the session's live transcript over
// MaxSessionText characters or its rows over MaxSessionSegments.
func (s *Store) checkSessionSize(ctx context.Context, tx *sql.Tx, sessionID string) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, text, deleted FROM segments WHERE session_id = ?`, sessionID)
	if err != nil {
		return fmt.Errorf("session size: %w", err)
	}
	defer rows.Close()
	chars, n := 0, 0
	for rows.Next() {
		var id, text string
		var deleted bool
		if err := rows.Scan(&id, &text, &deleted); err != nil {
			return fmt.Errorf("session size: %w", err)
		}
		n++
		if deleted {
			continue
		}
		plain, err := s.unseal("segments", "text", sessionID+"/"+id, text)
		if err != nil {
			return err
		}
		chars += utf8.RuneCountInString(plain)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("session size: %w", err)
	}
	switch {
	case chars > MaxSessionText:
		return fmt.Errorf("%w: this change would make the transcript %d characters long; one session holds at most %d", ErrTooLarge, chars, MaxSessionText)
	case n > MaxSessionSegments:
		return fmt.Errorf("%w: one session holds at most %d lines", ErrTooLarge, MaxSessionSegments)
	}
	return nil
}

// checked loads a live (not deleted) segment and compares its version with the one the
// editor saw: the last-writer check that turns concurrent edits into a clear conflict.
func (e *editTx) checked(id string, version int64) (Segment, error) {
	g, err := e.get(id)
	if err != nil {
		return g, err
	}
	if g.Deleted {
		return g, fmt.Errorf("segment %s: %w", id, ErrNotFound)
	}
	if version != g.Version {
		return g, fmt.Errorf("%w: segment %s was changed by someone else since you loaded it (it is now at version %d, your edit was based on version %d); reload and try again",
			ErrConflict, id, g.Version, version)
	}
	return g, nil
}

func cleanText(t string) (string, error) {
	t = strings.Join(strings.Fields(t), " ")
	if !utf8.ValidString(t) {
		return "", fmt.Errorf("%w: text is not valid UTF-8", ErrInvalid)
	}
	if utf8.RuneCountInString(t) > MaxSegmentText {
		return "", fmt.Errorf("%w: segment text is longer than %d characters", ErrInvalid, MaxSegmentText)
	}
	return t, nil
}

// UpdateSegment changes a segment's text and/or speaker (nil leaves a field as is).
func (s *Store) UpdateSegment(ctx context.Context, sessionID, id string, userID, version int64, text *string, speaker *domain.Speaker) ([]Segment, error) {
	if text == nil && speaker == nil {
		return nil, fmt.Errorf("%w: nothing to change (give text or speaker)", ErrInvalid)
	}
	var kinds []string
	if text != nil {
		t, err := cleanText(*text)
		if err != nil {
			return nil, err
		}
		text = &t
		kinds = append(kinds, "text")
	}
	if speaker != nil {
		if _, err := domain.ParseSpeaker(string(*speaker)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		kinds = append(kinds, "speaker")
	}
	return s.edit(ctx, sessionID, userID, id, strings.Join(kinds, "+"), func(e *editTx) error {
		g, err := e.checked(id, version)
		if err != nil {
			return err
		}
		n := g
		if text != nil {
			n.Text = *text
		}
		if speaker != nil {
			n.Speaker = *speaker
		}
		return e.update(g, n)
	})
}

// SplitSegment cuts a segment's text at a character (rune) offset into two segments; the
// time span is divided in proportion. text, when not nil, is what the clinician has typed
// into the line and not saved yet: it replaces the line's text in the same edit (one
// undo), and the offset is into it.
func (s *Store) SplitSegment(ctx context.Context, sessionID, id string, userID, version int64, offset int, text *string) ([]Segment, error) {
	if text != nil {
		// Not cleanText: it would collapse spaces and move the offset the page computed.
		if !utf8.ValidString(*text) || utf8.RuneCountInString(*text) > MaxSegmentText {
			return nil, fmt.Errorf("%w: text must be valid UTF-8 of at most %d characters", ErrInvalid, MaxSegmentText)
		}
	}
	return s.edit(ctx, sessionID, userID, id, "split", func(e *editTx) error {
		orig, err := e.checked(id, version)
		if err != nil {
			return err
		}
		g := orig
		if text != nil {
			g.Text = *text
		}
		runes := []rune(g.Text)
		if offset <= 0 || offset >= len(runes) {
			return fmt.Errorf("%w: split offset %d must be inside the text (1 to %d)", ErrInvalid, offset, len(runes)-1)
		}
		first := strings.Join(strings.Fields(string(runes[:offset])), " ")
		second := strings.Join(strings.Fields(string(runes[offset:])), " ")
		if first == "" || second == "" {
			return fmt.Errorf("%w: splitting at %d would leave an empty segment", ErrInvalid, offset)
		}
		cut := g.Start + (g.End-g.Start)*float64(offset)/float64(len(runes))
		cut = math.Round(cut*1000) / 1000
		next, err := e.nextPos(g.Pos)
		if err != nil {
			return err
		}
		a := g
		a.Text, a.End = first, cut
		if err := e.update(orig, a); err != nil { // undo restores the text as it was saved
			return err
		}
		_, err = e.insert(Segment{Pos: (g.Pos + next) / 2, Start: cut, End: g.End, Speaker: g.Speaker, Text: second, Origin: OriginSplit})
		return err
	})
}

// MergeWithNext joins a segment with the next live one. nextVersion, when > 0, is checked
// against the next segment's version too.
func (s *Store) MergeWithNext(ctx context.Context, sessionID, id string, userID, version, nextVersion int64) ([]Segment, error) {
	return s.edit(ctx, sessionID, userID, id, "merge", func(e *editTx) error {
		g, err := e.checked(id, version)
		if err != nil {
			return err
		}
		var nextID string
		err = e.tx.QueryRowContext(e.ctx, `SELECT id FROM segments WHERE session_id = ? AND deleted = 0 AND (pos > ? OR (pos = ? AND seq > ?)) ORDER BY pos, seq LIMIT 1`,
			sessionID, g.Pos, g.Pos, g.Seq).Scan(&nextID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: segment %s is the last one; there is nothing to merge it with", ErrInvalid, id)
		}
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		nx, err := e.get(nextID)
		if err != nil {
			return err
		}
		if nextVersion > 0 && nx.Version != nextVersion {
			return fmt.Errorf("%w: the next segment %s was changed by someone else (now version %d, you had %d); reload and try again",
				ErrConflict, nextID, nx.Version, nextVersion)
		}
		m := g
		m.Text = strings.TrimSpace(g.Text + " " + nx.Text)
		m.End = max(g.End, nx.End)
		if utf8.RuneCountInString(m.Text) > MaxSegmentText {
			return fmt.Errorf("%w: merged text would be longer than %d characters", ErrInvalid, MaxSegmentText)
		}
		if err := e.update(g, m); err != nil {
			return err
		}
		d := nx
		d.Deleted = true
		return e.update(nx, d)
	})
}

// DeleteSegment hides a segment from the transcript (it stays in the database, and undo
// brings it back).
func (s *Store) DeleteSegment(ctx context.Context, sessionID, id string, userID, version int64) ([]Segment, error) {
	return s.edit(ctx, sessionID, userID, id, "delete", func(e *editTx) error {
		g, err := e.checked(id, version)
		if err != nil {
			return err
		}
		d := g
		d.Deleted = true
		return e.update(g, d)
	})
}

// NewLine is a missed line the clinician adds.
type NewLine struct {
	After   string // segment id to insert after; "" inserts at the start
	Speaker domain.Speaker
	Text    string
	Start   *float64 // nil: the end of the After segment (0 at the start)
	End     *float64 // nil: same as Start
}

// AddSegment inserts a line the machine missed.
func (s *Store) AddSegment(ctx context.Context, sessionID string, userID int64, nl NewLine) ([]Segment, error) {
	if _, err := domain.ParseSpeaker(string(nl.Speaker)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	text, err := cleanText(nl.Text)
	if err != nil {
		return nil, err
	}
	if text == "" {
		return nil, fmt.Errorf("%w: a new line needs some text", ErrInvalid)
	}
	return s.edit(ctx, sessionID, userID, nl.After, "add", func(e *editTx) error {
		pos, at := 0.0, 0.0
		if nl.After != "" {
			g, err := e.get(nl.After)
			if err != nil {
				return err
			}
			pos, at = g.Pos, g.End
		} else {
			var first sql.NullFloat64
			if err := e.tx.QueryRowContext(e.ctx, `SELECT MIN(pos) FROM segments WHERE session_id = ?`, sessionID).Scan(&first); err != nil {
				return fmt.Errorf("add: %w", err)
			}
			pos = first.Float64 - 1
		}
		next, err := e.nextPos(pos)
		if err != nil {
			return err
		}
		start := at
		if nl.Start != nil {
			start = *nl.Start
		}
		end := start
		if nl.End != nil {
			end = *nl.End
		}
		if start < 0 || end < start || math.IsNaN(start) || math.IsNaN(end) || math.IsInf(end, 0) {
			return fmt.Errorf("%w: times must satisfy 0 <= start <= end", ErrInvalid)
		}
		_, err = e.insert(Segment{Pos: (pos + next) / 2, Start: start, End: end, Speaker: nl.Speaker, Text: text, Origin: OriginAdded})
		return err
	})
}

// Edit is one recorded change to a session's transcript.
type Edit struct {
	ID        int64                `json:"id"`
	SegmentID string               `json:"segment_id"`
	UserID    int64                `json:"user_id"`
	At        time.Time            `json:"at"`
	Kind      string               `json:"kind"`
	Before    map[string]*snapshot `json:"before"`
	After     map[string]*snapshot `json:"after"`
	UndoneAt  time.Time            `json:"undone_at,omitzero"`
	UndoneBy  int64                `json:"undone_by,omitempty"`
}

// Edits returns a session's edit history, oldest first.
func (s *Store) Edits(ctx context.Context, sessionID string) ([]Edit, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, segment_id, user_id, at, kind, before, after, undone_at, COALESCE(undone_by, 0)
		FROM segment_edits WHERE session_id = ? ORDER BY id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("list edits: %w", err)
	}
	defer rows.Close()
	out := []Edit{}
	for rows.Next() {
		var ed Edit
		var at int64
		var undone sql.NullInt64
		var bj, aj string
		if err := rows.Scan(&ed.ID, &ed.SegmentID, &ed.UserID, &at, &ed.Kind, &bj, &aj, &undone, &ed.UndoneBy); err != nil {
			return nil, fmt.Errorf("list edits: %w", err)
		}
		ed.At, ed.UndoneAt = fromMS(at), fromNullMS(undone)
		eid := fmt.Sprint(ed.ID)
		var err error
		if bj, err = s.unseal("segment_edits", "before", eid, bj); err != nil {
			return nil, err
		}
		if aj, err = s.unseal("segment_edits", "after", eid, aj); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(bj), &ed.Before); err != nil {
			return nil, fmt.Errorf("edit %d: %w", ed.ID, err)
		}
		if err := json.Unmarshal([]byte(aj), &ed.After); err != nil {
			return nil, fmt.Errorf("edit %d: %w", ed.ID, err)
		}
		out = append(out, ed)
	}
	return out, rows.Err()
}

// Undo reverts the session's most recent edit that is not undone yet, and returns the
// segments it touched in their restored state. Segments the edit created are hidden.
func (s *Store) Undo(ctx context.Context, sessionID string, userID int64) ([]Segment, error) {
	tx, err := s.beginEditable(ctx, sessionID, "undo")
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var editID int64
	var bj string
	err = tx.QueryRowContext(ctx, `SELECT id, before FROM segment_edits WHERE session_id = ? AND undone_at IS NULL ORDER BY id DESC LIMIT 1`, sessionID).Scan(&editID, &bj)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNothingToUndo
	}
	if err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	if bj, err = s.unseal("segment_edits", "before", fmt.Sprint(editID), bj); err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	var before map[string]*snapshot
	if err := json.Unmarshal([]byte(bj), &before); err != nil {
		return nil, fmt.Errorf("undo edit %d: %w", editID, err)
	}
	ids := make([]string, 0, len(before))
	for id := range before {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []Segment
	for _, id := range ids {
		b := before[id]
		var err error
		if b == nil {
			_, err = tx.ExecContext(ctx, `UPDATE segments SET deleted = 1, version = version + 1 WHERE session_id = ? AND id = ?`, sessionID, id)
		} else {
			var text string
			if text, err = s.sealSegmentText(sessionID, id, b.Text); err != nil {
				return nil, err
			}
			_, err = tx.ExecContext(ctx, `UPDATE segments SET pos = ?, start_s = ?, end_s = ?, speaker = ?, text = ?, deleted = ?, version = version + 1
				WHERE session_id = ? AND id = ?`, b.Pos, b.Start, b.End, b.Speaker, text, b.Deleted, sessionID, id)
		}
		if err != nil {
			return nil, fmt.Errorf("undo edit %d: %w", editID, err)
		}
		g, err := s.getSegment(ctx, tx, sessionID, id)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE segment_edits SET undone_at = ?, undone_by = ? WHERE id = ?`, ms(s.now()), userID, editID); err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionSegmentEdit, SessionID: sessionID,
		Details: map[string]any{"kind": "undo", "edit_id": editID}}); err != nil {
		return nil, fmt.Errorf("undo: %w", err)
	}
	return out, tx.Commit()
}

// ReviewFlag is a clinician's report that a segment is wrong, for safety monitoring.
type ReviewFlag struct {
	ID        int64       `json:"id"`
	SessionID string      `json:"session_id"`
	SegmentID string      `json:"segment_id"`
	Category  domain.Flag `json:"category"`
	Note      string      `json:"note"`
	UserID    int64       `json:"user_id"`
	CreatedAt time.Time   `json:"created_at"`
	State     string      `json:"state"`
}

// MaxFlagNote bounds a flag's free-text note, in characters.
const MaxFlagNote = 2000

// MaxSessionFlags bounds the flags raised on one session.
const MaxSessionFlags = 500

func checkFlagCount(ctx context.Context, q queryer, sessionID string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM flags WHERE session_id = ?`, sessionID).Scan(&n); err != nil {
		return fmt.Errorf("flag: %w", err)
	}
	if n >= MaxSessionFlags {
		return fmt.Errorf("%w: one session holds at most %d flags", ErrTooLarge, MaxSessionFlags)
	}
	return nil
}

// AddFlag records a review flag on a segment.
func (s *Store) AddFlag(ctx context.Context, sessionID, segmentID string, userID int64, category domain.Flag, note string) (ReviewFlag, error) {
	if !slices.Contains(domain.ReviewFlags, category) {
		return ReviewFlag{}, fmt.Errorf("%w: unknown flag category %q (want one of %v)", ErrInvalid, category, domain.ReviewFlags)
	}
	note = strings.TrimSpace(note)
	if utf8.RuneCountInString(note) > MaxFlagNote || !utf8.ValidString(note) {
		return ReviewFlag{}, fmt.Errorf("%w: flag note must be valid text of at most %d characters", ErrInvalid, MaxFlagNote)
	}
	tx, err := s.beginEditable(ctx, sessionID, "flag")
	if err != nil {
		return ReviewFlag{}, err
	}
	defer tx.Rollback()
	if _, err := s.getSegment(ctx, tx, sessionID, segmentID); err != nil {
		return ReviewFlag{}, err
	}
	if err := checkFlagCount(ctx, tx, sessionID); err != nil {
		return ReviewFlag{}, err
	}
	now := s.now()
	res, err := tx.ExecContext(ctx, `INSERT INTO flags(session_id, segment_id, category, note, user_id, created_at) VALUES (?, ?, ?, '', ?, ?)`,
		sessionID, segmentID, category, userID, ms(now))
	if err != nil {
		return ReviewFlag{}, fmt.Errorf("flag: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := s.sealFlagNote(ctx, tx, id, note); err != nil {
		return ReviewFlag{}, fmt.Errorf("flag: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionSegmentFlag, SessionID: sessionID,
		Details: map[string]any{"segment_id": segmentID, "flag": string(category), "flag_id": id}}); err != nil {
		return ReviewFlag{}, fmt.Errorf("flag: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return ReviewFlag{}, fmt.Errorf("flag: %w", err)
	}
	return ReviewFlag{ID: id, SessionID: sessionID, SegmentID: segmentID, Category: category, Note: note, UserID: userID,
		CreatedAt: fromMS(ms(now)), State: "new"}, nil
}

// Flags returns a session's review flags, oldest first.
func (s *Store) Flags(ctx context.Context, sessionID string) ([]ReviewFlag, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, session_id, segment_id, category, note, user_id, created_at, state FROM flags WHERE session_id = ? ORDER BY id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("list flags: %w", err)
	}
	defer rows.Close()
	out := []ReviewFlag{}
	for rows.Next() {
		var f ReviewFlag
		var at int64
		if err := rows.Scan(&f.ID, &f.SessionID, &f.SegmentID, &f.Category, &f.Note, &f.UserID, &at, &f.State); err != nil {
			return nil, fmt.Errorf("list flags: %w", err)
		}
		f.CreatedAt = fromMS(at)
		var err error
		if f.Note, err = s.unseal("flags", "note", fmt.Sprint(f.ID), f.Note); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// ApproveHook runs inside the approval transaction with the approved consultation (its
// DocumentText set); an error from it rolls the approval back.
type ApproveHook func(tx *sql.Tx, c Consultation) error

// Approve marks a stopped session approved and read-only, stores the document text
// assembled from its segments, and calls hook in the same transaction. The pre-approval
// check (ApprovalCheck) runs in that transaction too: a blocking item, or any other item
// whose ID is not in confirmed, refuses the approval with an *ApprovalCheckError; each
// confirmed item is audited (approval_confirm).
func (s *Store) Approve(ctx context.Context, sessionID string, userID int64, hook ApproveHook, confirmed ...string) (Consultation, error) {
	tx, err := s.beginEditable(ctx, sessionID, "approve")
	if err != nil {
		return Consultation{}, err
	}
	defer tx.Rollback()
	c, err := s.consultation(ctx, tx, sessionID)
	if err != nil {
		return Consultation{}, err
	}
	if c.State == StateRecording || c.State == StatePaused {
		return Consultation{}, fmt.Errorf("%w: stop the recording before approving", ErrBadState)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+segCols+` FROM segments WHERE session_id = ? AND deleted = 0 ORDER BY pos, seq`, sessionID)
	if err != nil {
		return Consultation{}, fmt.Errorf("approve: %w", err)
	}
	var segs []Segment
	for rows.Next() {
		g, err := scanSegment(rows)
		if err == nil {
			err = s.openSegment(sessionID, &g)
		}
		if err != nil {
			rows.Close()
			return Consultation{}, fmt.Errorf("approve: %w", err)
		}
		segs = append(segs, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Consultation{}, fmt.Errorf("approve: %w", err)
	}
	if err := s.checkApprovalTx(ctx, tx, c, segs, userID, confirmed); err != nil {
		return Consultation{}, err
	}
	text, err := s.seal("consultations", "document_text", sessionID, AssembleDocument(segs))
	if err != nil {
		return Consultation{}, fmt.Errorf("approve: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consultations SET state = 'approved', approved_at = ?, approved_by = ?, document_text = ? WHERE id = ?`,
		ms(s.now()), userID, text, sessionID); err != nil {
		return Consultation{}, fmt.Errorf("approve: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionSessionApprove, SessionID: sessionID,
		Details: map[string]any{"segments": len(segs)}}); err != nil {
		return Consultation{}, fmt.Errorf("approve: %w", err)
	}
	c, err = s.consultation(ctx, tx, sessionID)
	if err != nil {
		return Consultation{}, err
	}
	if hook != nil {
		if err := hook(tx, c); err != nil {
			return Consultation{}, fmt.Errorf("approve: hand-over to write-back: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Consultation{}, fmt.Errorf("approve: %w", err)
	}
	return c, nil
}

// UntranscribedMarker stands in the approved note for a line where speech was heard but
// no words were decoded and the clinician chose to keep it as such: the gap stays visible
// in the record instead of silently disappearing.
const UntranscribedMarker = "[speech heard here was not transcribed]"

var speakerLabel = map[domain.Speaker]string{
	domain.SpeakerClinician: "Clinician",
	domain.SpeakerPatient:   "Patient",
	domain.SpeakerUnknown:   "Unknown speaker",
}

// AssembleDocument writes the approved transcript: one line per live segment, in the
// given order, as "[hh:mm:ss] Speaker: text". A line without text (speech heard, no
// words decoded) is written with UntranscribedMarker, never dropped: the record shows the
// gap. Same segments, same bytes. It builds the text that goes to the patient record, so
// control and format characters are removed here whatever the segments hold (cleantext).
func AssembleDocument(segs []Segment) string {
	var b strings.Builder
	for _, g := range segs {
		if g.Deleted {
			continue
		}
		text := strings.Join(strings.Fields(cleantext.Line(g.Text)), " ")
		if text == "" {
			text = UntranscribedMarker
		}
		label, ok := speakerLabel[g.Speaker]
		if !ok {
			label = speakerLabel[domain.SpeakerUnknown]
		}
		fmt.Fprintf(&b, "[%s] %s: %s\n", clock(g.Start), label, text)
	}
	return b.String()
}
