package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/app"
	"scribe/internal/config"
	"scribe/internal/store"
	"scribe/web"
)

// rawDo sends a JSON request with exactly the CSRF header given ("" for none).
func (c *client) rawDo(method, path, csrf string, body any) int {
	c.e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, c.e.ts.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		req.Header.Set(CSRFHeader, csrf)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestCSRFTokenRequiredOnStateChanges(t *testing.T) {
	e := newEnv(t, nil)
	a := e.user("a", store.RoleClinician)
	e.user("b", store.RoleClinician)
	room := e.room("Room A", store.SourceBrowser, nil, a.ID)
	ca, cb := e.login("a"), e.login("b")
	if ca.csrf() == "" || ca.csrf() == cb.csrf() {
		t.Fatalf("CSRF tokens: a %q, b %q: want set and different per login", ca.csrf(), cb.csrf())
	}
	start := "/api/rooms/" + itoa(room.ID) + "/sessions"
	body := map[string]any{"consent": true}
	for name, tok := range map[string]string{"missing": "", "wrong": "not-the-token", "another login's": cb.csrf()} {
		if st := ca.rawDo("POST", start, tok, body); st != http.StatusForbidden {
			t.Errorf("%s CSRF token: status %d, want 403", name, st)
		}
	}
	if ss, _ := e.srv.Store().Consultations(context.Background(), store.ConsultationFilter{}); len(ss) != 0 {
		t.Fatalf("a refused request still started %d sessions", len(ss))
	}
	if st := ca.rawDo("POST", start, ca.csrf(), body); st != http.StatusCreated {
		t.Fatalf("with the token: %d", st)
	}
	// Logout is a state change too.
	if st := ca.rawDo("POST", "/api/logout", "", nil); st != http.StatusForbidden {
		t.Errorf("logout without token: %d", st)
	}
	// Reads need no token.
	if st := ca.do("GET", "/api/sessions", nil, nil); st != 200 {
		t.Errorf("GET without token: %d", st)
	}
}

func TestWebsocketRefusesForeignOrigin(t *testing.T) {
	e := newEnv(t, nil)
	a := e.user("a", store.RoleClinician)
	room := e.room("Mic", store.SourceBrowser, nil, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	u := "wss" + strings.TrimPrefix(e.ts.URL, "https") + "/api/sessions/" + s.ID + "/live"
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Jar: c.http.Jar, HandshakeTimeout: 5 * time.Second}
	for _, path := range []string{"/live", "/audio"} {
		u := strings.TrimSuffix(u, "/live") + path
		conn, resp, err := d.Dial(u, http.Header{"Origin": {"https://evil.example"}})
		if err == nil {
			conn.Close()
			t.Fatalf("%s: a foreign Origin was accepted", path)
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: foreign Origin: %v %v, want 403", path, resp, err)
		}
	}
	conn, err := c.dialWS("/api/sessions/" + s.ID + "/live")
	if err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	conn.Close()
}

func TestRolesEnforcedOnSessionsAndAudit(t *testing.T) {
	e := newEnv(t, nil)
	a := e.user("a", store.RoleClinician)
	e.user("b", store.RoleClinician)
	e.user("admin", store.RoleAdmin)
	e.user("cso", store.RoleCSO)
	e.user("auditor", store.RoleAuditor)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 440, 3)}, a.ID)
	ca := e.login("a")
	s := startWAV(t, e, ca, room.ID)
	waitFor(t, 20*time.Second, "the WAV to end", func() bool { v, _ := ca.session(s.ID); return v.State == store.StateStopped })
	_, segs := ca.session(s.ID)
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	seg := "/api/sessions/" + s.ID + "/segments/" + segs[0].ID
	// Another clinician: not found, over the API and the websocket.
	cb := e.login("b")
	for _, r := range []struct{ method, path string }{{"GET", "/api/sessions/" + s.ID}, {"GET", "/api/sessions/" + s.ID + "/edits"},
		{"PATCH", seg}, {"POST", seg + "/flags"}, {"POST", "/api/sessions/" + s.ID + "/approve"}, {"POST", "/api/sessions/" + s.ID + "/stop"}} {
		if st, _ := cb.errorOf(r.method, r.path, map[string]any{"version": segs[0].Version, "text": "hijack", "category": "wrong_words", "reviewed": true}); st != http.StatusNotFound {
			t.Errorf("clinician b %s %s: %d, want 404", r.method, r.path, st)
		}
	}
	if _, err := cb.dialWS("/api/sessions/" + s.ID + "/live"); err == nil {
		t.Error("clinician b opened a's live websocket")
	}
	if _, got := ca.session(s.ID); got[0].Text != segs[0].Text {
		t.Fatalf("b changed a's transcript: %q", got[0].Text)
	}
	// Admin: rooms and users, never transcript text.
	admin := e.login("admin")
	for _, p := range []string{"/api/sessions", "/api/sessions/" + s.ID, "/api/sessions/" + s.ID + "/edits", "/api/audit"} {
		if st, _ := admin.errorOf("GET", p, nil); st != http.StatusForbidden {
			t.Errorf("admin GET %s: %d, want 403", p, st)
		}
	}
	if _, err := admin.dialWS("/api/sessions/" + s.ID + "/live"); err == nil {
		t.Error("admin opened the live websocket")
	}
	var raw json.RawMessage
	admin.do("GET", "/api/rooms", nil, &raw)
	if strings.Contains(string(raw), "440 Hz") {
		t.Errorf("admin's room list shows transcript text: %s", raw)
	}
	// Auditor: the audit trail and nothing else; the trail has no transcript text.
	aud := e.login("auditor")
	if st, _ := aud.errorOf("GET", "/api/sessions/"+s.ID, nil); st != http.StatusForbidden {
		t.Errorf("auditor read a session: %d", st)
	}
	var entries []store.AuditEntry
	if st := aud.do("GET", "/api/audit?session="+s.ID, nil, &entries); st != 200 || len(entries) == 0 {
		t.Fatalf("auditor audit list: %d, %d entries", st, len(entries))
	}
	if entries[0].Action != "session_start" || entries[0].Actor != "a" {
		t.Errorf("first entry of the session: %+v", entries[0])
	}
	var all []store.AuditEntry
	aud.do("GET", "/api/audit", nil, &all)
	for _, en := range all {
		if strings.Contains(string(en.Details), "440 Hz") {
			t.Errorf("audit entry %d holds transcript text: %s", en.Seq, en.Details)
		}
	}
	var rep map[string]any
	if st := aud.do("GET", "/api/audit/verify", nil, &rep); st != 200 || rep["ok"] != true {
		t.Fatalf("verify: %d %v", st, rep)
	}
	for _, who := range []*client{ca, admin, e.login("cso")} {
		if st, _ := who.errorOf("GET", "/api/audit", nil); st != http.StatusForbidden {
			t.Errorf("non-auditor read the audit log: %d", st)
		}
	}
}

