package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"scribe/internal/audit"
)

// Backup writes a consistent copy of the live database to dest while the server keeps
// running. It uses SQLite's VACUUM INTO, which reads one snapshot inside a read
// transaction (writers in WAL mode are not blocked), so the copy is what the database held
// at one instant. Encrypted columns are copied as stored: still encrypted, useless without
// the data key. The copy is written beside dest and renamed into place only once it is
// complete and has passed an integrity check, so dest is never a half-written file. dest
// must not exist. The copy carries a signed checkpoint of its audit chain's head (an
// anchor for `scribe audit verify --backup`), which Backup returns.
func (s *Store) Backup(ctx context.Context, dest string) (audit.Checkpoint, error) {
	return backupDB(ctx, s.db, dest, s.keys)
}

// BackupFile backs up the database at path (see Store.Backup) without migrating it, so a
// backup can be taken of a database a newer scribe wrote. With a nil signer (the data
// key is not available) the copy has no new checkpoint and the one returned is zero.
func BackupFile(ctx context.Context, path, dest string, signer audit.Signer) (audit.Checkpoint, error) {
	if _, err := os.Stat(path); err != nil {
		return audit.Checkpoint{}, fmt.Errorf("backup: database %w", err)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(path)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("backup: open %s: %w", path, err)
	}
	cp, err := backupDB(ctx, db, dest, signer)
	db.Close()
	if cerr := ChownSidecars(path); err == nil {
		err = cerr
	}
	return cp, err
}

// ChownSidecars gives the database's -wal and -shm files the database file's owner. Even a
// read-only SQLite connection creates them when absent; when root runs `scribe backup` or
// `scribe doctor` while the service is stopped they would otherwise belong to root and
// the service user could no longer open its own database. Only root can chown, and only
// root needs to.
func ChownSidecars(dbPath string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dbPath)
	if err != nil {
		return fmt.Errorf("database %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Lchown(dbPath+suffix, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("give %s%s back to the database's owner: %w", dbPath, suffix, err)
		}
	}
	return nil
}

func backupDB(ctx context.Context, db *sql.DB, dest string, signer audit.Signer) (audit.Checkpoint, error) {
	var cp audit.Checkpoint
	if _, err := os.Lstat(dest); err == nil {
		return cp, fmt.Errorf("backup: %s already exists; choose a new file name", dest)
	} else if !errors.Is(err, os.ErrNotExist) {
		return cp, fmt.Errorf("backup: %w", err)
	}
	dir := filepath.Dir(dest)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".partial-*")
	if err != nil {
		return cp, fmt.Errorf("backup: %w", err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	// VACUUM INTO wants a file that does not exist yet; the empty placeholder only
	// reserved a unique private name.
	os.Remove(tmpPath)
	defer os.Remove(tmpPath)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmpPath); err != nil {
		return cp, fmt.Errorf("backup: copy database: %w", err)
	}
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		return cp, fmt.Errorf("backup: %w", err)
	}
	if signer != nil {
		if cp, err = checkpointCopy(ctx, tmpPath, signer); err != nil {
			return cp, err
		}
	}
	if err := checkCopy(ctx, tmpPath); err != nil {
		return cp, err
	}
	if err := syncFile(tmpPath); err != nil {
		return cp, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmpPath, dest); err != nil {
		return cp, fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return cp, nil
}

// checkpointCopy signs the head of the copy's audit chain and keeps the checkpoint in the
// copy itself, so every backup is an anchor for the chain as it was when taken.
func checkpointCopy(ctx context.Context, path string, signer audit.Signer) (audit.Checkpoint, error) {
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(path))
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("backup: checkpoint: %w", err)
	}
	defer db.Close()
	cp, err := audit.NewCheckpoint(ctx, db, signer, time.Now())
	if err == nil {
		err = audit.SaveCheckpoint(ctx, db, cp)
	}
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("backup: %w", err)
	}
	return cp, nil
}

// checkCopy runs SQLite's integrity check on the copy and makes sure it is a scribe
// database.
func checkCopy(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(path)+"?mode=ro")
	if err != nil {
		return fmt.Errorf("backup: check copy: %w", err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("backup: check copy: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("backup: the copy fails SQLite's integrity check: %s", res)
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return fmt.Errorf("backup: the copy is not a scribe database: %w", err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
