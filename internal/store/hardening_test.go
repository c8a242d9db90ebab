package store

// Tests for the red-team hardening of issue 14 that live at the store.

import (
	"bytes"
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"scribe/internal/domain"
)

// CSO triage notes are as private as flag notes: encrypted at rest, including notes an
// older version wrote in plaintext, which are encrypted when the database is opened.
func TestTriageNotesEncryptedAtRest(t *testing.T) {
	s, path := openTest(t)
	ctx := context.Background()
	u, c, segs := fixture(t, s, 2)
	cso, err := s.CreateUser(ctx, NewUser{Username: "cso", Role: RoleCSO, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.AddFlag(ctx, c.ID, segs[0].ID, u.ID, domain.FlagWrongWords, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TriageFlag(ctx, f.ID, cso.ID, FlagStateTriaged, "patient said pangolin twice"); err != nil {
		t.Fatal(err)
	}
	// A note written by a version that stored triage notes in plaintext (and so had not
	// recorded them as sealed).
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM protection_meta WHERE name LIKE 'sealed:%'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO flag_events(flag_id, from_state, to_state, user_id, at, note) VALUES (?, 'triaged', 'closed', ?, 1, 'legacy axolotl note')`, f.ID, cso.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, err := s.Incident(ctx, f.ID)
	if err != nil || len(in.History) != 2 || in.History[0].Note != "patient said pangolin twice" || in.History[1].Note != "legacy axolotl note" {
		t.Fatalf("triage history read back: %+v, %v", in.History, err)
	}
	if _, err := s.DB().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, `VACUUM`); err != nil { // old pages with the legacy plaintext
		t.Fatal(err)
	}
	raw := dbBytes(t, path)
	for _, plain := range []string{"pangolin", "axolotl"} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("the database holds the triage note word %q in plaintext", plain)
		}
	}
}

// After a crash the session is marked interrupted at its last heartbeat, not at the
// restart that found it.
func TestMarkInterruptedUsesLastHeartbeat(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	now := t0
	s.now = func() time.Time { return now }
	_, c, _ := fixture(t, s, 1)
	now = t0.Add(4 * time.Minute)
	if err := s.Heartbeat(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(3 * time.Hour) // the restart
	got, err := s.MarkInterrupted(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.InterruptedAt.Equal(t0.Add(4 * time.Minute)) {
		t.Errorf("interrupted_at %s, want the last heartbeat %s", got.InterruptedAt, t0.Add(4*time.Minute))
	}
	if err := s.Heartbeat(ctx, c.ID); err != nil { // paused now: no effect
		t.Fatal(err)
	}
}

// The database and its -wal and -shm files are private however the process's umask is
// set, and a database left readable by others is made private when opened.
func TestDatabaseFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	s, path := openTest(t)
	if _, err := s.CreateUser(context.Background(), NewUser{Username: "gp", Role: RoleClinician, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", p, fi.Mode().Perm(), err)
		}
	}
	s.Close()
	os.Chmod(path, 0o644)
	s2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("a database left 0644 is still %04o after opening", fi.Mode().Perm())
	}
}
