package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"scribe/internal/domain"
)

// Triage states of a flag, in the order a Clinical Safety Officer normally works them.
const (
	FlagStateNew       = "new"
	FlagStateTriaged   = "triaged"
	FlagStateMitigated = "mitigated"
	FlagStateClosed    = "closed"
)

// FlagStates are all triage states.
var FlagStates = []string{FlagStateNew, FlagStateTriaged, FlagStateMitigated, FlagStateClosed}

// Note-level flag categories beyond the segment ones.
const (
	FlagWrongPatient domain.Flag = "wrong_patient" // the note belongs to another patient
	FlagOther        domain.Flag = "other"
)

// NoteFlagCategories are the categories a clinician may raise on a whole note.
var NoteFlagCategories = []domain.Flag{domain.FlagWrongWords, domain.FlagWrongSpeaker, domain.FlagInventedText,
	domain.FlagMissingSpeech, FlagWrongPatient, FlagOther}

// triageMoves lists where a flag may go from each state. Nothing goes back to "new":
// once the CSO has looked at a flag, that fact stays. A closed flag can be reopened.
var triageMoves = map[string][]string{
	FlagStateNew:       {FlagStateTriaged, FlagStateClosed},
	FlagStateTriaged:   {FlagStateMitigated, FlagStateClosed},
	FlagStateMitigated: {FlagStateClosed, FlagStateTriaged},
	FlagStateClosed:    {FlagStateTriaged},
}

// MaxTriageNote bounds a triage note, in characters.
const MaxTriageNote = 2000

func checkNote(what, note string, max int) (string, error) {
	note = strings.TrimSpace(note)
	if !utf8.ValidString(note) || utf8.RuneCountInString(note) > max {
		return "", fmt.Errorf("%w: %s must be valid text of at most %d characters", ErrInvalid, what, max)
	}
	return note, nil
}

// AddNoteFlag records a flag about a whole note (segment id ""). Unlike a segment flag it
// is accepted after approval too: problems with a note are often found once it is filed.
func (s *Store) AddNoteFlag(ctx context.Context, sessionID string, userID int64, category domain.Flag, note string) (ReviewFlag, error) {
	if !slices.Contains(NoteFlagCategories, category) {
		return ReviewFlag{}, fmt.Errorf("%w: unknown note flag category %q (want one of %v)", ErrInvalid, category, NoteFlagCategories)
	}
	note, err := checkNote("flag note", note, MaxFlagNote)
	if err != nil {
		return ReviewFlag{}, err
	}
	if _, err := s.Consultation(ctx, sessionID); err != nil {
		return ReviewFlag{}, err
	}
	if err := checkFlagCount(ctx, s.db, sessionID); err != nil {
		return ReviewFlag{}, err
	}
	now := s.now()
	res, err := s.db.ExecContext(ctx, `INSERT INTO flags(session_id, segment_id, category, note, user_id, created_at) VALUES (?, '', ?, '', ?, ?)`,
		sessionID, category, userID, ms(now))
	if err != nil {
		return ReviewFlag{}, fmt.Errorf("note flag: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := s.sealFlagNote(ctx, s.db, id, note); err != nil { // protect.go: notes are encrypted at rest
		return ReviewFlag{}, fmt.Errorf("note flag: %w", err)
	}
	return ReviewFlag{ID: id, SessionID: sessionID, Category: category, Note: note, UserID: userID, CreatedAt: fromMS(ms(now)), State: FlagStateNew}, nil
}

// FlagEvent is one triage step of a flag.
type FlagEvent struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	UserID   int64     `json:"user_id"`
	UserName string    `json:"user_name"`
	At       time.Time `json:"at"`
	Note     string    `json:"note"`
}

// IncidentSegment is the one segment a flag points at: the only transcript text a CSO
// sees for it.
type IncidentSegment struct {
	ID             string         `json:"id"`
	Start          float64        `json:"start"`
	End            float64        `json:"end"`
	Speaker        domain.Speaker `json:"speaker"`
	MachineSpeaker domain.Speaker `json:"machine_speaker"`
	Text           string         `json:"text"`
	MachineText    string         `json:"machine_text"`
	Flags          []domain.Flag  `json:"flags"`
	Deleted        bool           `json:"deleted"`
}

