package store

// Working on when the disk fills up (issue 14). Reading needs no space; writing does.
// What must not be lost while writes fail — a login, the audit entries of logins and of
// reads — is kept in memory (deferred) and written by FlushDeferred once the disk takes
// writes again. Committed transcript text is kept by the server (internal/server).

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"

	"scribe/internal/audit"
)

// ErrStorage is wrapped by errors that mean the data disk cannot be written (full or
// failing), for callers to tell apart from other failures with errors.Is.
var ErrStorage = errors.New("the server's data disk cannot be written (full or failing)")

// StorageFailure reports whether err is a failure to write to the disk: SQLite's "database
// or disk is full" or an I/O error, ENOSPC/EDQUOT/EIO from a file, or ErrStorage.
func StorageFailure(err error) bool {
	if err == nil {
		return false
	}
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrFull || se.Code == sqlite3.ErrIoErr) {
		return true
	}
	return errors.Is(err, ErrStorage) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EIO)
}

// FreeBytes is the space available to this process on the filesystem holding dir.
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space on %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// deferred is what could not be written while the disk refused writes.
type deferred struct {
	mu     sync.Mutex
	logins map[[32]byte]*memLogin // by token hash
	events []audit.Event          // audit entries to append, oldest first
	// Logouts the database could not record: a token ended, and every login of a user
	// made before a time ("log out everywhere"). Refused from memory until written.
	endedTokens map[[32]byte]bool
	endedBefore map[int64]time.Time
}

// memLogin is a login made while the disk was full: it works from memory until
// FlushDeferred writes it to login_sessions.
type memLogin struct {
	userID                       int64
	created, lastSeen, expiresAt time.Time
}

func (d *deferred) addEvent(ev audit.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, ev)
}

// AuditOrDefer appends ev to the audit trail, or, when the disk refuses the write, keeps
// it (with its time) to be appended by FlushDeferred: a login or a read is not refused
// because the disk is full, and its audit entry is not lost.
func (s *Store) AuditOrDefer(ctx context.Context, ev audit.Event) error {
	if ev.Actor == "" {
		ev.Actor = actorFrom(ctx)
	}
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	err := s.Audit(ctx, ev)
	if StorageFailure(err) {
		s.deferred.addEvent(ev)
		return nil
	}
	return err
}

// Deferred is how many logins, logouts and audit entries wait in memory for the disk.
func (s *Store) Deferred() int {
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.logins) + len(d.events) + len(d.endedTokens) + len(d.endedBefore)
}

// endLoginsInMemory records logouts the database refused: token hash h, or (h nil) every
// login userID made up to now.
func (s *Store) endLoginsInMemory(h []byte, userID int64) {
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	if h != nil {
		if d.endedTokens == nil {
			d.endedTokens = map[[32]byte]bool{}
		}
		d.endedTokens[[32]byte(h)] = true
		return
	}
	if d.endedBefore == nil {
		d.endedBefore = map[int64]time.Time{}
	}
	d.endedBefore[userID] = s.now()
}

// endedInMemory reports whether a login in the database was ended while the disk was full.
func (s *Store) endedInMemory(h []byte, userID int64, created time.Time) bool {
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	before, ok := d.endedBefore[userID]
	return d.endedTokens[[32]byte(h)] || ok && !created.After(before)
}

// FlushDeferred writes the deferred logins and audit entries, oldest first, and returns
// how many still wait (the disk may still be full).
func (s *Store) FlushDeferred(ctx context.Context) (int, error) {
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	for h, l := range d.logins {
		_, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO login_sessions(token_hash, user_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			h[:], l.userID, ms(l.created), ms(l.lastSeen), ms(l.expiresAt))
		if err != nil {
			return len(d.logins) + len(d.events), fmt.Errorf("write deferred logins: %w", err)
		}
		delete(d.logins, h)
	}
	for h := range d.endedTokens {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM login_sessions WHERE token_hash = ?`, h[:]); err != nil {
			return len(d.endedTokens) + len(d.events), fmt.Errorf("write deferred logouts: %w", err)
		}
		delete(d.endedTokens, h)
	}
	for user, before := range d.endedBefore {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM login_sessions WHERE user_id = ? AND created_at <= ?`, user, ms(before)); err != nil {
			return len(d.endedBefore) + len(d.events), fmt.Errorf("write deferred logouts: %w", err)
		}
		delete(d.endedBefore, user)
	}
	for len(d.events) > 0 {
		if err := s.Audit(ctx, d.events[0]); err != nil {
			return len(d.events), fmt.Errorf("write deferred audit entries: %w", err)
		}
		d.events = d.events[1:]
	}
	return 0, nil
}

// memLoginUser finds a login kept in memory (see CreateLogin).
func (s *Store) memLoginUser(h []byte, p LoginPolicy, touch bool) (int64, bool) {
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.logins[[32]byte(h)]
	if l == nil {
		return 0, false
	}
	now := s.now()
	if now.After(l.expiresAt) || now.Sub(l.lastSeen) > p.Idle {
		delete(d.logins, [32]byte(h))
		return 0, false
	}
	if touch {
		l.lastSeen = now
	}
	return l.userID, true
}

// forgetMemLogins ends logins kept in memory: the one with token hash h, or every one of
// userID (h nil). It returns how many ended.
func (s *Store) forgetMemLogins(h []byte, userID int64) int {
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k, l := range d.logins {
		if (h != nil && k == [32]byte(h)) || (h == nil && l.userID == userID) {
			delete(d.logins, k)
			n++
		}
	}
	return n
}

func (s *Store) keepLoginInMemory(token string, userID int64, now, exp time.Time) {
	d := &s.deferred
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.logins == nil {
		d.logins = map[[32]byte]*memLogin{}
	}
	d.logins[sha256.Sum256([]byte(token))] = &memLogin{userID: userID, created: now, lastSeen: now, expiresAt: exp}
}
