package server

import (
	"context"
	"crypto/tls"
	"database/sql"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/store"
)

func TestHealthzAndAuthRequired(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.ts.Client().Get(e.ts.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	anon := &client{e: e, http: e.ts.Client()}
	if st, _ := anon.errorOf("GET", "/api/rooms", nil); st != http.StatusUnauthorized {
		t.Fatalf("rooms without login: %d", st)
	}
	e.user("admin", store.RoleAdmin)
	if st, msg := anon.errorOf("POST", "/api/login", map[string]string{"username": "admin", "password": "wrong password!"}); st != 401 || msg != "wrong username or password" {
		t.Fatalf("bad login: %d %q", st, msg)
	}
	// The login cookie is Secure, HttpOnly and SameSite=Strict.
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/login", strings.NewReader(`{"username":"admin","password":"`+testPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{CookieName + "=", "Secure", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %q", cookie, want)
		}
	}
	// Logging out ends the login.
	c := e.login("admin")
	c.do("POST", "/api/logout", nil, nil)
	if st, _ := c.errorOf("GET", "/api/me", nil); st != 401 {
		t.Fatalf("after logout: %d", st)
	}
}

// startedSession makes clinician "a" with a WAV room and returns a started session.
func startWAV(t *testing.T, e *testEnv, c *client, roomID int64) sessionView {
	t.Helper()
	var s sessionView
	if st := c.do("POST", "/api/rooms/"+itoa(roomID)+"/sessions", map[string]any{"consent": true}, &s); st != 201 {
		t.Fatalf("start: %d", st)
	}
	return s
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func TestAccessControlConsentAndNHSNumber(t *testing.T) {
	e := newEnv(t, nil)
	e.user("admin", store.RoleAdmin)
	admin := e.login("admin")
	// Admin creates a clinician and a room through the API.
	var a, b store.User
	if st := admin.do("POST", "/api/users", map[string]string{"username": "a", "role": "clinician", "password": testPassword, "display_name": "Dr A"}, &a); st != 201 {
		t.Fatalf("create user: %d", st)
	}
	admin.do("POST", "/api/users", map[string]string{"username": "b", "role": "clinician", "password": testPassword}, &b)
	wav := writeTone(t, e.dir, 300, 2.5)
	var room store.Room
	if st := admin.do("POST", "/api/rooms", map[string]any{"name": "Room A", "source_kind": "wav", "source_config": map[string]string{"path": wav}, "clinician_id": a.ID}, &room); st != 201 {
		t.Fatalf("create room: %d", st)
	}
	ca, cb := e.login("a"), e.login("b")
	if st, _ := ca.errorOf("POST", "/api/users", map[string]string{"username": "x", "role": "admin", "password": testPassword}); st != 403 {
		t.Fatalf("clinician creating users: %d", st)
	}
	path := "/api/rooms/" + itoa(room.ID) + "/sessions"
	if st, msg := ca.errorOf("POST", path, map[string]any{"consent": false}); st != 400 || !strings.Contains(msg, "consent") {
		t.Fatalf("no consent: %d %q", st, msg)
	}
	if st, msg := ca.errorOf("POST", path, map[string]any{"consent": true, "nhs_number": "943 476 5918"}); st != 400 || !strings.Contains(msg, "NHS number") {
		t.Fatalf("bad NHS number: %d %q", st, msg)
	}
	if st, _ := cb.errorOf("POST", path, map[string]any{"consent": true}); st != 404 {
		t.Fatalf("another clinician's room: %d", st)
	}
	var s sessionView
	if st := ca.do("POST", path, map[string]any{"consent": true, "nhs_number": "943 476 5919"}, &s); st != 201 {
		t.Fatalf("start: %d", st)
	}
	if s.NHSNumber != "9434765919" || s.ConsentBy != a.ID || s.State != store.StateRecording {
		t.Fatalf("started session: %+v", s)
	}
	if st, msg := ca.errorOf("POST", path, map[string]any{"consent": true}); st != 409 || !strings.Contains(msg, "in progress") {
		t.Fatalf("second start in a busy room: %d %q", st, msg)
	}
	sp := "/api/sessions/" + s.ID
	if st, _ := admin.errorOf("GET", sp, nil); st != 403 {
		t.Fatalf("admin reading a transcript: %d", st)
	}
	if st, _ := cb.errorOf("GET", sp, nil); st != 404 {
		t.Fatalf("clinician B reading A's session: %d", st)
	}
	if st, _ := cb.errorOf("PATCH", sp+"/segments/s1", map[string]any{"version": 1, "text": "x"}); st != 404 {
		t.Fatalf("clinician B editing A's session: %d", st)
	}
	if st, _ := ca.errorOf("GET", "/api/sessions/no-such-session", nil); st != 404 {
		t.Fatalf("unknown session: %d", st)
	}
	// The admin sees the room is busy, but nothing of the session.
	var rooms []roomView
	admin.do("GET", "/api/rooms", nil, &rooms)
	if len(rooms) != 1 || rooms[0].Active == nil || rooms[0].Active.ID != "" || rooms[0].Active.State == "" {
		t.Fatalf("admin room view: %+v", rooms)
	}
	var list []sessionView
	cb.do("GET", "/api/sessions", nil, &list)
	if len(list) != 0 {
		t.Fatalf("clinician B lists %d sessions", len(list))
	}
}

func TestEditConflictApproveAndReadOnly(t *testing.T) {
	var mu sync.Mutex
	var notes []ApprovedNote
	e := newEnv(t, func(c *Config, d *Deps) {
		d.OnApproved = func(ctx context.Context, tx *sql.Tx, n ApprovedNote) error {
			var state string
			if err := tx.QueryRowContext(ctx, `SELECT state FROM consultations WHERE id = ?`, n.SessionID).Scan(&state); err != nil {
				return err
			}
			if state != store.StateApproved {
				t.Errorf("hook sees state %s", state)
			}
			mu.Lock()
			notes = append(notes, n)
			mu.Unlock()
			return nil
		}
	})
	a := e.user("a", store.RoleClinician)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 300, 2.5)}, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	waitFor(t, 20*time.Second, "the WAV to end and the session to stop", func() bool {
		v, _ := c.session(s.ID)
		return v.State == store.StateStopped
	})
	_, segs := c.session(s.ID)
	if len(segs) != 3 || !strings.Contains(segs[0].Text, "segment 0 (clinician) tone 300 Hz") || segs[2].End < 2.49 {
		t.Fatalf("segments after the WAV: %+v", segs)
	}
	sp := "/api/sessions/" + s.ID
	var out struct{ Segments []store.Segment }
	if st := c.do("PATCH", sp+"/segments/s1", map[string]any{"version": segs[0].Version, "text": "Good morning."}, &out); st != 200 || out.Segments[0].Text != "Good morning." {
		t.Fatalf("edit: %d %+v", st, out)
	}
	st, msg := c.errorOf("PATCH", sp+"/segments/s1", map[string]any{"version": segs[0].Version, "speaker": "patient"})
	if st != 409 || !strings.Contains(msg, "changed by someone else") {
		t.Fatalf("stale edit: %d %q", st, msg)
	}
	if st, msg := c.errorOf("PATCH", sp+"/segments/s1", map[string]any{"version": out.Segments[0].Version, "speaker": "doctor"}); st != 400 || !strings.Contains(msg, "unknown speaker") {
		t.Fatalf("bad speaker: %d %q", st, msg)
	}
	if st, _ := c.errorOf("PATCH", sp+"/segments/s1", map[string]any{"version": 1, "colour": "red"}); st != 400 {
		t.Fatalf("unknown field: %d", st)
	}
	if st, _ := c.errorOf("POST", sp+"/segments/s2/flags", map[string]any{"category": "wrong_speaker", "note": "that was me"}); st != 201 {
		t.Fatalf("flag: %d", st)
	}
	if st, msg := c.errorOf("POST", sp+"/approve", map[string]any{"reviewed": false}); st != 400 || !strings.Contains(msg, "reviewed") {
		t.Fatalf("approve without review: %d %q", st, msg)
	}
	// The flag and the missing NHS number need the clinician's decision, each on its own.
	var refused struct {
		Error string               `json:"error"`
		Check []store.ApprovalItem `json:"check"`
	}
	if st := c.do("POST", sp+"/approve", map[string]any{"reviewed": true, "confirm": []string{"nhs_number"}}, &refused); st != 409 ||
		len(refused.Check) != 1 || refused.Check[0].Kind != store.ItemFlag || refused.Check[0].SegmentID != "s2" {
		t.Fatalf("approve with the flag not confirmed: %d %+v", st, refused)
	}
	var approved sessionView
	if st := c.do("POST", sp+"/approve", map[string]any{"reviewed": true, "confirm": c.approvalItems(s.ID)}, &approved); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	want := "[00:00:00] Clinician: Good morning.\n[00:00:01] Patient: segment 1 (patient) tone 300 Hz\n[00:00:02] Clinician: segment 2 (clinician) tone 300 Hz\n"
	if approved.State != store.StateApproved || approved.DocumentText != want {
		t.Fatalf("approved: %s %q", approved.State, approved.DocumentText)
	}
	mu.Lock()
	if len(notes) != 1 || notes[0].Text != want || notes[0].ClinicianName != "Dr a" || notes[0].RoomName != "Room A" || notes[0].DocumentID != s.DocumentID {
		t.Fatalf("OnApproved got %+v", notes)
	}
	mu.Unlock()
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"PATCH", sp + "/segments/s2", map[string]any{"version": 1, "text": "late"}},
		{"POST", sp + "/segments/s2/delete", map[string]any{"version": 1}},
		{"POST", sp + "/segments/s2/split", map[string]any{"version": 1, "offset": 3}},
		{"POST", sp + "/segments", map[string]any{"after": "s2", "speaker": "patient", "text": "late"}},
		{"POST", sp + "/segments/s2/flags", map[string]any{"category": "wrong_words"}},
		{"POST", sp + "/undo", nil},
		{"POST", sp + "/approve", map[string]any{"reviewed": true}},
		{"POST", sp + "/stop", nil},
	} {
		if st, msg := c.errorOf(req.method, req.path, req.body); st != http.StatusLocked {
			t.Errorf("%s %s after approval: %d %q, want 423", req.method, req.path, st, msg)
		}
	}
	if st, _ := c.errorOf("PATCH", sp+"/segments/s2", map[string]any{"version": 1, "text": "late"}); st != http.StatusLocked {
		t.Errorf("edit after approval: %d, want 423", st)
	}
}

func TestRequestBodyLimit(t *testing.T) {
	e := newEnv(t, nil)
	e.user("admin", store.RoleAdmin)
	c := e.login("admin")
	big := strings.Repeat("x", 70<<10)
	if st, msg := c.errorOf("POST", "/api/rooms", map[string]any{"name": big, "source_kind": "wav"}); st != 413 || !strings.Contains(msg, "larger than") {
		t.Fatalf("oversized body: %d %q", st, msg)
	}
	if st, _ := c.errorOf("GET", "/api/me", nil); st != 200 {
		t.Fatalf("server unwell after oversized body: %d", st)
	}
}

// dialWS opens a websocket as the client's logged-in user.
func (c *client) dialWS(path string) (*websocket.Conn, error) {
	u := "wss" + strings.TrimPrefix(c.e.ts.URL, "https") + path
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Jar: c.http.Jar, HandshakeTimeout: 5 * time.Second}
	h := http.Header{"Origin": {c.e.ts.URL}}
	conn, _, err := d.Dial(u, h)
	return conn, err
}

func readMsg(t *testing.T, conn *websocket.Conn) message {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m message
	if err := conn.ReadJSON(&m); err != nil {
		t.Fatalf("read websocket: %v", err)
	}
	return m
}

func TestWebsocketBadInput(t *testing.T) {
	e := newEnv(t, nil)
	a := e.user("a", store.RoleClinician)
	room := e.room("Mic room", store.SourceBrowser, nil, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	conn, err := c.dialWS("/api/sessions/" + s.ID + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.TextMessage, []byte(`{"resume":`))
	if m := readMsg(t, conn); m.Type != "error" || m.Code != "bad_message" {
		t.Fatalf("malformed resume: %+v", m)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(`{"resume":0,"`+strings.Repeat("x", 5000)+`":1}`))
	if m := readMsg(t, conn); m.Type != "error" || m.Code != "too_large" || !strings.Contains(m.Message, "4096") {
		t.Fatalf("oversized message: %+v", m)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(`{"resume":0}`))
	if m := readMsg(t, conn); m.Type != "snapshot" || m.Session.State != store.StateRecording {
		t.Fatalf("snapshot: %+v", m)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("y", 10000)))
	if m := readMsg(t, conn); m.Type != "error" || m.Code != "too_large" {
		t.Fatalf("oversized after resume: %+v", m)
	}
	conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	if m := readMsg(t, conn); m.Type != "error" || m.Code != "bad_message" {
		t.Fatalf("binary on live socket: %+v", m)
	}

	// Browser audio in a wrong format is refused with a clear error.
	audio, err := c.dialWS("/api/sessions/" + s.ID + "/audio")
	if err != nil {
		t.Fatal(err)
	}
	audio.WriteMessage(websocket.TextMessage, []byte(`{"format":"f32le","sample_rate":44100,"channels":2}`))
	if m := readMsg(t, audio); m.Type != "error" || m.Code != "bad_format" || !strings.Contains(m.Message, "16000 Hz mono") {
		t.Fatalf("wrong audio format: %+v", m)
	}
	audio.Close()
	audio, err = c.dialWS("/api/sessions/" + s.ID + "/audio")
	if err != nil {
		t.Fatal(err)
	}
	audio.WriteMessage(websocket.TextMessage, []byte(`{"format":"f32le","sample_rate":16000,"channels":1}`))
	if m := readMsg(t, audio); m.Type != "ready" {
		t.Fatalf("audio format accepted: %+v", m)
	}
	audio.WriteMessage(websocket.BinaryMessage, []byte{0, 0, 128}) // not whole f32 samples
	if m := readMsg(t, audio); m.Type != "error" || m.Code != "bad_frame" || !strings.Contains(m.Message, "4-byte") {
		t.Fatalf("ragged audio frame: %+v", m)
	}
	audio.Close()

	// Unknown session ids are refused before any upgrade.
	if _, err := c.dialWS("/api/sessions/nope/live"); err == nil {
		t.Fatal("websocket to an unknown session opened")
	}
	// And the server is still up and the session still live.
	v, _ := c.session(s.ID)
	if v.State != store.StateRecording {
		t.Fatalf("session state after bad input: %s", v.State)
	}
}
