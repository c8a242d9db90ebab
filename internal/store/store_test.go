package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"scribe/internal/domain"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scribe.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// fixture makes a clinician, a room and a stopped-or-recording consultation with n segments.
func fixture(t *testing.T, s *Store, n int) (User, Consultation, []Segment) {
	t.Helper()
	ctx := context.Background()
	u, err := s.CreateUser(ctx, NewUser{Username: "drwho", DisplayName: "Dr Who", Role: RoleClinician, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.CreateRoom(ctx, NewRoom{Name: "Room 1", SourceKind: SourceBrowser, ClinicianID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.StartConsultation(ctx, NewConsultation{RoomID: r.ID, ClinicianID: u.ID, Consent: true, NHSNumber: "9434765919"})
	if err != nil {
		t.Fatal(err)
	}
	var segs []Segment
	for i := range n {
		sp := domain.SpeakerClinician
		if i%2 == 1 {
			sp = domain.SpeakerPatient
		}
		g, err := s.InsertCommitted(ctx, c.ID, domain.Segment{Start: float64(i * 5), End: float64(i*5 + 4), Speaker: sp, Text: "line " + string(rune('a'+i)) + " words here"})
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, g)
	}
	return u, c, segs
}

func TestMigrationsAppliedOnceAndRecorded(t *testing.T) {
	s, path := openTest(t)
	var n, v int
	if err := s.db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	all, _ := loadMigrations()
	if v != SchemaVersion() || n != len(all) {
		t.Fatalf("schema_migrations has %d rows up to version %d, want %d", n, v, SchemaVersion())
	}
	var mode string
	s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	s.Close()
	// Reopening must not re-run migrations (they would fail on existing tables).
	s2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s2.Close()
}

// A migration numbered below the newest one applied still runs: branches number their
// migrations in ranges and may be merged out of order (a database at 0130 may lack 0120).
func TestMigrationBelowTheNewestAppliedStillRuns(t *testing.T) {
	s, path := openTest(t)
	s.Close()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	// As if 0120 (heartbeat_at) had arrived after newer migrations were applied.
	for _, q := range []string{`ALTER TABLE consultations DROP COLUMN heartbeat_at`, `DELETE FROM schema_migrations WHERE version = 120`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err = Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('consultations') WHERE name = 'heartbeat_at'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("migration 0120 not run below the newest applied: column present %d, %v", n, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	s, path := openTest(t)
	if _, err := s.db.Exec(`INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, 'future', 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open on a newer schema: err = %v, want ErrNewerSchema", err)
	}
	if !strings.Contains(err.Error(), "newer scribe") {
		t.Errorf("error should tell what to do: %v", err)
	}
}

func TestUsersAndLogins(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, NewUser{Username: "a", Role: RoleAdmin, Password: "short"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short password: %v", err)
	}
	u, err := s.CreateUser(ctx, NewUser{Username: "admin", Role: RoleAdmin, Password: "a long enough secret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, NewUser{Username: "admin", Role: RoleAdmin, Password: "a long enough secret"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate username: %v", err)
	}
	var stored string
	s.db.QueryRow(`SELECT password_hash FROM users WHERE id = ?`, u.ID).Scan(&stored)
	if !strings.HasPrefix(stored, "$argon2id$") || strings.Contains(stored, "secret") {
		t.Fatalf("password stored as %q", stored)
	}
	if _, err := s.Authenticate(ctx, "admin", "wrong password!", ""); !errors.Is(err, ErrBadCredential) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "nobody", "a long enough secret", ""); !errors.Is(err, ErrBadCredential) {
		t.Fatalf("unknown user: %v", err)
	}
	got, err := s.Authenticate(ctx, "admin", "a long enough secret", "")
	if err != nil || got.ID != u.ID {
		t.Fatalf("Authenticate = %v, %v", got, err)
	}
	pol := LoginPolicy{MaxAge: 1e12, Idle: 1e12}
	tok, _, err := s.CreateLogin(ctx, u.ID, pol)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	s.db.QueryRow(`SELECT COUNT(*) FROM login_sessions WHERE token_hash = ?`, tok).Scan(&n)
	if n != 0 {
		t.Fatal("login token stored in the clear")
	}
	if lu, err := s.LoginUser(ctx, tok, pol); err != nil || lu.ID != u.ID {
		t.Fatalf("LoginUser = %v, %v", lu, err)
	}
	if _, err := s.LoginUser(ctx, tok, LoginPolicy{MaxAge: 1e12, Idle: -1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("idle login accepted: %v", err)
	}
	if _, err := s.LoginUser(ctx, tok, pol); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired login was not removed: %v", err)
	}
}

func TestConsentRequiredAndOneSessionPerRoom(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, _ := fixture(t, s, 0)
	if _, err := s.StartConsultation(ctx, NewConsultation{RoomID: c.RoomID, ClinicianID: u.ID}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no consent: %v", err)
	}
	if _, err := s.StartConsultation(ctx, NewConsultation{RoomID: c.RoomID, ClinicianID: u.ID, Consent: true}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second session in a busy room: %v", err)
	}
	if c.ConsentBy != u.ID || c.ConsentAt.IsZero() || c.State != StateRecording {
		t.Fatalf("consent not recorded: %+v", c)
	}
}

func texts(t *testing.T, s *Store, id string) string {
	t.Helper()
	segs, err := s.Segments(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range segs {
		out = append(out, string(g.Speaker[0])+":"+g.Text)
	}
	return strings.Join(out, "|")
}

func TestEditsVersionsAndUndo(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, segs := fixture(t, s, 3)
	orig := texts(t, s, c.ID)
	if orig != "c:line a words here|p:line b words here|c:line c words here" {
		t.Fatalf("initial transcript %q", orig)
	}

	text := "line a corrected"
	out, err := s.UpdateSegment(ctx, c.ID, "s1", u.ID, segs[0].Version, &text, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Version != segs[0].Version+1 || out[0].MachineText != "line a words here" {
		t.Fatalf("after edit: %+v", out[0])
	}
	// A second editor still holding the old version gets a conflict, not a silent overwrite.
	other := "someone else's change"
	if _, err := s.UpdateSegment(ctx, c.ID, "s1", u.ID, segs[0].Version, &other, nil); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "version") {
		t.Fatalf("stale version: %v", err)
	}
	sp := domain.SpeakerPatient
	if _, err := s.UpdateSegment(ctx, c.ID, "s3", u.ID, segs[2].Version, nil, &sp); err != nil {
		t.Fatal(err)
	}
	g2, _ := s.Segment(ctx, c.ID, "s2")
	if _, err := s.SplitSegment(ctx, c.ID, "s2", u.ID, g2.Version, 6, nil); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, s, c.ID); got != "c:line a corrected|p:line b|p:words here|p:line c words here" {
		t.Fatalf("after split: %q", got)
	}
	g1, _ := s.Segment(ctx, c.ID, "s1")
	if _, err := s.MergeWithNext(ctx, c.ID, "s1", u.ID, g1.Version, 0); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, s, c.ID); got != "c:line a corrected line b|p:words here|p:line c words here" {
		t.Fatalf("after merge: %q", got)
	}
	if _, err := s.AddSegment(ctx, c.ID, u.ID, NewLine{After: "s4", Speaker: domain.SpeakerClinician, Text: "  missed   line "}); err != nil {
		t.Fatal(err)
	}
	g3, _ := s.Segment(ctx, c.ID, "s3")
	if _, err := s.DeleteSegment(ctx, c.ID, "s3", u.ID, g3.Version); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, s, c.ID); got != "c:line a corrected line b|p:words here|c:missed line" {
		t.Fatalf("after add+delete: %q", got)
	}
	eds, _ := s.Edits(ctx, c.ID)
	if len(eds) != 6 || eds[0].Kind != "text" || eds[0].Before["s1"].Text != "line a words here" || eds[0].After["s1"].Text != "line a corrected" {
		t.Fatalf("edit history: %+v", eds)
	}
	// Undo everything, newest first, and the machine transcript is back.
	for range 6 {
		if _, err := s.Undo(ctx, c.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := texts(t, s, c.ID); got != orig {
		t.Fatalf("after undoing all: %q, want %q", got, orig)
	}
	if _, err := s.Undo(ctx, c.ID, u.ID); !errors.Is(err, ErrNothingToUndo) {
		t.Fatalf("undo with empty stack: %v", err)
	}
}

func TestApproveMakesReadOnlyAndCallsHook(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, segs := fixture(t, s, 2)
	if _, err := s.AddFlag(ctx, c.ID, "s2", u.ID, domain.FlagWrongSpeaker, "was the patient"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFlag(ctx, c.ID, "s2", u.ID, "made_up", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad category: %v", err)
	}
	if _, err := s.Approve(ctx, c.ID, u.ID, nil); !errors.Is(err, ErrBadState) {
		t.Fatalf("approve while recording: %v", err)
	}
	if _, err := s.SetState(ctx, c.ID, StateStopped, 12); err != nil {
		t.Fatal(err)
	}
	// A failing hook rolls the approval back.
	if _, err := s.Approve(ctx, c.ID, u.ID, func(*sql.Tx, Consultation) error { return errors.New("outbox full") }, openItems(t, s, c.ID)...); err == nil {
		t.Fatal("approval with a failing hook succeeded")
	}
	if got, _ := s.Consultation(ctx, c.ID); got.State != StateStopped {
		t.Fatalf("state after failed approval = %s", got.State)
	}
	var hooked Consultation
	got, err := s.Approve(ctx, c.ID, u.ID, func(tx *sql.Tx, c Consultation) error {
		hooked = c
		var st string
		return tx.QueryRow(`SELECT state FROM consultations WHERE id = ?`, c.ID).Scan(&st)
	}, openItems(t, s, c.ID)...)
	if err != nil {
		t.Fatal(err)
	}
	want := "[00:00:00] Clinician: line a words here\n[00:00:05] Patient: line b words here\n"
	if got.DocumentText != want || hooked.DocumentText != want || got.State != StateApproved {
		t.Fatalf("approved text %q (hook saw %q), state %s", got.DocumentText, hooked.DocumentText, got.State)
	}
	text := "late change"
	if _, err := s.UpdateSegment(ctx, c.ID, "s1", u.ID, segs[0].Version, &text, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("edit after approval: %v", err)
	}
	if _, err := s.Undo(ctx, c.ID, u.ID); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("undo after approval: %v", err)
	}
	if _, err := s.Approve(ctx, c.ID, u.ID, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("second approval: %v", err)
	}
}

func TestAssembleDocumentIsDeterministic(t *testing.T) {
	segs := []Segment{
		{Start: 3723.9, Speaker: domain.SpeakerPatient, Text: " it hurts\n here "},
		{Start: 1, Speaker: domain.SpeakerUnknown, Text: "gone", Deleted: true},
		{Start: 2, Speaker: domain.SpeakerUnknown, Text: "   "},
		{Start: 4000, Speaker: "", Text: "who"},
	}
	// A line without text is kept, with the marker: the record shows the gap.
	want := "[01:02:03] Patient: it hurts here\n[00:00:02] Unknown speaker: " + UntranscribedMarker + "\n[01:06:40] Unknown speaker: who\n"
	for range 3 {
		if got := AssembleDocument(segs); got != want {
			t.Fatalf("AssembleDocument = %q, want %q", got, want)
		}
	}
}

// openItems is every pre-approval item of a session a clinician may confirm, for tests
// that approve without a decision of their own to test.
func openItems(t *testing.T, s *Store, sessionID string) []string {
	t.Helper()
	items, err := s.ApprovalCheck(context.Background(), sessionID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}
