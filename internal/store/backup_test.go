package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Run as root (as the sid root's tests are), a backup of a stopped service's database
// leaves the -wal/-shm files SQLite creates owned by the database's owner, not by root.
func TestBackupFileKeepsSidecarsOwnedByTheDatabaseOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own files as another user")
	}
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	t.Setenv("SCRIBE_DATA_KEY", "")
	dir := t.TempDir()
	path := filepath.Join(dir, "scribe.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	const uid, gid = 4321, 4322
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := BackupFile(context.Background(), path, filepath.Join(dir, "copy.db"), nil); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, suffix := range []string{"-wal", "-shm"} {
		fi, err := os.Stat(path + suffix)
		if err != nil {
			continue
		}
		found++
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", suffix, st.Uid, st.Gid, uid, gid)
		}
	}
	t.Logf("%d sidecar file(s) created by the read-only backup", found)
}