// Incident is a flag as the CSO work queue shows it.
type Incident struct {
	ReviewFlag
	Scope         string           `json:"scope"` // "segment" or "note"
	ReporterName  string           `json:"reporter_name"`
	ClinicianID   int64            `json:"clinician_id"`
	ClinicianName string           `json:"clinician_name"`
	RoomName      string           `json:"room_name"`
	SessionState  string           `json:"session_state"`
	SessionStart  time.Time        `json:"session_started_at"`
	UpdatedAt     time.Time        `json:"updated_at,omitzero"`
	UpdatedBy     string           `json:"updated_by,omitempty"`
	Moves         []string         `json:"moves"` // states it may move to next
	Segment       *IncidentSegment `json:"segment,omitempty"`
	History       []FlagEvent      `json:"history"`
}

// IncidentFilter selects flags for the work queue; empty States means all.
type IncidentFilter struct {
	States []string
	Limit  int // default 200
}

// Incidents lists flags across all sessions, newest first, with the flagged segment.
func (s *Store) Incidents(ctx context.Context, f IncidentFilter) ([]Incident, error) {
	for _, st := range f.States {
		if !slices.Contains(FlagStates, st) {
			return nil, fmt.Errorf("%w: unknown flag state %q (want one of %v)", ErrInvalid, st, FlagStates)
		}
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 200
	}
	q := `SELECT id FROM flags`
	var args []any
	if len(f.States) > 0 {
		q += ` WHERE state IN (?` + strings.Repeat(", ?", len(f.States)-1) + `)`
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	out := make([]Incident, 0, len(ids))
	for _, id := range ids {
		in, err := s.Incident(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// Incident returns one flag with its session context, segment and triage history.
func (s *Store) Incident(ctx context.Context, id int64) (Incident, error) {
	var sessionID string
	var updatedAt sql.NullInt64
	var updatedBy sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT session_id, updated_at, updated_by FROM flags WHERE id = ?`, id).Scan(&sessionID, &updatedAt, &updatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Incident{}, fmt.Errorf("flag %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Incident{}, fmt.Errorf("flag %d: %w", id, err)
	}
	// The flag itself is read through Flags, the one place flag rows are decoded.
	flags, err := s.Flags(ctx, sessionID)
	if err != nil {
		return Incident{}, err
	}
	i := slices.IndexFunc(flags, func(f ReviewFlag) bool { return f.ID == id })
	if i < 0 {
		return Incident{}, fmt.Errorf("flag %d: %w", id, ErrNotFound)
	}
	in := Incident{ReviewFlag: flags[i], Scope: "segment", UpdatedAt: fromNullMS(updatedAt), Moves: triageMoves[flags[i].State], History: []FlagEvent{}}
	if in.Moves == nil {
		in.Moves = []string{}
	}
	if in.SegmentID == "" {
		in.Scope = "note"
	}
	in.ReporterName = s.userName(ctx, in.UserID)
	if updatedBy.Valid {
		in.UpdatedBy = s.userName(ctx, updatedBy.Int64)
	}
	c, err := s.Consultation(ctx, sessionID)
	if err != nil {
		return Incident{}, err
	}
	in.ClinicianID, in.SessionState, in.SessionStart = c.ClinicianID, c.State, c.StartedAt
	in.ClinicianName = s.userName(ctx, c.ClinicianID)
	if room, err := s.Room(ctx, c.RoomID); err == nil {
		in.RoomName = room.Name
	}
	if in.Scope == "segment" {
		g, err := s.Segment(ctx, sessionID, in.SegmentID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Incident{}, err
		}
		if err == nil {
			in.Segment = &IncidentSegment{ID: g.ID, Start: g.Start, End: g.End, Speaker: g.Speaker, MachineSpeaker: g.MachineSpeaker,
				Text: g.Text, MachineText: g.MachineText, Flags: g.Flags, Deleted: g.Deleted}
		}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, from_state, to_state, user_id, at, note FROM flag_events WHERE flag_id = ? ORDER BY id`, id)
	if err != nil {
		return Incident{}, fmt.Errorf("flag %d history: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ev FlagEvent
		var eventID, at int64
		if err := rows.Scan(&eventID, &ev.From, &ev.To, &ev.UserID, &at, &ev.Note); err != nil {
			return Incident{}, fmt.Errorf("flag %d history: %w", id, err)
		}
		ev.At = fromMS(at)
		if ev.Note, err = s.unseal("flag_events", "note", fmt.Sprint(eventID), ev.Note); err != nil {
			return Incident{}, err
		}
		in.History = append(in.History, ev)
	}
	if err := rows.Err(); err != nil {
		return Incident{}, fmt.Errorf("flag %d history: %w", id, err)
	}
	for k := range in.History {
		in.History[k].UserName = s.userName(ctx, in.History[k].UserID)
	}
	return in, nil
}

func (s *Store) userName(ctx context.Context, id int64) string {
	if u, err := s.User(ctx, id); err == nil {
		return u.DisplayName
	}
	return ""
}

// TriageFlag moves a flag to another state, recording who, when and why. A move the
// state machine does not allow is ErrBadState; closing needs a note saying why.
func (s *Store) TriageFlag(ctx context.Context, flagID, userID int64, to, note string) (Incident, error) {
	note, err := checkNote("triage note", note, MaxTriageNote)
	if err != nil {
		return Incident{}, err
	}
	if !slices.Contains(FlagStates, to) {
		return Incident{}, fmt.Errorf("%w: unknown flag state %q (want one of %v)", ErrInvalid, to, FlagStates)
	}
	if to == FlagStateClosed && note == "" {
		return Incident{}, fmt.Errorf("%w: say why the flag is closed (a triage note is required)", ErrInvalid)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Incident{}, fmt.Errorf("triage: %w", err)
	}
	defer tx.Rollback()
	var from string
	err = tx.QueryRowContext(ctx, `SELECT state FROM flags WHERE id = ?`, flagID).Scan(&from)
	if errors.Is(err, sql.ErrNoRows) {
		return Incident{}, fmt.Errorf("flag %d: %w", flagID, ErrNotFound)
	}
	if err != nil {
		return Incident{}, fmt.Errorf("triage: %w", err)
	}
	if !slices.Contains(triageMoves[from], to) {
		return Incident{}, fmt.Errorf("%w: a %s flag cannot move to %s (allowed: %v)", ErrBadState, from, to, triageMoves[from])
	}
	now := ms(s.now())
	if _, err := tx.ExecContext(ctx, `UPDATE flags SET state = ?, updated_at = ?, updated_by = ? WHERE id = ?`, to, now, userID, flagID); err != nil {
		return Incident{}, fmt.Errorf("triage: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO flag_events(flag_id, from_state, to_state, user_id, at, note) VALUES (?, ?, ?, ?, ?, '')`,
		flagID, from, to, userID, now)
	if err != nil {
		return Incident{}, fmt.Errorf("triage: %w", err)
	}
	eventID, _ := res.LastInsertId()
	if err := s.sealNote(ctx, tx, "flag_events", eventID, note); err != nil { // encrypted like flag notes
		return Incident{}, fmt.Errorf("triage: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Incident{}, fmt.Errorf("triage: %w", err)
	}
	return s.Incident(ctx, flagID)
}

// FlagCounts returns how many flags are in each triage state.
func (s *Store) FlagCounts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, st := range FlagStates {
		out[st] = 0
	}
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM flags GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count flags: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count flags: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

// MaxLanguageGroup bounds a language/accent group label, in characters.
const MaxLanguageGroup = 40

// SetLanguageGroup records the patient's coarse language/accent group on a session, for
// comparing edit rates across groups. The caller checks the label against the practice's
// configured list and that the patient consented; "" clears it.
func (s *Store) SetLanguageGroup(ctx context.Context, sessionID, group string) error {
	group, err := checkNote("language group", group, MaxLanguageGroup)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE consultations SET language_group = ? WHERE id = ? AND state <> 'approved'`, group, sessionID)
	if err != nil {
		return fmt.Errorf("language group: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Consultation(ctx, sessionID); err != nil {
			return err
		}
		return ErrReadOnly
	}
	return nil
}

// LanguageGroup returns a session's recorded language/accent group ("" when none).
func (s *Store) LanguageGroup(ctx context.Context, sessionID string) (string, error) {
	var g string
	err := s.db.QueryRowContext(ctx, `SELECT language_group FROM consultations WHERE id = ?`, sessionID).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("session %q: %w", sessionID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("language group: %w", err)
	}
	return g, nil
}

// ActiveSessionCount counts consultations that are recording or paused.
func (s *Store) ActiveSessionCount(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM consultations WHERE state IN ('recording', 'paused')`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count active sessions: %w", err)
	}
	return n, nil
}

// OpenFlagCount counts flags the CSO has not closed.
func (s *Store) OpenFlagCount(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM flags WHERE state <> 'closed'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count open flags: %w", err)
	}
	return n, nil
}