func TestLoginLockoutRotationLogoutEverywhere(t *testing.T) {
	e := newEnv(t, nil)
	e.user("a", store.RoleClinician)
	anon := &client{e: e, http: e.ts.Client()}
	for range store.MaxLoginFailures {
		if st, _ := anon.errorOf("POST", "/api/login", map[string]string{"username": "a", "password": "not the password"}); st != 401 {
			t.Fatalf("bad password: %d", st)
		}
	}
	if st, msg := anon.errorOf("POST", "/api/login", map[string]string{"username": "a", "password": testPassword}); st != 401 || msg != "wrong username or password" {
		t.Fatalf("right password while locked out: %d %q", st, msg)
	}
	es, _ := e.srv.Store().AuditEntries(context.Background(), store.AuditFilter{})
	locked := false
	for _, en := range es {
		locked = locked || (en.Action == "login_failed" && strings.Contains(string(en.Details), `"locked":true`))
	}
	if !locked {
		t.Error("the lockout is not in the audit trail")
	}
	// Six failures from this (the tests') address also throttle it for a while: let it pass.
	e.srv.throttle.now = func() time.Time { return time.Now().Add(time.Hour) }

	e.user("b", store.RoleClinician)
	c := e.login("b")
	first := c.cookie(CookieName)
	var me store.User
	if st := c.do("POST", "/api/login", map[string]string{"username": "b", "password": testPassword}, &me); st != 200 {
		t.Fatal(st)
	}
	if second := c.cookie(CookieName); second == first || second == "" {
		t.Fatal("login cookie did not rotate at login")
	}
	if _, err := e.srv.Store().LoginUser(context.Background(), first, e.srv.policy); err == nil {
		t.Error("the login token replaced at login still works")
	}
	other := e.login("b") // another device
	if st := c.do("POST", "/api/logout-everywhere", nil, nil); st != 200 {
		t.Fatalf("logout everywhere: %d", st)
	}
	for _, cl := range []*client{c, other} {
		if st, _ := cl.errorOf("GET", "/api/me", nil); st != 401 {
			t.Errorf("a login survived logout everywhere: %d", st)
		}
	}
}

