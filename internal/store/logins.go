package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"scribe/internal/audit"
)

// Login lockout: MaxLoginFailures wrong passwords for one username from one source (the
// client's address) in a row, no more than LockoutPeriod apart, lock that username for
// that source for LockoutPeriod. Per source and username, so that failing on purpose
// against a clinician's username locks out the one failing, not the clinician at her own
// computer. Guessing across usernames from one source is slowed by the server's
// per-source throttle (internal/server), which refuses attempts before any password is
// checked.
const (
	MaxLoginFailures = 5
	LockoutPeriod    = 15 * time.Minute
)

// ErrLocked is returned by Authenticate while a username is locked out. It wraps
// ErrBadCredential so callers answer it like a wrong password and do not reveal which
// usernames exist.
var ErrLocked = fmt.Errorf("%w (too many failed attempts; locked for a while)", ErrBadCredential)

func (s *Store) lockedOut(ctx context.Context, username, source string) (bool, error) {
	var until int64
	err := s.db.QueryRowContext(ctx, `SELECT locked_until FROM login_failures WHERE username = ? AND source = ?`, username, source).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("authenticate: %w", err)
	}
	return s.now().UnixMilli() < until, nil
}

// loginFailed counts a failure for an existing username from source, locks that pair at
// the limit, and records both in the audit trail. It returns the error Authenticate
// should give.
func (s *Store) loginFailed(ctx context.Context, username, source string, disabled bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	defer tx.Rollback()
	now := s.now()
	var failures, last int64
	err = tx.QueryRowContext(ctx, `SELECT failures, last_at FROM login_failures WHERE username = ? AND source = ?`, username, source).Scan(&failures, &last)
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
	reason := "wrong password"
	if disabled {
		reason = "account disabled"
	}
	details := map[string]any{"reason": reason, "locked": locked, "source": source}
	if locked {
		details["locked_minutes"] = int(LockoutPeriod / time.Minute)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO login_failures(username, source, failures, last_at, locked_until) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(username, source) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at,
		locked_until = MAX(login_failures.locked_until, excluded.locked_until)`, username, source, failures, ms(now), lockedUntil)
	if err != nil {
		return s.failureNotStored(username, details, err)
	}
	if err := s.auditTx(ctx, tx, audit.Event{Actor: username, Action: audit.ActionLoginFailed, Details: details}); err != nil {
		return s.failureNotStored(username, details, err)
	}
	if err := tx.Commit(); err != nil {
		return s.failureNotStored(username, details, err)
	}
	return ErrBadCredential
}

// failureNotStored answers a failed login whose count could not be written: a full disk
// still gives "wrong password" (the server's per-source throttle keeps counting in
// memory) and the audit entry waits in memory; anything else is an error.
func (s *Store) failureNotStored(username string, details map[string]any, err error) error {
	if !StorageFailure(err) {
		return fmt.Errorf("authenticate: %w", err)
	}
	s.deferred.addEvent(audit.Event{At: s.now(), Actor: username, Action: audit.ActionLoginFailed, Details: details})
	return ErrBadCredential
}

func (s *Store) loginSucceeded(ctx context.Context, username, source string) error {
	// Clearing the failure count is housekeeping: a full disk does not stop the login.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_failures WHERE username = ? AND source = ?`, username, source); err != nil && !StorageFailure(err) {
		return fmt.Errorf("authenticate: %w", err)
	}
	return nil
}

// DeleteLogins ends every login of a user ("log out everywhere") and returns how many
// there were. A disk that refuses the write does not keep them alive: they end in memory
// and the database catches up later (the count is then of those known).
func (s *Store) DeleteLogins(ctx context.Context, userID int64) (int, error) {
	inMemory := s.forgetMemLogins(nil, userID)
	n, err := s.deleteLogins(ctx, userID)
	if StorageFailure(err) {
		s.endLoginsInMemory(nil, userID)
		s.deferred.addEvent(audit.Event{At: s.now(), Actor: s.usernameOf(ctx, userID), Action: audit.ActionLogout,
			Details: map[string]any{"everywhere": true}})
		return inMemory, nil
	}
	return n + inMemory, err
}

func (s *Store) deleteLogins(ctx context.Context, userID int64) (int, error) {
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

// LoginActive reports whether a login token is still good — it exists (in the database,
// or in memory while the disk was full), has not passed its maximum age or idle time, was
// not ended, and its user is not disabled — without counting the check as activity: for a
// long-lived connection (a websocket) re-checking its login.
func (s *Store) LoginActive(ctx context.Context, token string, p LoginPolicy) (bool, error) {
	_, err := s.loginUser(ctx, token, p, false)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
