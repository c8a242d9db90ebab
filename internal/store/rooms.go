package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/mattn/go-sqlite3"

	"scribe/internal/audit"
)

// Source kinds a room's audio may come from.
const (
	SourceWAV     = "wav"     // a WAV file replayed at real-time pace (demo, tests)
	SourceBrowser = "browser" // the review page's microphone over a websocket
	SourceDevice  = "device"  // a PortAudio device on this box
)

// Room is a consulting room with one audio source.
type Room struct {
	ID           int64           `json:"id"`
	Name         string          `json:"name"`
	SourceKind   string          `json:"source_kind"`
	SourceConfig json.RawMessage `json:"source_config,omitempty"`
	ClinicianID  int64           `json:"clinician_id,omitempty"` // 0: unassigned
	CreatedAt    time.Time       `json:"created_at"`
	// PendingClinicianID is the clinician an admin has asked to move the room to, until
	// they accept it or a second admin approves (0: none).
	PendingClinicianID int64 `json:"pending_clinician_id,omitempty"`
}

// NewRoom is what CreateRoom needs.
type NewRoom struct {
	Name         string
	SourceKind   string
	SourceConfig json.RawMessage // nil means {}
	ClinicianID  int64
}

func checkSourceKind(k string) error {
	switch k {
	case SourceWAV, SourceBrowser, SourceDevice, SourceAgent:
		return nil
	}
	return fmt.Errorf("%w: unknown audio source kind %q (want wav, browser, device or agent)", ErrInvalid, k)
}

