package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"scribe/internal/audit"
)

// SourceAgent is a room whose audio comes from an enrolled room agent (scribe agent).
const SourceAgent = "agent"

// AgentCodeTTL is how long a one-time enrolment code works.
const AgentCodeTTL = 15 * time.Minute

// ErrRevoked is returned for a token of an agent an administrator has revoked.
var ErrRevoked = errors.New("agent revoked")

// Agent is an enrolled room agent. Its token is never stored, only its hash.
type Agent struct {
	ID         int64      `json:"id"`
	RoomID     int64      `json:"room_id"`
	RoomName   string     `json:"room_name"`
	Name       string     `json:"name"`
	EnrolledAt time.Time  `json:"enrolled_at"`
	LastSeenAt *time.Time `json:"last_seen_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// The code alphabet avoids letters that read alike (base32 has no 0, 1, 8, 9).
var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func secretHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// normalizeCode lets the admin's code be typed with spaces, dashes or lower case.
func normalizeCode(code string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
}

// CreateAgentCode makes a one-time enrolment code for an agent room: 60 random bits,
// shown once (returned here), stored hashed, valid for AgentCodeTTL.
func (s *Store) CreateAgentCode(ctx context.Context, roomID, adminID int64) (code string, expires time.Time, err error) {
	room, err := s.Room(ctx, roomID)
	if err != nil {
		return "", time.Time{}, err
	}
	if room.SourceKind != SourceAgent {
		return "", time.Time{}, fmt.Errorf("%w: room %q takes its audio from %q, not from a room agent; create it with source_kind \"agent\"", ErrInvalid, room.Name, room.SourceKind)
	}
	b := make([]byte, 10) // 80 bits, written as 16 characters: XXXX-XXXX-XXXX-XXXX
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, err
	}
	raw := codeEncoding.EncodeToString(b)
	code = raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12] + "-" + raw[12:16]
	now := s.now()
	expires = now.Add(AgentCodeTTL)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", time.Time{}, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO agent_codes(room_id, code_hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		roomID, secretHash(normalizeCode(code)), nullID(adminID), ms(now), ms(expires)); err != nil {
		return "", time.Time{}, fmt.Errorf("store agent code: %w", err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Action: audit.ActionConfigChange,
		Details: map[string]any{"change": "agent_code_created", "room_id": roomID}}); err != nil {
		return "", time.Time{}, err
	}
	return code, expires, tx.Commit()
}

// EnrolAgent spends a one-time code and registers an agent for the code's room. It
// returns the agent and its bearer token (256 random bits), which is not stored.
func (s *Store) EnrolAgent(ctx context.Context, code, name string) (Agent, string, error) {
	now := s.now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Agent{}, "", err
	}
	defer tx.Rollback()
	var codeID, roomID, expires int64
	var used sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT id, room_id, expires_at, used_at FROM agent_codes WHERE code_hash = ?`,
		secretHash(normalizeCode(code))).Scan(&codeID, &roomID, &expires, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Agent{}, "", fmt.Errorf("%w: unknown enrolment code (check it, or ask the administrator for a new one)", ErrBadCredential)
	case err != nil:
		return Agent{}, "", err
	case used.Valid:
		return Agent{}, "", fmt.Errorf("%w: this enrolment code was already used; ask the administrator for a new one", ErrBadCredential)
	case now.UnixMilli() > expires:
		return Agent{}, "", fmt.Errorf("%w: this enrolment code expired (codes work for %v); ask the administrator for a new one", ErrBadCredential, AgentCodeTTL)
	}
	tb := make([]byte, 32)
	if _, err := rand.Read(tb); err != nil {
		return Agent{}, "", err
	}
	token := hex.EncodeToString(tb)
	if _, err := tx.ExecContext(ctx, `UPDATE agent_codes SET used_at = ? WHERE id = ?`, ms(now), codeID); err != nil {
		return Agent{}, "", err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO agents(room_id, name, token_hash, enrolled_at) VALUES (?, ?, ?, ?)`,
		roomID, name, secretHash(token), ms(now))
	if err != nil {
		return Agent{}, "", fmt.Errorf("store agent: %w", err)
	}
	id, _ := res.LastInsertId()
	if err := s.auditTx(ctx, tx, audit.Event{Actor: fmt.Sprintf("agent:%d", id), Action: audit.ActionConfigChange,
		Details: map[string]any{"change": "agent_enrolled", "agent_id": id, "room_id": roomID}}); err != nil {
		return Agent{}, "", err
	}
	if err := tx.Commit(); err != nil {
		return Agent{}, "", err
	}
	a, err := s.agent(ctx, `a.id = ?`, id)
	return a, token, err
}

const agentCols = `SELECT a.id, a.room_id, r.name, a.name, a.enrolled_at, a.last_seen_at, a.revoked_at FROM agents a JOIN rooms r ON r.id = a.room_id`

func scanAgent(row interface{ Scan(...any) error }) (Agent, error) {
	var a Agent
	var enrolled int64
	var seen, revoked sql.NullInt64
	if err := row.Scan(&a.ID, &a.RoomID, &a.RoomName, &a.Name, &enrolled, &seen, &revoked); err != nil {
		return a, err
	}
	a.EnrolledAt = fromMS(enrolled)
	if seen.Valid {
		t := fromMS(seen.Int64)
		a.LastSeenAt = &t
	}
	if revoked.Valid {
		t := fromMS(revoked.Int64)
		a.RevokedAt = &t
	}
	return a, nil
}

func (s *Store) agent(ctx context.Context, where string, arg any) (Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, agentCols+` WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("agent: %w", ErrNotFound)
	}
	return a, err
}