func (c *client) cookie(name string) string {
	for _, ck := range c.http.Jar.Cookies(mustURL(c.e.ts.URL)) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

func TestSecurityHeadersAndNoInlineScript(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.ts.Client().Get(e.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{"Content-Security-Policy": "default-src 'self'", "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "no-referrer", "Strict-Transport-Security": "max-age="} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s = %q, want %q", h, resp.Header.Get(h), want)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	// The CSP forbids inline script, so the pages must have none.
	fs.WalkDir(web.Static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".html") {
			return err
		}
		b, _ := fs.ReadFile(web.Static, p)
		low := strings.ToLower(string(b))
		for i := strings.Index(low, "<script"); i >= 0; i = next(low, i) {
			tag := low[i : i+strings.Index(low[i:], ">")]
			if !strings.Contains(tag, "src=") {
				t.Errorf("%s has an inline script", p)
			}
		}
		for _, attr := range []string{" onclick=", " onload=", " onsubmit=", "javascript:"} {
			if strings.Contains(low, attr) {
				t.Errorf("%s has inline script %q", p, attr)
			}
		}
		return nil
	})
}

func next(s string, i int) int {
	j := strings.Index(s[i+1:], "<script")
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

func TestOrphanedRecordingIsMarkedInterrupted(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, store.NewUser{Username: "a", Role: store.RoleClinician, Password: testPassword})
	r, _ := st.CreateRoom(ctx, store.NewRoom{Name: "R", SourceKind: store.SourceBrowser, ClinicianID: u.ID})
	c, err := st.StartConsultation(ctx, store.NewConsultation{RoomID: r.ID, ClinicianID: u.ID, Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close() // as if the process died while recording
	e := newEnv(t, func(cfg *Config, _ *Deps) { cfg.DataDir = dir })
	got, err := e.srv.Store().Consultation(ctx, c.ID)
	if err != nil || got.State != store.StatePaused || !got.Interrupted {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	v, _ := e.login("a").session(c.ID)
	if !v.Interrupted {
		t.Error("the API does not show the session as interrupted")
	}
}

// lockedLog is a log sink for a whole session's slog output.
type lockedLog = syncBuffer

// No transcript text or NHS number in the logs of a whole session, the failures
// included (errors are where content leaks), for the fake transcriber (whose text is
// known) and the real pipeline (libwhisper, Silero) at debug level.
func TestLogsHoldNoTranscriptOrNHSNumber(t *testing.T) {
	const nhs = "9434765919"
	secrets := []string{nhs, "943 476 5919", "tone 440", "zebra", "quokka", "flamingo"}
	run := func(t *testing.T, logs *lockedLog, tr Transcriber, realAudio bool) {
		logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		e := newEnv(t, func(_ *Config, d *Deps) { d.Logger = logger; d.Transcriber = tr })
		a := e.user("a", store.RoleClinician)
		wav := writeTone(t, e.dir, 440, 3)
		if shared := config.SharedDir(); shared != "" && realAudio {
			if jfk := filepath.Join(shared, "audio", "jfk.wav"); fileExists(jfk) {
				wav = jfk
			}
		}
		room := e.room("Room A", store.SourceWAV, map[string]string{"path": wav}, a.ID)
		anon := &client{e: e, http: e.ts.Client()}
		anon.errorOf("POST", "/api/login", map[string]string{"username": "a", "password": "zebra password"})
		anon.errorOf("POST", "/api/login", map[string]string{"username": nhs, "password": "quokka password"})
		c := e.login("a")
		var s sessionView
		if st := c.do("POST", "/api/rooms/"+itoa(room.ID)+"/sessions", map[string]any{"consent": true, "nhs_number": "943 476 5919"}, &s); st != 201 {
			t.Fatalf("start: %d", st)
		}
		waitFor(t, 60*time.Second, "the WAV to end", func() bool { v, _ := c.session(s.ID); return v.State == store.StateStopped })
		_, segs := c.session(s.ID)
		var added struct {
			Segments []store.Segment `json:"segments"`
		}
		if st := c.do("POST", "/api/sessions/"+s.ID+"/segments", map[string]any{"speaker": "patient", "text": "a zebra line"}, &added); st != 200 {
			t.Fatalf("add line: %d", st)
		}
		g := added.Segments[0]
		seg := "/api/sessions/" + s.ID + "/segments/" + g.ID
		c.do("PATCH", seg, map[string]any{"version": g.Version, "text": "the quokka line"}, nil)
		c.errorOf("PATCH", seg, map[string]any{"version": g.Version, "text": "stale flamingo"}) // conflict
		c.errorOf("PATCH", "/api/sessions/"+s.ID+"/segments/nope", map[string]any{"version": 1, "text": "flamingo"})
		c.errorOf("PATCH", seg, map[string]any{"version": 2, "text": strings.Repeat("flamingo ", 2000)})
		c.do("POST", seg+"/flags", map[string]any{"category": "wrong_words", "note": "zebra misheard"}, nil)
		c.errorOf("POST", "/api/rooms/"+itoa(room.ID)+"/sessions", map[string]any{"consent": true, "nhs_number": "9434765918"})
		if len(segs) > 0 {
			c.do("POST", "/api/sessions/"+s.ID+"/segments/"+segs[0].ID+"/split", map[string]any{"version": segs[0].Version, "offset": 3}, nil)
		}
		if st := c.do("POST", "/api/sessions/"+s.ID+"/approve", map[string]any{"reviewed": true, "confirm": c.approvalItems(s.ID)}, nil); st != 200 {
			t.Fatalf("approve: %d", st)
		}
		e.srv.Close()
	}
	check := func(t *testing.T, logs *lockedLog) {
		out := logs.String()
		for _, want := range []string{"api request", "login failed", "/approve"} {
			if !strings.Contains(out, want) {
				t.Fatalf("the log lacks %q, so the scan would prove little:\n%s", want, out)
			}
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("log output contains %q", s)
			}
		}
		t.Logf("%d bytes of logs scanned", len(out))
	}
	t.Run("fake", func(t *testing.T) {
		logs := &lockedLog{}
		run(t, logs, fakeTranscriber{segSeconds: 1}, false)
		check(t, logs)
	})
	t.Run("real pipeline", func(t *testing.T) {
		logs := &lockedLog{}
		logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg := config.Default()
		cfg.Models.Whisper = config.SharedTestModel("for-tests-ggml-tiny.en.bin")
		cfg.Models.VAD = config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin")
		if cfg.Models.Whisper == "" || cfg.Models.VAD == "" {
			t.Skip("../shared/models not available")
		}
		cfg.Models.Workers, cfg.Models.Threads = 1, 2
		cfg.Transcription.TemperatureInc = 0
		rt, err := app.Load(cfg, app.Options{Provisional: true, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		run(t, logs, rt.Pipeline, true)
		check(t, logs)
	})
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// A server that cannot check a login — shutting down, so every request's context is
// already cancelled (or the connection's read deadline passed on a busy server, which
// cancels it too) — answers 503, not 401: the page would otherwise tell a clinician
// whose login holds that it had ended (seen in the browser test of a server restart).
func TestLoginNotEndedByAServerThatCannotCheckIt(t *testing.T) {
	e := newEnv(t, nil)
	e.user("a", store.RoleClinician)
	c := e.login("a")
	stopping := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context()) // as Run's cancelled base context leaves it
		cancel()
		e.srv.Handler().ServeHTTP(w, r.WithContext(ctx))
	}))
	defer stopping.Close()
	req, _ := http.NewRequest("GET", stopping.URL+"/api/me", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie(CookieName)})
	resp, err := stopping.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /api/me on a server shutting down: %d, want 503", resp.StatusCode)
	}
	if st, _ := c.errorOf("GET", "/api/me", nil); st != http.StatusOK {
		t.Errorf("the login did not survive: %d", st)
	}
}
