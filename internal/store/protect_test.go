package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scribe/internal/audit"
	"scribe/internal/domain"
	"scribe/internal/keys"
)

// dbBytes is the database file and its WAL, as someone copying the data directory gets them.
func dbBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestTranscriptFieldsAreEncryptedAtRest(t *testing.T) {
	s, path := openTest(t)
	ctx := context.Background()
	u, c, segs := fixture(t, s, 3)
	if _, err := s.UpdateSegment(ctx, c.ID, segs[0].ID, u.ID, segs[0].Version, ptr("corrected zebra phrase"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFlag(ctx, c.ID, segs[1].ID, u.ID, domain.FlagWrongWords, "note about quokka"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(ctx, c.ID, StateStopped, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, c.ID, u.ID, nil, openItems(t, s, c.ID)...); err != nil {
		t.Fatal(err)
	}
	// Everything still reads back as plaintext through the store.
	got, err := s.Segments(ctx, c.ID, false)
	if err != nil || got[0].Text != "corrected zebra phrase" || got[0].MachineText != "line a words here" {
		t.Fatalf("segments read back: %+v, %v", got, err)
	}
	cc, err := s.Consultation(ctx, c.ID)
	if err != nil || cc.NHSNumber != "9434765919" || !strings.Contains(cc.DocumentText, "zebra") {
		t.Fatalf("consultation read back: %+v, %v", cc, err)
	}
	eds, err := s.Edits(ctx, c.ID)
	if err != nil || len(eds) != 1 || eds[0].After[segs[0].ID].Text != "corrected zebra phrase" {
		t.Fatalf("edits read back: %+v, %v", eds, err)
	}
	fl, err := s.Flags(ctx, c.ID)
	if err != nil || len(fl) != 1 || fl[0].Note != "note about quokka" {
		t.Fatalf("flags read back: %+v, %v", fl, err)
	}
	raw := dbBytes(t, path)
	for _, plain := range []string{"words here", "zebra", "quokka", "9434765919", "943 476 5919"} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("database file or WAL holds plaintext %q", plain)
		}
	}
	// The key is not in the database either.
	key, err := os.ReadFile(DefaultKeyFile(path))
	if err != nil {
		t.Fatalf("default key file: %v", err)
	}
	if fi, _ := os.Stat(DefaultKeyFile(path)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	b64 := strings.TrimSpace(strings.TrimPrefix(string(key), "v1:"))
	if bytes.Contains(raw, []byte(b64)) {
		t.Error("the data key is stored in the database")
	}
	// Nor does a transcript show up in the audit trail.
	entries, err := s.AuditEntries(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(string(e.Details), "zebra") || strings.Contains(string(e.Details), "9434765919") {
			t.Errorf("audit entry %d holds patient data: %s", e.Seq, e.Details)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestWrongKeyIsRefusedAndMissingKeyIsNotRegenerated(t *testing.T) {
	s, path := openTest(t)
	fixture(t, s, 1)
	s.Close()
	other, err := keys.New(map[int][]byte{1: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenWith(context.Background(), path, Options{Keyring: other}); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("open with another key: %v, want ErrKeyMismatch", err)
	}
	if err := os.Rename(DefaultKeyFile(path), DefaultKeyFile(path)+".bak"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), path); err == nil || !strings.Contains(err.Error(), "data key") {
		t.Fatalf("open without the key: %v, want a data key error", err)
	}
	if _, err := os.Stat(DefaultKeyFile(path)); err == nil {
		t.Fatal("a new key was generated for a database that already holds encrypted data")
	}
}

func actions(t *testing.T, s *Store, session string) []string {
	t.Helper()
	es, err := s.AuditEntries(context.Background(), AuditFilter{SessionID: session})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action)
	}
	return out
}

func TestStoreChangesAreAudited(t *testing.T) {
	s, _ := openTest(t)
	ctx := WithActor(context.Background(), "drwho")
	u, c, segs := fixture(t, s, 2)
	if _, err := s.SetState(ctx, c.ID, StatePaused, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(ctx, c.ID, StateRecording, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(ctx, c.ID, StateStopped, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteSegment(ctx, c.ID, segs[1].ID, u.ID, segs[1].Version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Undo(ctx, c.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFlag(ctx, c.ID, segs[0].ID, u.ID, domain.FlagWrongSpeaker, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, c.ID, u.ID, nil, openItems(t, s, c.ID)...); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(actions(t, s, c.ID), ",")
	want := "session_start,session_pause,session_resume,session_stop,segment_edit,segment_edit,segment_flag,approval_confirm,session_approve"
	if got != want {
		t.Fatalf("session audit = %s\nwant %s", got, want)
	}
	es, _ := s.AuditEntries(ctx, AuditFilter{SessionID: c.ID, Limit: 1})
	if es[0].Actor != "drwho" || !strings.Contains(string(es[0].Details), `"consent_by":"drwho"`) || !strings.Contains(string(es[0].Details), `"consent_at"`) {
		t.Errorf("session start entry: %+v", es[0])
	}
	all := strings.Join(actions(t, s, ""), ",")
	for _, a := range []string{"user_change", "config_change"} {
		if !strings.Contains(all, a) {
			t.Errorf("no %s in %s", a, all)
		}
	}
	rep, err := s.VerifyAudit(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestLoginLockoutAfterRepeatedFailures(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, NewUser{Username: "gp", Role: RoleClinician, Password: "right password!"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.now = func() time.Time { return now }
	for i := range MaxLoginFailures {
		if _, err := s.Authenticate(ctx, "gp", "wrong password", ""); !errors.Is(err, ErrBadCredential) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, err := s.Authenticate(ctx, "gp", "right password!", ""); !errors.Is(err, ErrLocked) {
		t.Fatalf("right password while locked: %v, want ErrLocked", err)
	}
	// The lockout holds for the source the failures came from only.
	if _, err := s.Authenticate(ctx, "gp", "right password!", "10.0.0.10"); err != nil {
		t.Fatalf("right password from another source while locked for the first: %v", err)
	}
	now = now.Add(LockoutPeriod + time.Second)
	if _, err := s.Authenticate(ctx, "gp", "right password!", ""); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	if _, err := s.Authenticate(ctx, "nobody", "whatever", ""); !errors.Is(err, ErrBadCredential) {
		t.Fatal(err)
	}
	es, _ := s.AuditEntries(ctx, AuditFilter{})
	var failed, locked int
	for _, e := range es {
		if e.Action == string(audit.ActionLoginFailed) {
			failed++
			if strings.Contains(string(e.Details), `"locked":true`) || strings.Contains(string(e.Details), `"reason":"locked"`) {
				locked++
			}
			if strings.Contains(string(e.Details), "whatever") || e.Actor == "nobody" {
				t.Errorf("failed login of an unknown name keeps what was typed: %+v", e)
			}
		}
	}
	if failed != MaxLoginFailures+2 || locked != 2 {
		t.Errorf("login_failed entries = %d (locked %d), want %d (2)", failed, locked, MaxLoginFailures+2)
	}
}

func TestKeyRotationReencryptsEverything(t *testing.T) {
	s, path := openTest(t)
	ctx := context.Background()
	u, c, segs := fixture(t, s, 2)
	if _, err := s.AddFlag(ctx, c.ID, segs[0].ID, u.ID, domain.FlagWrongWords, "a note"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSegment(ctx, c.ID, segs[1].ID, u.ID, segs[1].Version, ptr("new words"), nil); err != nil {
		t.Fatal(err)
	}
	v, err := keys.Rotate(DefaultKeyFile(path))
	if err != nil || v != 2 {
		t.Fatalf("rotate: %d %v", v, err)
	}
	kr, err := keys.Load(DefaultKeyFile(path))
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.RotateKeys(ctx, kr)
	if err != nil {
		t.Fatal(err)
	}
	if n < 7 { // 2 segments × 2 texts, 1 edit × 2, 1 note, 1 NHS number
		t.Errorf("re-encrypted %d values, want at least 7", n)
	}
	for _, col := range sealedColumns {
		var left int
		s.db.QueryRow(`SELECT COUNT(*) FROM ` + col.table + ` WHERE "` + col.column + `" LIKE 'v1:%'`).Scan(&left)
		if left != 0 {
			t.Errorf("%s.%s: %d values still under key v1", col.table, col.column, left)
		}
	}
	s.Close()
	// Only v2 is needed now.
	data, _ := os.ReadFile(DefaultKeyFile(path))
	var v2 string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "v2:") {
			v2 = l
		}
	}
	only := filepath.Join(t.TempDir(), "v2.key")
	os.WriteFile(only, []byte(v2+"\n"), 0o600)
	s2, err := OpenWith(ctx, path, Options{KeyFile: only})
	if err != nil {
		t.Fatalf("open with only the new key: %v", err)
	}
	defer s2.Close()
	got, err := s2.Segments(ctx, c.ID, false)
	if err != nil || got[1].Text != "new words" {
		t.Fatalf("after rotation: %+v %v", got, err)
	}
	rec, err := s2.ExportSubject(ctx, "9434765919")
	if err != nil || len(rec.Sessions) != 1 {
		t.Fatalf("export after rotation: %d sessions, %v", len(rec.Sessions), err)
	}
	if !strings.Contains(strings.Join(actions(t, s2, ""), ","), "key_rotated") {
		t.Error("no key_rotated audit entry")
	}
}

func TestExportSubjectFindsOnlyThatPatient(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, _ := fixture(t, s, 2)
	if _, err := s.SetState(ctx, c.ID, StateStopped, 1); err != nil {
		t.Fatal(err)
	}
	other, err := s.StartConsultation(ctx, NewConsultation{RoomID: c.RoomID, ClinicianID: u.ID, Consent: true, NHSNumber: "4010232137"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.ExportSubject(ctx, "9434765919")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Sessions) != 1 || rec.Sessions[0].Consultation.ID != c.ID || len(rec.Sessions[0].Segments) != 2 ||
		rec.Sessions[0].Segments[0].Text != "line a words here" {
		t.Fatalf("export = %+v", rec)
	}
	if len(rec.Sessions[0].Audit) == 0 {
		t.Error("export lacks the session's audit entries")
	}
	if r, _ := s.ExportSubject(ctx, "4010232137"); len(r.Sessions) != 1 || r.Sessions[0].Consultation.ID != other.ID {
		t.Fatalf("other patient: %+v", r)
	}
	if r, _ := s.ExportSubject(ctx, "9999999999"); len(r.Sessions) != 0 {
		t.Fatalf("unknown patient: %+v", r)
	}
	es, _ := s.AuditEntries(ctx, AuditFilter{})
	exports := 0
	for _, e := range es {
		if e.Action == "data_access" && strings.Contains(string(e.Details), "subject_access_export") {
			exports++
			if exports == 1 && !strings.Contains(string(e.Details), c.ID) {
				t.Errorf("export entry does not name the session: %s", e.Details)
			}
		}
	}
	if exports != 3 {
		t.Errorf("%d export entries for 3 exports", exports)
	}
}

func TestPurgeCandidatesFollowRetention(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, _ := fixture(t, s, 2)
	s.SetState(ctx, c.ID, StateStopped, 1)
	if _, err := s.Approve(ctx, c.ID, u.ID, nil, openItems(t, s, c.ID)...); err != nil {
		t.Fatal(err)
	}
	ps, err := s.PurgeCandidates(ctx, 0)
	if err != nil || len(ps) != 0 {
		t.Fatalf("fresh approval: %+v %v", ps, err)
	}
	later := time.Now().Add(DefaultTranscriptRetention + time.Hour)
	s.now = func() time.Time { return later }
	ps, err = s.PurgeCandidates(ctx, 0)
	if err != nil || len(ps) != 1 || ps[0].SessionID != c.ID || ps[0].Segments != 2 || !ps[0].Document {
		t.Fatalf("after retention: %+v %v", ps, err)
	}
	if err := s.PurgeTranscript(ctx, ps[0]); err != nil {
		t.Fatal(err)
	}
	if segs, _ := s.Segments(ctx, c.ID, true); len(segs) != 0 {
		t.Fatalf("segments left after purge: %d", len(segs))
	}
	if ps, _ := s.PurgeCandidates(ctx, 0); len(ps) != 0 {
		t.Fatalf("purged session still a candidate: %+v", ps)
	}
	if !strings.Contains(strings.Join(actions(t, s, c.ID), ","), "transcript_purged") {
		t.Error("purge not audited")
	}
}

func TestMarkInterrupted(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	_, c, _ := fixture(t, s, 1)
	got, err := s.MarkInterrupted(ctx, c.ID)
	if err != nil || got.State != StatePaused || !got.Interrupted || got.InterruptedAt.IsZero() {
		t.Fatalf("MarkInterrupted = %+v, %v", got, err)
	}
	if _, err := s.MarkInterrupted(ctx, c.ID); !errors.Is(err, ErrBadState) {
		t.Fatalf("second time: %v", err)
	}
}
