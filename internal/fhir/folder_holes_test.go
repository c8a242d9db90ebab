package fhir

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// H6: export files held plaintext NHS numbers and transcripts readable by the group of
// whatever directory they landed in (0640, no named group).
func TestH6FolderFilesArePrivateByDefault(t *testing.T) {
	dir := t.TempDir()
	s := &FolderSink{Dir: dir, Config: testConfig()}
	n := testNote()
	if _, err := s.Deliver(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName(n.DocumentID)))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("export file mode %o, want 600 when no group is configured", m)
	}
}

// H6: with a named group the files are 0640 and owned by it, so only the engine's group
// reads them.
func TestH6FolderFilesGoToTheNamedGroup(t *testing.T) {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("no name for this process's group: %v", err)
	}
	dir := t.TempDir()
	s := &FolderSink{Dir: dir, Config: testConfig(), Group: g.Name}
	n := testNote()
	if _, err := s.Deliver(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName(n.DocumentID)))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o640 {
		t.Errorf("mode %o, want 640", m)
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != g.Gid {
		t.Errorf("group %d, want %s (%s)", gid, g.Gid, g.Name)
	}
	s.Group = "no-such-group-scribe"
	if _, err := s.Deliver(context.Background(), testNote()); !IsPermanent(err) {
		t.Errorf("unknown group: err = %v, want held", err)
	}
}

// H6: the folder sink's guarantee ended at the file; now the note waits for the engine's
// acknowledgement (collected/ or deleted: filed; rejected/: held with the reason), and
// acknowledged files are deleted after the retention period.
func TestH6FolderAcknowledgementConvention(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s := &FolderSink{Dir: dir, Config: testConfig(), Retention: 24 * time.Hour, Now: func() time.Time { return now }}
	ctx := context.Background()
	var notes []Note
	var waiting []Waiting
	for i := 0; i < 4; i++ {
		n := testNote()
		rc, err := s.Deliver(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if !rc.Pending {
			t.Fatalf("receipt %+v: a written file is not yet in the record", rc)
		}
		notes = append(notes, n)
		waiting = append(waiting, Waiting{DocumentID: n.DocumentID, Location: rc.Location})
	}
	name := func(i int) string { return FileName(notes[i].DocumentID) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, CollectedDir), 0o750))
	must(os.MkdirAll(filepath.Join(dir, RejectedDir), 0o750))
	// 0 collected (moved), 1 collected (deleted), 2 rejected with a reason, 3 still there.
	must(os.Rename(filepath.Join(dir, name(0)), filepath.Join(dir, CollectedDir, name(0))))
	must(os.Remove(filepath.Join(dir, name(1))))
	must(os.Rename(filepath.Join(dir, name(2)), filepath.Join(dir, RejectedDir, name(2))))
	must(os.WriteFile(filepath.Join(dir, RejectedDir, name(2)+".reason"), []byte("patient not found in EMIS\n"), 0o640))

	acks, err := s.Acknowledgements(ctx, waiting)
	must(err)
	got := map[string]Ack{}
	for _, a := range acks {
		got[a.DocumentID] = a
	}
	if a := got[notes[0].DocumentID]; a.Outcome != AckFiled {
		t.Errorf("moved to collected/: %+v", a)
	}
	if a := got[notes[1].DocumentID]; a.Outcome != AckFiled {
		t.Errorf("deleted: %+v", a)
	}
	if a := got[notes[2].DocumentID]; a.Outcome != AckRefused || !strings.Contains(a.Reason, "patient not found in EMIS") {
		t.Errorf("rejected: %+v", a)
	}
	if a, ok := got[notes[3].DocumentID]; ok {
		t.Errorf("still waiting, yet acknowledged: %+v", a)
	}
	// Delivering a collected note again (a retry after a crash) writes no second copy.
	if _, err := s.Deliver(ctx, notes[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, name(0))); err == nil {
		t.Error("a collected document was written again")
	}
	// Retention: acknowledged files go after a day.
	now = now.Add(25 * time.Hour)
	if _, err := s.Acknowledgements(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, CollectedDir, name(0)), filepath.Join(dir, RejectedDir, name(2))} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s kept past retention", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, name(3))); err != nil {
		t.Errorf("an uncollected document was removed: %v", err)
	}
}