// CreateRoom adds a room.
func (s *Store) CreateRoom(ctx context.Context, nr NewRoom) (Room, error) {
	if strings.TrimSpace(nr.Name) == "" || len(nr.Name) > 100 {
		return Room{}, fmt.Errorf("%w: room name must be 1 to 100 characters", ErrInvalid)
	}
	if err := checkSourceKind(nr.SourceKind); err != nil {
		return Room{}, err
	}
	if len(nr.SourceConfig) == 0 {
		nr.SourceConfig = json.RawMessage("{}")
	}
	if !json.Valid(nr.SourceConfig) {
		return Room{}, fmt.Errorf("%w: room source config is not valid JSON", ErrInvalid)
	}
	if err := s.checkClinician(ctx, nr.ClinicianID); err != nil {
		return Room{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Room{}, fmt.Errorf("create room: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO rooms(name, source_kind, source_config, clinician_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		nr.Name, nr.SourceKind, string(nr.SourceConfig), nullID(nr.ClinicianID), ms(s.now()))
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			return Room{}, fmt.Errorf("%w: a room named %q exists", ErrConflict, nr.Name)
		}
		return Room{}, fmt.Errorf("create room: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := s.auditTx(ctx, tx, audit.Event{Action: audit.ActionConfigChange,
		Details: map[string]any{"change": "room_created", "room_id": id, "source_kind": nr.SourceKind, "clinician_id": nr.ClinicianID}}); err != nil {
		return Room{}, fmt.Errorf("create room: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Room{}, fmt.Errorf("create room: %w", err)
	}
	return s.Room(ctx, id)
}

func (s *Store) checkClinician(ctx context.Context, id int64) error {
	if id == 0 {
		return nil
	}
	u, err := s.User(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: no user %d to assign", ErrInvalid, id)
	}
	if u.Role != RoleClinician {
		return fmt.Errorf("%w: user %q is a %s, only clinicians can be assigned a room", ErrInvalid, u.Username, u.Role)
	}
	return nil
}

// AssignRoom is an admin's (byID) request to give room roomID to clinicianID. Taking a
// room from its clinician (0) happens at once. Giving it to a clinician only records the
// request (Room.PendingClinicianID) until ConfirmRoomAssignment: the clinician must accept
// it or a second admin approve it, so that one admin cannot route a GP's consultations to
// an account they control. Asking for the room's current clinician withdraws a request.
func (s *Store) AssignRoom(ctx context.Context, roomID, clinicianID, byID int64) (Room, error) {
	if err := s.checkClinician(ctx, clinicianID); err != nil {
		return Room{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Room{}, fmt.Errorf("assign room: %w", err)
	}
	defer tx.Rollback()
	room, err := scanRoom(tx.QueryRowContext(ctx, `SELECT `+roomCols+` FROM rooms WHERE id = ?`, roomID))
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, fmt.Errorf("room %d: %w", roomID, ErrNotFound)
	}
	if err != nil {
		return Room{}, fmt.Errorf("assign room: %w", err)
	}
	q, args := `UPDATE rooms SET pending_clinician_id = ?, pending_by = ?, pending_at = ? WHERE id = ?`, []any{clinicianID, byID, ms(s.now()), roomID}
	details := map[string]any{"change": "room_assignment_requested", "room_id": roomID, "from_clinician_id": room.ClinicianID, "to_clinician_id": clinicianID}
	switch clinicianID {
	case 0:
		q, args = `UPDATE rooms SET clinician_id = NULL, pending_clinician_id = NULL, pending_by = NULL, pending_at = NULL WHERE id = ?`, []any{roomID}
		details = map[string]any{"change": "room_unassigned", "room_id": roomID, "from_clinician_id": room.ClinicianID}
	case room.ClinicianID:
		if room.PendingClinicianID == 0 {
			return room, nil // nothing changes
		}
		q, args = `UPDATE rooms SET pending_clinician_id = NULL, pending_by = NULL, pending_at = NULL WHERE id = ?`, []any{roomID}
		details = map[string]any{"change": "room_reassignment_withdrawn", "room_id": roomID, "clinician_id": clinicianID}
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return Room{}, fmt.Errorf("assign room: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Action: audit.ActionConfigChange, Details: details}); err != nil {
		return Room{}, fmt.Errorf("assign room: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Room{}, fmt.Errorf("assign room: %w", err)
	}
	return s.Room(ctx, roomID)
}

// ConfirmRoomAssignment completes the room's pending reassignment for userID: the clinician
// it is offered to accepts it, or an admin other than the one who asked approves it.
// Anyone else gets ErrForbidden; no pending request is ErrBadState.
func (s *Store) ConfirmRoomAssignment(ctx context.Context, roomID, userID int64) (Room, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Room{}, fmt.Errorf("confirm room assignment: %w", err)
	}
	defer tx.Rollback()
	var pending, by sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT pending_clinician_id, pending_by FROM rooms WHERE id = ?`, roomID).Scan(&pending, &by)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, fmt.Errorf("room %d: %w", roomID, ErrNotFound)
	}
	if err != nil {
		return Room{}, fmt.Errorf("confirm room assignment: %w", err)
	}
	if !pending.Valid {
		return Room{}, fmt.Errorf("%w: no reassignment of room %d is waiting", ErrBadState, roomID)
	}
	var role Role
	if err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE id = ? AND disabled = 0`, userID).Scan(&role); err != nil {
		return Room{}, fmt.Errorf("%w: user %d cannot confirm room assignments", ErrForbidden, userID)
	}
	var change string
	switch {
	case role == RoleClinician && userID == pending.Int64:
		change = "room_assignment_accepted"
	case role == RoleAdmin && userID != by.Int64:
		change = "room_assignment_approved"
	case role == RoleAdmin:
		return Room{}, fmt.Errorf("%w: a second admin, or the clinician it is offered to, must confirm this reassignment (not the admin who asked)", ErrForbidden)
	default:
		return Room{}, fmt.Errorf("%w: this room is not being offered to you", ErrForbidden)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rooms SET clinician_id = pending_clinician_id, pending_clinician_id = NULL, pending_by = NULL, pending_at = NULL WHERE id = ?`, roomID); err != nil {
		return Room{}, fmt.Errorf("confirm room assignment: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionConfigChange,
		Details: map[string]any{"change": change, "room_id": roomID, "clinician_id": pending.Int64, "requested_by": usernameTx(ctx, tx, by.Int64)}}); err != nil {
		return Room{}, fmt.Errorf("confirm room assignment: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Room{}, fmt.Errorf("confirm room assignment: %w", err)
	}
	return s.Room(ctx, roomID)
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

const roomCols = `id, name, source_kind, source_config, COALESCE(clinician_id, 0), created_at, COALESCE(pending_clinician_id, 0)`

func scanRoom(row interface{ Scan(...any) error }) (Room, error) {
	var r Room
	var cfg string
	var created int64
	err := row.Scan(&r.ID, &r.Name, &r.SourceKind, &cfg, &r.ClinicianID, &created, &r.PendingClinicianID)
	r.SourceConfig = json.RawMessage(cfg)
	r.CreatedAt = fromMS(created)
	return r, err
}

// Room returns one room.
func (s *Store) Room(ctx context.Context, id int64) (Room, error) {
	r, err := scanRoom(s.db.QueryRowContext(ctx, `SELECT `+roomCols+` FROM rooms WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, fmt.Errorf("room %d: %w", id, ErrNotFound)
	}
	return r, err
}

// RoomByName returns the room with that name.
func (s *Store) RoomByName(ctx context.Context, name string) (Room, error) {
	r, err := scanRoom(s.db.QueryRowContext(ctx, `SELECT `+roomCols+` FROM rooms WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, fmt.Errorf("room %q: %w", name, ErrNotFound)
	}
	return r, err
}

// Rooms lists rooms by name; clinicianID > 0 keeps only that clinician's rooms and the
// rooms offered to them (PendingClinicianID).
func (s *Store) Rooms(ctx context.Context, clinicianID int64) ([]Room, error) {
	q := `SELECT ` + roomCols + ` FROM rooms`
	var args []any
	if clinicianID > 0 {
		q += ` WHERE clinician_id = ? OR pending_clinician_id = ?`
		args = append(args, clinicianID, clinicianID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	defer rows.Close()
	var out []Room
	for rows.Next() {
		r, err := scanRoom(rows)
		if err != nil {
			return nil, fmt.Errorf("list rooms: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Session states.
const (
	StateRecording = "recording"
	StatePaused    = "paused"
	StateStopped   = "stopped"
	StateApproved  = "approved"
)

// Consultation is one recorded consultation (a "session" in the API).
type Consultation struct {
	ID           string    `json:"id"`
	RoomID       int64     `json:"room_id"`
	ClinicianID  int64     `json:"clinician_id"`
	State        string    `json:"state"`
	ConsentBy    int64     `json:"consent_by"`
	ConsentAt    time.Time `json:"consent_at"`
	NHSNumber    string    `json:"nhs_number,omitempty"`
	DocumentID   string    `json:"document_id"`
	StartedAt    time.Time `json:"started_at"`
	StoppedAt    time.Time `json:"stopped_at,omitzero"`
	ApprovedAt   time.Time `json:"approved_at,omitzero"`
	ApprovedBy   int64     `json:"approved_by,omitempty"`
	AudioSeconds float64   `json:"audio_seconds"`
	DocumentText string    `json:"document_text,omitempty"`
	// InterruptedAt is when the server found the session still recording after a crash.
	InterruptedAt time.Time `json:"interrupted_at,omitzero"`
	Interrupted   bool      `json:"interrupted,omitempty"`
}

// NewConsultation is what StartConsultation needs. Consent must be true: recording
// without the patient's consent is refused here as well as in the API.
type NewConsultation struct {
	RoomID      int64
	ClinicianID int64
	Consent     bool
	NHSNumber   string // already validated and normalised, or ""
}

// StartConsultation records consent and creates a consultation in the recording state.
// A room has at most one consultation that is recording or paused.
func (s *Store) StartConsultation(ctx context.Context, nc NewConsultation) (Consultation, error) {
	if !nc.Consent {
		return Consultation{}, fmt.Errorf("%w: the patient's consent to recording must be confirmed", ErrInvalid)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Consultation{}, fmt.Errorf("start consultation: %w", err)
	}
	defer tx.Rollback()
	var busy string
	err = tx.QueryRowContext(ctx, `SELECT id FROM consultations WHERE room_id = ? AND state IN ('recording', 'paused')`, nc.RoomID).Scan(&busy)
	if err == nil {
		return Consultation{}, fmt.Errorf("%w: the room already has a consultation in progress (%s); stop it first", ErrConflict, busy)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return Consultation{}, fmt.Errorf("start consultation: %w", err)
	}
	now := ms(s.now())
	id := uuid.NewString()
	nhs, err := s.seal("consultations", "nhs_number", id, nc.NHSNumber)
	if err != nil {
		return Consultation{}, fmt.Errorf("start consultation: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO consultations(id, room_id, clinician_id, state, consent_by, consent_at, nhs_number, nhs_hash, document_id, started_at, heartbeat_at)
		VALUES (?, ?, ?, 'recording', ?, ?, ?, ?, ?, ?, ?)`, id, nc.RoomID, nc.ClinicianID, nc.ClinicianID, now, nhs, s.nhsHash(nc.NHSNumber), uuid.NewString(), now, now)
	if err != nil {
		return Consultation{}, fmt.Errorf("start consultation: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, nc.ClinicianID), Action: audit.ActionSessionStart, SessionID: id,
		Details: map[string]any{"room_id": nc.RoomID, "consent_by": usernameTx(ctx, tx, nc.ClinicianID), "consent_at": fromMS(now).Format(time.RFC3339Nano),
			"patient_identified": nc.NHSNumber != ""}}); err != nil {
		return Consultation{}, fmt.Errorf("start consultation: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Consultation{}, fmt.Errorf("start consultation: %w", err)
	}
	return s.Consultation(ctx, id)
}

// SetNHSNumber records the patient's NHS number (validated and normalised by the caller)
// on an approved session inside tx, for a note that has not reached the record yet (the
// write-back checks that in the same transaction).
func (s *Store) SetNHSNumber(ctx context.Context, tx *sql.Tx, sessionID, nhs string) error {
	sealed, err := s.seal("consultations", "nhs_number", sessionID, nhs)
	if err != nil {
		return fmt.Errorf("set NHS number: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE consultations SET nhs_number = ?, nhs_hash = ? WHERE id = ? AND state = 'approved'`,
		sealed, s.nhsHash(nhs), sessionID)
	if err != nil {
		return fmt.Errorf("set NHS number: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: session %q is not approved", ErrBadState, sessionID)
	}
	return nil
}

const consCols = `id, room_id, clinician_id, state, consent_by, consent_at, nhs_number, document_id, started_at, stopped_at, approved_at, COALESCE(approved_by, 0), audio_seconds, document_text, interrupted_at`

func scanConsultation(row interface{ Scan(...any) error }) (Consultation, error) {
	var c Consultation
	var consentAt, startedAt int64
	var stoppedAt, approvedAt, interruptedAt sql.NullInt64
	err := row.Scan(&c.ID, &c.RoomID, &c.ClinicianID, &c.State, &c.ConsentBy, &consentAt, &c.NHSNumber, &c.DocumentID,
		&startedAt, &stoppedAt, &approvedAt, &c.ApprovedBy, &c.AudioSeconds, &c.DocumentText, &interruptedAt)
	c.ConsentAt, c.StartedAt = fromMS(consentAt), fromMS(startedAt)
	c.StoppedAt, c.ApprovedAt = fromNullMS(stoppedAt), fromNullMS(approvedAt)
	c.InterruptedAt, c.Interrupted = fromNullMS(interruptedAt), interruptedAt.Valid
	return c, err
}

// openConsultation decrypts a scanned consultation's NHS number and document.
func (s *Store) openConsultation(c *Consultation) error {
	var err error
	if c.NHSNumber, err = s.unseal("consultations", "nhs_number", c.ID, c.NHSNumber); err != nil {
		return err
	}
	c.DocumentText, err = s.unseal("consultations", "document_text", c.ID, c.DocumentText)
	return err
}

// Consultation returns one consultation.
func (s *Store) Consultation(ctx context.Context, id string) (Consultation, error) {
	return s.consultation(ctx, s.db, id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *Store) consultation(ctx context.Context, q queryer, id string) (Consultation, error) {
	c, err := scanConsultation(q.QueryRowContext(ctx, `SELECT `+consCols+` FROM consultations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Consultation{}, fmt.Errorf("session %q: %w", id, ErrNotFound)
	}
	if err == nil {
		err = s.openConsultation(&c)
	}
	if err != nil {
		return Consultation{}, fmt.Errorf("session %q: %w", id, err)
	}
	return c, nil
}

// ConsultationFilter selects consultations for Consultations.
type ConsultationFilter struct {
	ClinicianID int64    // > 0: only this clinician's
	RoomID      int64    // > 0: only this room's
	States      []string // non-empty: only these states
	Limit       int      // 0: 200
}

// Consultations lists consultations, newest first.
func (s *Store) Consultations(ctx context.Context, f ConsultationFilter) ([]Consultation, error) {
	q := `SELECT ` + consCols + ` FROM consultations WHERE 1=1`
	var args []any
	if f.ClinicianID > 0 {
		q += ` AND clinician_id = ?`
		args = append(args, f.ClinicianID)
	}
	if f.RoomID > 0 {
		q += ` AND room_id = ?`
		args = append(args, f.RoomID)
	}
	if len(f.States) > 0 {
		q += ` AND state IN (?` + strings.Repeat(`, ?`, len(f.States)-1) + `)`
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if f.Limit <= 0 {
		f.Limit = 200
	}
	q += ` ORDER BY started_at DESC, id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []Consultation
	for rows.Next() {
		c, err := scanConsultation(rows)
		if err == nil {
			err = s.openConsultation(&c)
		}
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetState moves a consultation between recording, paused and stopped. audioSeconds,
// when >= 0, records how much audio the session has captured so far.
func (s *Store) SetState(ctx context.Context, id, state string, audioSeconds float64) (Consultation, error) {
	switch state {
	case StateRecording, StatePaused, StateStopped:
	default:
		return Consultation{}, fmt.Errorf("%w: SetState cannot move a session to %q", ErrInvalid, state)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Consultation{}, fmt.Errorf("set state: %w", err)
	}
	defer tx.Rollback()
	c, err := s.consultation(ctx, tx, id)
	if err != nil {
		return Consultation{}, err
	}
	if c.State == StateApproved {
		return Consultation{}, ErrReadOnly
	}
	if c.State == StateStopped && state != StateStopped {
		return Consultation{}, fmt.Errorf("%w: session is stopped; start a new session to record again", ErrBadState)
	}
	q := `UPDATE consultations SET state = ?`
	args := []any{state}
	if audioSeconds >= 0 {
		q += `, audio_seconds = ?`
		args = append(args, audioSeconds)
	}
	if state == StateStopped && c.State != StateStopped {
		q += `, stopped_at = ?`
		args = append(args, ms(s.now()))
	}
	if state == StateRecording {
		q += `, heartbeat_at = ?`
		args = append(args, ms(s.now()))
	}
	args = append(args, id)
	if _, err := tx.ExecContext(ctx, q+` WHERE id = ?`, args...); err != nil {
		return Consultation{}, fmt.Errorf("set state: %w", err)
	}
	if action, ok := stateActions[[2]string{c.State, state}]; ok {
		if err := s.auditTx(ctx, tx, audit.Event{Action: action, SessionID: id}); err != nil {
			return Consultation{}, fmt.Errorf("set state: %w", err)
		}
	}
	c, err = s.consultation(ctx, tx, id)
	if err != nil {
		return Consultation{}, err
	}
	return c, tx.Commit()
}

// Heartbeat records that a recording session is alive now. After a crash the session is
// marked interrupted at its last heartbeat (MarkInterrupted). A session that is not
// recording is left alone.
func (s *Store) Heartbeat(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE consultations SET heartbeat_at = ? WHERE id = ? AND state = 'recording'`, ms(s.now()), id); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// stateActions are the audit actions of state changes (from, to).
var stateActions = map[[2]string]audit.Action{
	{StateRecording, StatePaused}:  audit.ActionSessionPause,
	{StatePaused, StateRecording}:  audit.ActionSessionResume,
	{StateRecording, StateStopped}: audit.ActionSessionStop,
	{StatePaused, StateStopped}:    audit.ActionSessionStop,
}
