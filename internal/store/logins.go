package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"scribe/internal/audit"
)

// Login throttling: MaxLoginFailures wrong passwords for one username in a row (no more
// than LockoutPeriod apart) lock that username for LockoutPeriod. Lockout is per username,
// not per address, because the practice network sits behind one NAT.
const (
	MaxLoginFailures = 5
	LockoutPeriod    = 15 * time.Minute
)

// ErrLocked is returned by Authenticate while a username is locked out. It wraps
// ErrBadCredential so callers answer it like a wrong password and do not reveal which
// usernames exist.
var ErrLocked = fmt.Errorf("%w (too many failed attempts; locked for a while)", ErrBadCredential)

func (s *Store) lockedOut(ctx context.Context, username string) (bool, error) {
	var until int64
	err := s.db.QueryRowContext(ctx, `SELECT locked_until FROM login_failures WHERE username = ?`, username).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("authenticate: %w", err)
	}
	return s.now().UnixMilli() < until, nil
}

// loginFailed counts a failure for an existing username, locks it at the limit, and
// records both in the audit trail. It returns the error Authenticate should give.
func (s *Store) loginFailed(ctx context.Context, username string, disabled bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	defer tx.Rollback()
	now := s.now()
	var failures, last int64
	err = tx.QueryRowContext(ctx, `SELECT failures, last_at FROM login_failures WHERE username = ?`, username).Scan(&failures, &last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("authenticate: %w", err)
	}
	if now.Sub(fromMS(last)) > LockoutPeriod {
		failures = 0 // an old run of failures does not count towards a new lockout
	}
	failures++
	var lockedUntil int64
	locked := failures >= MaxLoginFailures
	if locked {
		lockedUntil, failures = ms(now.Add(LockoutPeriod)), 0
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO login_failures(username, failures, last_at, locked_until) VALUES (?, ?, ?, ?)
		ON CONFLICT(username) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at,
		locked_until = MAX(login_failures.locked_until, excluded.locked_until)`, username, failures, ms(now), lockedUntil)
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	reason := "wrong password"
	if disabled {
		reason = "account disabled"
	}
	details := map[string]any{"reason": reason, "locked": locked}
	if locked {
		details["locked_minutes"] = int(LockoutPeriod / time.Minute)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: username, Action: audit.ActionLoginFailed, Details: details}); err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	return ErrBadCredential
}

func (s *Store) loginSucceeded(ctx context.Context, username string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_failures WHERE username = ?`, username); err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	return nil
}

// DeleteLogins ends every login of a user ("log out everywhere") and returns how many
// there were.
func (s *Store) DeleteLogins(ctx context.Context, userID int64) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("logout everywhere: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM login_sessions WHERE user_id = ?`, userID)
	if err != nil {
		return 0, fmt.Errorf("logout everywhere: %w", err)
	}
	n, _ := res.RowsAffected()
	if err := s.auditTx(ctx, tx, audit.Event{Actor: usernameTx(ctx, tx, userID), Action: audit.ActionLogout,
		Details: map[string]any{"everywhere": true, "logins_ended": n}}); err != nil {
		return 0, fmt.Errorf("logout everywhere: %w", err)
	}
	return int(n), tx.Commit()
}

// CountLogins is how many live login sessions a user has.
func (s *Store) CountLogins(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM login_sessions WHERE user_id = ? AND expires_at >= ?`, userID, ms(s.now())).Scan(&n)
	return n, err
}

// LoginActive reports whether a login token is still good (it exists, has not passed its
// maximum age and has not been idle too long) without counting the check as activity:
// a socket left open re-checks with it and closes when the login has ended.
func (s *Store) LoginActive(ctx context.Context, token string, p LoginPolicy) (bool, error) {
	var lastSeen, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT last_seen_at, expires_at FROM login_sessions WHERE token_hash = ?`, tokenHash(token)).Scan(&lastSeen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("login: %w", err)
	}
	now := s.now()
	return now.UnixMilli() <= expires && now.Sub(fromMS(lastSeen)) <= p.Idle, nil
}
