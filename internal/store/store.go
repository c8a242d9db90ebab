// Package store keeps scribe's state in SQLite: users and their login sessions, rooms,
// consultation sessions, transcript segments, every edit made to them, and review flags.
// Migrations are numbered .sql files embedded in the binary and applied in order.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"scribe/internal/audit"
	"scribe/internal/keys"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Errors callers tell apart with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrConflict      = errors.New("conflict")
	ErrReadOnly      = errors.New("session is approved and read-only")
	ErrBadState      = errors.New("not allowed in the session's current state")
	ErrNewerSchema   = errors.New("database schema is newer than this program")
	ErrInvalid       = errors.New("invalid input")
	ErrBadCredential = errors.New("wrong username or password")
	ErrNothingToUndo = errors.New("nothing to undo")
	ErrTooLarge      = errors.New("too large")
	ErrForbidden     = errors.New("not allowed")
)

// Store is a handle on the scribe database. It is safe for concurrent use.
type Store struct {
	db    *sql.DB
	now   func() time.Time
	keys  *keys.Keyring // field encryption (protect.go)
	audit *audit.Log
	// deferred holds logins and audit entries made while the disk refused writes (storage.go).
	deferred deferred
	// KeyFileCreated is the key file Open generated for a new database ("" if none).
	KeyFileCreated string
}

// Open opens (creating if needed) the SQLite database at path, in WAL mode with foreign
// keys on, and applies any migrations it does not have yet. The data key comes from
// keys.Load with DefaultKeyFile(path) (see OpenWith).
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith is Open with the data keys and audit settings given (see Options).
func OpenWith(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := privateFile(path); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	dsn := "file:" + filepath.ToSlash(path) + "?_journal_mode=WAL&_foreign_keys=on&_busy_timeout=5000&_synchronous=NORMAL&_txlock=immediate"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.protect(ctx, path, opts); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// privateFile makes sure the database file is private before SQLite opens it: a new one
// is created 0600 (SQLite gives its -wal and -shm files the database file's mode), and
// one readable by others is made 0600, sidecars included.
func privateFile(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		return f.Close()
	}
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes the database for packages that add their own tables in the same file
// (the write-back outbox).
func (s *Store) DB() *sql.DB { return s.db }

// AuditTx appends ev to the audit trail inside tx, a transaction on DB(), so a package
// with its own tables (the outbox) records its changes and their audit entries atomically
// without a second handle. An empty actor is taken from ctx.
func (s *Store) AuditTx(ctx context.Context, tx *sql.Tx, ev audit.Event) error {
	return s.auditTx(ctx, tx, ev)
}

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// SchemaVersion is the highest migration this program knows.
func SchemaVersion() int {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	known := 0
	if len(ms) > 0 {
		known = ms[len(ms)-1].version
	}
	if current > known {
		return fmt.Errorf("%w: the database is at schema version %d but this scribe knows only up to %d; run a newer scribe or restore a backup", ErrNewerSchema, current, known)
	}
	// Every known migration not yet recorded runs, in order, even below the newest one
	// applied: migrations numbered in ranges by parallel branches can arrive out of order
	// (a database at 0130 may still lack 0120).
	applied := map[int]bool{}
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema version: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, s.now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}
