package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/store"
)

const testPassword = "a long test password"

// seedStore makes a data directory with a clinician, a room and a recorded, approved
// session with an NHS number; it returns the session id.
func seedStore(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, store.NewUser{Username: "gp", Role: store.RoleClinician, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.CreateRoom(ctx, store.NewRoom{Name: "Room 1", SourceKind: store.SourceBrowser, ClinicianID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.StartConsultation(ctx, store.NewConsultation{RoomID: r.ID, ClinicianID: u.ID, Consent: true, NHSNumber: "9434765919"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.InsertCommitted(ctx, c.ID, domain.Segment{Start: float64(i), End: float64(i) + 1, Speaker: domain.SpeakerUnknown, Text: fmt.Sprintf("pelican words %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SetState(ctx, c.ID, store.StateStopped, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Approve(ctx, c.ID, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func TestAuditVerifyNamesATamperedRow(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir)
	code, out, errOut := runCLI("audit", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("intact chain: exit %d: %s %s", code, out, errOut)
	}
	db, err := sql.Open("sqlite3", filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Someone with the database file drops the guard trigger and edits one entry.
	if _, err := db.Exec(`DROP TRIGGER audit_log_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, errOut = runCLI("audit", "verify", "--data-dir", dir)
	if code == 0 || !strings.Contains(out, "seq 3") || !strings.Contains(out, "edited") {
		t.Fatalf("tampered chain: exit %d, stdout %q, stderr %q; want the edited entry 3 named", code, out, errOut)
	}
}

func TestKeyRotateExportAndPurgeCommands(t *testing.T) {
	dir := t.TempDir()
	id := seedStore(t, dir)
	t.Setenv("SCRIBE_DATA_KEY", "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	code, out, errOut := runCLI("key", "rotate", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "v2") {
		t.Fatalf("key rotate: exit %d: %s %s", code, out, errOut)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "scribe.db"))
	wal, _ := os.ReadFile(filepath.Join(dir, "scribe.db-wal"))
	if bytes.Contains(append(raw, wal...), []byte("pelican")) || bytes.Contains(append(raw, wal...), []byte("9434765919")) {
		t.Fatal("plaintext in the database after rotation")
	}
	code, out, errOut = runCLI("export", "--nhs-number", "943 476 5919", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	var rec store.SubjectRecord
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("export JSON: %v\n%s", err, out)
	}
	if len(rec.Sessions) != 1 || rec.Sessions[0].Consultation.ID != id || len(rec.Sessions[0].Segments) != 3 ||
		rec.Sessions[0].Segments[0].Text != "pelican words 0" || !strings.Contains(rec.Sessions[0].Consultation.DocumentText, "pelican") {
		t.Fatalf("export = %s", out)
	}
	if code, _, errOut := runCLI("export", "--nhs-number", "123", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "NHS number") {
		t.Errorf("bad NHS number: exit %d %s", code, errOut)
	}
	// One export, one audit entry, naming who ran it (not "system").
	exports := auditEntries(t, dir, func(e store.AuditEntry) bool {
		return e.Action == "data_access" && strings.Contains(string(e.Details), "subject_access_export")
	})
	if who := osUser(t); len(exports) != 1 || !strings.Contains(exports[0].Actor, who) || !strings.Contains(string(exports[0].Details), id) {
		t.Errorf("export audited as %+v; want one entry by the OS user %q naming the session", exports, who)
	}
	code, out, _ = runCLI("purge", "--dry-run", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "would purge 0 sessions") {
		t.Fatalf("purge dry run of a fresh approval: %d %s", code, out)
	}
	if code, _, errOut := runCLI("audit", "verify", "--data-dir", dir); code != 0 {
		t.Fatalf("audit after rotation and export: %s", errOut)
	}
}

// auditEntries opens dir's database and returns the audit entries keep accepts.
func auditEntries(t *testing.T, dir string, keep func(store.AuditEntry) bool) []store.AuditEntry {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, e := range es {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func osUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// startServeProt runs the scribe binary's serve command and returns its URL.
func startServeProt(t *testing.T, bin, cfgFile, dir string) (*exec.Cmd, string, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfgFile, "--listen", "127.0.0.1:0", "--data-dir", dir)
	cmd.Env = append(os.Environ(), "SCRIBE_DATA_KEY=", "CREDENTIALS_DIRECTORY=")
	out, _ := cmd.StdoutPipe()
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := regexp.MustCompile(`running at (https://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
	}()
	select {
	case u := <-urlc:
		return cmd, u, stderr
	case <-time.After(90 * time.Second):
		t.Fatalf("serve did not start:\n%s", stderr.String())
	}
	return nil, "", nil
}

type protSessionOut struct {
	Session struct {
		ID          string `json:"id"`
		State       string `json:"state"`
		Interrupted bool   `json:"interrupted"`
		// InterruptedAt is the last sign of life before the crash (issue 14).
		InterruptedAt time.Time `json:"interrupted_at"`
		StartedAt     time.Time `json:"started_at"`
	} `json:"session"`
	Segments []store.Segment `json:"segments"`
}

// seedWAVRoom writes a serve config for dir (the test models, one worker, then
// extraYAML) and a clinician "gp" with a room that plays wav; it returns the config file
// and the room's id.
func seedWAVRoom(t *testing.T, dir, wav, model, vad, extraYAML string) (string, int64) {
	t.Helper()
	cfgFile := filepath.Join(dir, "scribe.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("models:\n  whisper: %s\n  vad: %s\n  workers: 1\n  threads: 2\ntranscription:\n  temperature_inc: 0\n%s", model, vad, extraYAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, store.NewUser{Username: "gp", Role: store.RoleClinician, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	cfgJSON, _ := json.Marshal(map[string]string{"path": wav})
	room, err := st.CreateRoom(ctx, store.NewRoom{Name: "Room 1", SourceKind: store.SourceWAV, SourceConfig: cfgJSON, ClinicianID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	return cfgFile, room.ID
}

// killMidRecording serves dir, starts a session in the room (start is the request body)
// as "gp", waits for its first committed segment and kill -9s the server while the
// session is still recording. It returns the session's id and what the API showed
// before the kill, for the test to compare with what a restart finds.
func killMidRecording(t *testing.T, bin, cfgFile, dir string, roomID int64, start map[string]any) (string, protSessionOut) {
	t.Helper()
	cmd, base, stderr := startServeProt(t, bin, cfgFile, dir)
	c := newAPIClient(t, base, "gp", testPassword)
	var started struct {
		ID string `json:"id"`
	}
	if code := c.call("POST", fmt.Sprintf("/api/rooms/%d/sessions", roomID), start, &started); code != 201 {
		t.Fatalf("start session: %d", code)
	}
	var before protSessionOut
	deadline := time.Now().Add(60 * time.Second)
	for len(before.Segments) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no committed segment within 60 s:\n%s", stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
		c.call("GET", "/api/sessions/"+started.ID, nil, &before)
	}
	if before.Session.State != store.StateRecording {
		t.Fatalf("session is %s before the kill; the kill must land mid-recording", before.Session.State)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return started.ID, before
}

// jfkThreeTimes is jfk.wav three times over as 16 kHz mono: long enough that a kill
// lands mid-recording.
func jfkThreeTimes(t *testing.T) []float32 {
	t.Helper()
	clip, err := audio.ReadFile(filepath.Join(config.SharedDir(), "audio", "jfk.wav"))
	if err != nil {
		t.Fatal(err)
	}
	one := domain.MixDown(clip.To16k().Channels)
	var long []float32
	for range 3 {
		long = append(long, one...)
	}
	return long
}

// stopAndAudit stops the restarted server with SIGTERM, requires `audit verify` to pass
// on dir and returns the session's audit entries.
func stopAndAudit(t *testing.T, cmd *exec.Cmd, stderr *strings.Builder, dir, sessionID string) []store.AuditEntry {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code, out, errOut := runCLI("audit", "verify", "--data-dir", dir); code != 0 {
		t.Fatalf("audit chain after kill -9 and restart: exit %d: %s %s\n%s", code, out, errOut, stderr.String())
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.AuditEntries(ctx, store.AuditFilter{SessionID: sessionID})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// kill -9 while recording, then restart: what was committed is intact, the session is
// marked interrupted (and paused: no passive listening), and the audit chain verifies.
func TestKillDashNineMidSessionThenRestart(t *testing.T) {
	model, vad := testModels(t)
	bin := scribeBinary(t)
	dir := t.TempDir()
	wav := filepath.Join(dir, "long.wav")
	if err := audio.WriteWAVFile(wav, 16000, [][]float32{jfkThreeTimes(t)}); err != nil {
		t.Fatal(err)
	}
	cfgFile, roomID := seedWAVRoom(t, dir, wav, model, vad, "")

	id, before := killMidRecording(t, bin, cfgFile, dir, roomID, map[string]any{"consent": true, "nhs_number": "9434765919"})
	killed := time.Now()
	time.Sleep(2 * time.Second) // the restart comes later than the crash

	cmd2, base2, stderr2 := startServeProt(t, bin, cfgFile, dir)
	c2 := newAPIClient(t, base2, "gp", testPassword)
	var after protSessionOut
	if code := c2.call("GET", "/api/sessions/"+id, nil, &after); code != 200 {
		t.Fatalf("session after restart: %d", code)
	}
	if after.Session.State != store.StatePaused || !after.Session.Interrupted {
		t.Errorf("after restart the session is %q, interrupted=%v; want paused and interrupted", after.Session.State, after.Session.Interrupted)
	}
	// The recording was cut off when the process died, not when it came back: the mark is
	// the last heartbeat, at most one heartbeat interval (5 s) before the kill.
	if at := after.Session.InterruptedAt; at.After(killed) || at.Before(killed.Add(-6*time.Second)) || at.Before(after.Session.StartedAt) {
		t.Errorf("interrupted_at %s; the kill was at %s (started %s): want the last heartbeat before the kill",
			at.Format(time.StampMilli), killed.Format(time.StampMilli), after.Session.StartedAt.Format(time.StampMilli))
	}
	got := map[string]store.Segment{}
	for _, g := range after.Segments {
		got[g.ID] = g
	}
	for _, g := range before.Segments {
		a, ok := got[g.ID]
		if !ok || a.Text != g.Text || a.Start != g.Start || a.End != g.End || a.Speaker != g.Speaker {
			t.Errorf("committed segment %s changed or lost across kill -9: before %+v, after %+v", g.ID, g, a)
		}
	}
	t.Logf("%d segments committed before the kill, %d after restart", len(before.Segments), len(after.Segments))
	es := stopAndAudit(t, cmd2, stderr2, dir, id)
	found := false
	for _, e := range es {
		found = found || (e.Action == "session_pause" && strings.Contains(string(e.Details), `"reason":"interrupted"`))
	}
	if !found {
		t.Error("the interruption is not in the audit trail")
	}
}