// Agent returns one agent.
func (s *Store) Agent(ctx context.Context, id int64) (Agent, error) {
	return s.agent(ctx, `a.id = ?`, id)
}

// AgentByToken authenticates an agent's bearer token. A revoked agent's token gives the
// agent with ErrRevoked (so the refusal can say why); an unknown one gives ErrNotFound.
func (s *Store) AgentByToken(ctx context.Context, token string) (Agent, error) {
	if len(token) < 32 {
		return Agent{}, fmt.Errorf("agent: %w", ErrNotFound)
	}
	a, err := s.agent(ctx, `a.token_hash = ?`, secretHash(token))
	if err != nil {
		return a, err
	}
	if a.RevokedAt != nil {
		return a, ErrRevoked
	}
	return a, nil
}

// TouchAgent records that the agent connected now.
func (s *Store) TouchAgent(ctx context.Context, id int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE agents SET last_seen_at = ? WHERE id = ?`, ms(s.now()), id)
	return err
}

// Agents lists every enrolled agent, revoked ones included.
func (s *Store) Agents(ctx context.Context) ([]Agent, error) {
	rows, err := s.db.QueryContext(ctx, agentCols+` ORDER BY a.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Agent{}
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// RevokeAgent revokes an agent's token for good; revoking twice is harmless.
func (s *Store) RevokeAgent(ctx context.Context, id, adminID int64) (Agent, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Agent{}, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE agents SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL`, ms(s.now()), nullID(adminID), id)
	if err != nil {
		return Agent{}, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		if err := s.auditTx(ctx, tx, audit.Event{Action: audit.ActionConfigChange,
			Details: map[string]any{"change": "agent_revoked", "agent_id": id}}); err != nil {
			return Agent{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return Agent{}, err
	}
	return s.Agent(ctx, id)
}

// AuditAgentRefused records a connection refused for a revoked or unknown token.
func (s *Store) AuditAgentRefused(ctx context.Context, agentID int64, why string) error {
	actor := "agent:unknown"
	if agentID > 0 {
		actor = fmt.Sprintf("agent:%d", agentID)
	}
	return s.Audit(ctx, audit.Event{Actor: actor, Action: audit.ActionConfigChange,
		Details: map[string]any{"change": "agent_refused", "agent_id": agentID, "reason": why}})
}
