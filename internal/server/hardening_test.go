package server

// Tests for the red-team hardening of issue 14.

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/gorilla/websocket"

	"scribe/internal/audit"
	"scribe/internal/domain"
	"scribe/internal/store"
)

// dirty holds the characters the red team put into edits and notes: NUL, BEL, ESC, a
// right-to-left override and a zero-width space.
const dirty = "dose\x00 5\x07 mg \x1b[31m\u202Edaily\u200B"

// invisible reports the first control or format character in s, if any.
func invisible(s string) (rune, bool) {
	for _, r := range s {
		if unicode.Is(unicode.Cc, r) && r != '\n' || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return r, true
		}
	}
	return 0, false
}

func TestControlAndBidiCharactersNeverReachTheRecord(t *testing.T) {
	var mu sync.Mutex
	var filed string
	e := newEnv(t, func(c *Config, d *Deps) {
		d.Transcriber = dirtyTranscriber{}
		d.OnApproved = func(_ context.Context, _ *sql.Tx, n ApprovedNote) error {
			mu.Lock()
			defer mu.Unlock()
			filed = n.Text
			return nil
		}
	})
	a := e.user("a", store.RoleClinician)
	e.user("cso", store.RoleCSO)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 440, 3)}, a.ID)
	c := e.login("a")
	id, segs := stoppedSession(t, e, c, room.ID)
	path := "/api/sessions/" + id
	if st, msg := c.errorOf("PATCH", path+"/segments/"+segs[0].ID, map[string]any{"version": segs[0].Version, "text": dirty}); st != 200 {
		t.Fatalf("edit: %d %s", st, msg)
	}
	if st, msg := c.errorOf("POST", path+"/segments", map[string]any{"after": segs[0].ID, "speaker": "patient", "text": dirty}); st != 200 {
		t.Fatalf("add line: %d %s", st, msg)
	}
	var f store.ReviewFlag
	if st := c.do("POST", path+"/segments/"+segs[0].ID+"/flags", map[string]any{"category": "wrong_words", "note": dirty}, &f); st != 201 {
		t.Fatalf("flag: %d", st)
	}
	var nf store.ReviewFlag
	if st := c.do("POST", path+"/flags", map[string]any{"category": "other", "note": dirty}, &nf); st != 201 {
		t.Fatalf("note flag: %d", st)
	}
	cso := e.login("cso")
	var in store.Incident
	if st := cso.do("POST", "/api/safety/flags/"+itoa(f.ID)+"/triage", map[string]any{"state": "triaged", "note": dirty}, &in); st != 200 {
		t.Fatalf("triage: %d", st)
	}
	check := func(what, s string) {
		t.Helper()
		if r, bad := invisible(s); bad {
			t.Errorf("%s keeps the invisible character %U: %q", what, r, s)
		}
	}
	_, segs = c.session(id)
	for _, g := range segs {
		check("segment "+g.ID, g.Text)
	}
	flags, _ := e.srv.Store().Flags(context.Background(), id)
	for _, fl := range flags {
		check("flag note", fl.Note)
	}
	got, _ := e.srv.Store().Incident(context.Background(), f.ID)
	for _, h := range got.History {
		check("triage note", h.Note)
	}
	if st, msg := c.errorOf("POST", path+"/approve", map[string]any{"reviewed": true, "confirm": c.approvalItems(id)}); st != 200 {
		t.Fatalf("approve: %d %s", st, msg)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(filed, "daily") {
		t.Fatalf("the record lost the words around the removed characters: %q", filed)
	}
	check("the text filed in the record", filed)
	v, _ := c.session(id)
	check("the approved document", v.DocumentText)
}

// dirtyTranscriber commits machine text carrying control and bidi characters, as a
// misbehaving model could: the record must still be clean.
type dirtyTranscriber struct{}

func (dirtyTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	if err := (fakeTranscriber{segSeconds: 1}).Transcribe(ctx, src, offset, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventCommitted {
			ev.Segment.Text += " \u202Enoitacidem\x1b\u2066"
		}
		emit(ev)
	}); err != nil {
		return err
	}
	return nil
}

// dataAccess lists the data_access audit entries whose details mention purpose.
func dataAccess(t *testing.T, st *store.Store, purpose string) []store.AuditEntry {
	t.Helper()
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, e := range es {
		if e.Action == "data_access" && strings.Contains(string(e.Details), `"purpose":"`+purpose+`"`) {
			out = append(out, e)
		}
	}
	return out
}

// Every response that carries transcript text or a flag's note is audited by the handler
// that writes it, and ids in paths are parsed strictly: no spelling of an id reaches the
// text without the audit entry.
func TestEveryReadOfTranscriptTextIsAudited(t *testing.T) {
	e := newEnv(t, nil)
	a := e.user("a", store.RoleClinician)
	e.user("cso", store.RoleCSO)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 440, 3)}, a.ID)
	c := e.login("a")
	sid, segs := stoppedSession(t, e, c, room.ID)
	var f store.ReviewFlag
	if st := c.do("POST", "/api/sessions/"+sid+"/segments/"+segs[0].ID+"/flags", map[string]any{"category": "wrong_words", "note": "misheard dose"}, &f); st != 201 {
		t.Fatalf("flag: %d", st)
	}
	st := e.srv.Store()
	cso := e.login("cso")

	var list struct {
		Flags []store.Incident `json:"flags"`
	}
	if code := cso.do("GET", "/api/safety/flags", nil, &list); code != 200 || len(list.Flags) != 1 || list.Flags[0].Segment == nil {
		t.Fatalf("incident list: %d %+v", code, list)
	}
	if got := dataAccess(t, st, "incident_queue"); len(got) != 1 || !strings.Contains(string(got[0].Details), itoa(f.ID)) || got[0].Actor != "cso" {
		t.Errorf("the CSO's incident list (segment text and notes of %d flags) is not audited: %+v", len(list.Flags), got)
	}

	id := itoa(f.ID)
	for _, spelling := range []string{"+" + id, id + "%20", id + "abc", "0x" + id, id + "e0", "0" + id, "%20" + id, id + ".0", "%2B" + id, id + "%0A", "-" + id, "99999999999999999999"} {
		code, _ := cso.errorOf("GET", "/api/safety/flags/"+spelling, nil)
		if code != 400 {
			t.Errorf("GET /api/safety/flags/%s: %d, want 400 (ids are parsed strictly)", spelling, code)
		}
	}
	if got := dataAccess(t, st, "incident_review"); len(got) != 0 {
		t.Errorf("refused spellings were audited as reads: %+v", got)
	}
	if code, _ := cso.errorOf("GET", "/api/safety/flags/"+id, nil); code != 200 {
		t.Fatalf("incident %s: %d", id, code)
	}
	if got := dataAccess(t, st, "incident_review"); len(got) != 1 || got[0].SessionID != sid {
		t.Errorf("incident view audited %d times, want once with the session: %+v", len(got), got)
	}

	before := len(dataAccess(t, st, "review"))
	c.session(sid)
	if got := dataAccess(t, st, "review"); len(got) != before+1 || got[len(got)-1].SessionID != sid || got[len(got)-1].Actor != "a" {
		t.Errorf("the clinician's session read is not audited: %d → %d entries", before, len(got))
	}
	if code := c.do("GET", "/api/sessions/"+sid+"/edits", nil, nil); code != 200 {
		t.Fatalf("edits: %d", code)
	}
	if got := dataAccess(t, st, "edit_history"); len(got) != 1 {
		t.Errorf("the edit history read is not audited: %+v", got)
	}
	conn, err := c.dialWS("/api/sessions/" + sid + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteJSON(map[string]any{"resume": 0})
	if m := readMsg(t, conn); m.Type != "snapshot" || len(m.Segments) == 0 {
		t.Fatalf("first live message: %+v", m)
	}
	if got := dataAccess(t, st, "live_view"); len(got) != 1 {
		t.Errorf("the live transcript sent over the websocket is not audited: %+v", got)
	}
}

// readUntilClosed reads a websocket until it is closed and returns the error frames seen
// and how long the close took.
func readUntilClosed(conn *websocket.Conn, within time.Duration) (codes []string, closed bool) {
	conn.SetReadDeadline(time.Now().Add(within))
	for {
		var m message
		if err := conn.ReadJSON(&m); err != nil {
			var ne net.Error
			return codes, !(errors.As(err, &ne) && ne.Timeout())
		}
		if m.Type == "error" {
			codes = append(codes, m.Code)
		}
	}
}

// An open websocket ends with its login: "log out everywhere", a disabled account or the
// login's idle or maximum age close live and microphone sockets, they do not stream on.
func TestWebsocketsCloseWhenTheLoginEnds(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.LoginRecheck = 100 * time.Millisecond; c.LoginMaxAge = 3 * time.Second })
	a := e.user("a", store.RoleClinician)
	room := e.room("Mic room", store.SourceBrowser, nil, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	live, err := c.dialWS("/api/sessions/" + s.ID + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	live.WriteJSON(map[string]any{"resume": 0})
	if m := readMsg(t, live); m.Type != "snapshot" {
		t.Fatalf("first live message %+v", m)
	}
	mic, err := c.dialWS("/api/sessions/" + s.ID + "/audio")
	if err != nil {
		t.Fatal(err)
	}
	defer mic.Close()
	mic.WriteMessage(websocket.TextMessage, []byte(`{"format":"f32le","sample_rate":16000,"channels":1}`))
	if m := readMsg(t, mic); m.Type != "ready" {
		t.Fatalf("microphone socket: %+v", m)
	}
	other := e.login("a") // another device logs out everywhere
	if st := other.do("POST", "/api/logout-everywhere", nil, nil); st != 200 {
		t.Fatalf("logout everywhere: %d", st)
	}
	if codes, closed := readUntilClosed(live, 2*time.Second); !closed || !slices.Contains(codes, "logged_out") {
		t.Errorf("live socket after log out everywhere: closed=%v, error frames %v; want a logged_out frame and the close", closed, codes)
	}
	if _, closed := readUntilClosed(mic, 2*time.Second); !closed {
		t.Error("microphone socket still open after log out everywhere")
	}

	// The maximum login age ends a socket the same way, however active it is.
	c2 := e.login("a")
	live2, err := c2.dialWS("/api/sessions/" + s.ID + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer live2.Close()
	live2.WriteJSON(map[string]any{"resume": 0})
	readMsg(t, live2)
	if codes, closed := readUntilClosed(live2, 6*time.Second); !closed || !slices.Contains(codes, "logged_out") {
		t.Errorf("live socket past the login's maximum age: closed=%v, error frames %v", closed, codes)
	}
}

// A request body that trickles in (a byte at a time, seconds apart) is cut off after the
// body read timeout instead of holding a connection and a handler for as long as the
// sender likes.
func TestSlowRequestBodyIsTimedOut(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.BodyReadTimeout = time.Second })
	u, _ := url.Parse(e.ts.URL)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{", u.Host)
	start := time.Now()
	ended := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, conn) // returns when the server closes the connection
		ended <- time.Since(start)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case d := <-ended:
			t.Logf("the server ended the trickling request after %v", d.Round(10*time.Millisecond))
			return
		case <-tick.C:
			if time.Since(start) > 6*time.Second {
				t.Fatalf("a body trickling in a byte every 0.5 s still holds its connection after %v (body read timeout 1 s)", time.Since(start).Round(time.Second))
			}
			conn.Write([]byte(" "))
		}
	}
}

// A Stop whose pipeline takes longer than the body read timeout to commit its last line
// keeps its request: the timeout is for a body still arriving, and a Stop has none.
// (net/http cancels a request's context when its read of the connection behind a
// running handler fails, and a read deadline left on the connection makes it fail.)
func TestSlowStopIsNotCutOffByTheBodyReadTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) {
		c.BodyReadTimeout = 500 * time.Millisecond
		d.Transcriber = slowFinishTranscriber{fakeTranscriber{segSeconds: 1}, 2 * time.Second}
	})
	a := e.user("a", store.RoleClinician)
	room := e.room("Slow room", "wav", map[string]string{"path": writeTone(t, e.dir, 300, 60)}, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	var v sessionView
	if st := c.do("POST", "/api/sessions/"+s.ID+"/stop", nil, &v); st != http.StatusOK || v.State != store.StateStopped {
		t.Fatalf("stop taking %v (body read timeout 0.5 s): status %d, state %q", time.Since(start).Round(10*time.Millisecond), st, v.State)
	}
	t.Logf("stop answered after %v", time.Since(start).Round(10*time.Millisecond))
}

// slowFinishTranscriber is the fake transcriber taking finish to commit once its source
// ends, like a decoder on a long last line under load.
type slowFinishTranscriber struct {
	fakeTranscriber
	finish time.Duration
}

func (s slowFinishTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	return s.fakeTranscriber.Transcribe(ctx, eofAfter{src, s.finish}, offset, emit)
}

// One login cannot hold an unbounded number of websockets, and a session's transcript
// cannot be grown without bound by added or edited lines.
func TestWebsocketsPerLoginAndSessionSizeAreBounded(t *testing.T) {
	e := newEnv(t, nil)
	a := e.user("a", store.RoleClinician)
	room := e.room("Mic room", store.SourceBrowser, nil, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	opened := 0
	for range 40 {
		conn, err := c.dialWS("/api/sessions/" + s.ID + "/live")
		if err != nil {
			break
		}
		defer conn.Close()
		opened++
	}
	if opened >= 40 {
		t.Errorf("one login opened %d live websockets; want a bound", opened)
	}
	var refused struct {
		Error string `json:"error"`
	}
	u := "wss" + strings.TrimPrefix(e.ts.URL, "https") + "/api/sessions/" + s.ID + "/live"
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Jar: c.http.Jar}
	if _, resp, err := d.Dial(u, http.Header{"Origin": {e.ts.URL}}); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("socket over the bound: err %v, response %v; want 429", err, resp)
	} else {
		json.NewDecoder(resp.Body).Decode(&refused)
		t.Logf("%d sockets opened, then: %s", opened, refused.Error)
	}
	if conn, err := e.login("a").dialWS("/api/sessions/" + s.ID + "/live"); err != nil { // another login is not affected
		t.Errorf("another login of the same user cannot open a socket: %v", err)
	} else {
		conn.Close()
	}

	// Lines of 10,000 characters added one after another stop at the session's bound.
	if st := c.do("POST", "/api/sessions/"+s.ID+"/stop", nil, nil); st != 200 {
		t.Fatalf("stop: %d", st)
	}
	line := strings.Repeat("word ", 2000)[:10000]
	added, status, msg := 0, 0, ""
	for added < 300 {
		status, msg = c.errorOf("POST", "/api/sessions/"+s.ID+"/segments", map[string]any{"speaker": "patient", "text": line})
		if status != 200 {
			break
		}
		added++
	}
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "characters") {
		t.Errorf("after %d added lines of 10,000 characters: %d %q; want 413 naming the limit", added, status, msg)
	}
	_, segs := c.session(s.ID)
	total := 0
	for _, g := range segs {
		total += len(g.Text)
	}
	if total > store.MaxSessionText {
		t.Errorf("the session holds %d characters, over the bound %d", total, store.MaxSessionText)
	}
	t.Logf("%d lines accepted (%d characters), then %d: %s", added, total, status, msg)
}

// loginFrom posts a login as if from addr (host:port) straight to the handler, and
// returns the status and the Retry-After header.
func loginFrom(e *testEnv, addr, user, password string) (int, string) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	req := httptest.NewRequest("POST", "/api/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Retry-After")
}

// One source cannot guess passwords quickly (per-source throttling with backoff), and
// failing on purpose against someone's username does not lock them out everywhere: the
// lockout is per source and username.
func TestLoginThrottledPerSourceAndLockoutIsNoDenialOfService(t *testing.T) {
	e := newEnv(t, nil)
	e.user("gp", store.RoleClinician)
	e.user("b", store.RoleClinician)
	const guesser, attacker, surgery = "10.0.0.77:40000", "10.0.0.66:40000", "10.0.0.10:50000"

	// A burst of guesses from one source, across usernames: how many get checked?
	start := time.Now()
	checked, throttled := 0, 0
	for i := range 30 {
		code, retry := loginFrom(e, guesser, []string{"gp", "b", "nobody"}[i%3], "guess number "+itoa(int64(i)))
		switch {
		case code == http.StatusUnauthorized:
			checked++
		case code == http.StatusTooManyRequests && retry != "":
			throttled++
		default:
			t.Fatalf("guess %d: %d (Retry-After %q)", i, code, retry)
		}
	}
	el := time.Since(start)
	t.Logf("one source, 30 guesses in %v: %d passwords checked, %d refused unchecked", el.Round(time.Millisecond), checked, throttled)
	if checked > store.MaxLoginFailures+1 {
		t.Errorf("%d of 30 rapid guesses from one source had their password checked; want at most %d", checked, store.MaxLoginFailures+1)
	}
	// Even the right password from the throttled source waits its turn.
	if code, retry := loginFrom(e, guesser, "b", testPassword); code != http.StatusTooManyRequests || retry == "" {
		t.Errorf("right password from the throttled source: %d (Retry-After %q), want 429", code, retry)
	}

	// Someone fails as gp on purpose until gp is locked for their source...
	for i := range store.MaxLoginFailures {
		if code, _ := loginFrom(e, attacker, "gp", "not her password"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, code)
		}
	}
	// ...which does not lock the GP out at her own computer,
	if code, _ := loginFrom(e, surgery, "gp", testPassword); code != http.StatusOK {
		t.Errorf("the GP logging in from her own computer after someone failed as her: %d, want 200", code)
	}
	// and waiting out that source's throttle does not reopen guessing against her from it.
	e.srv.throttle.now = func() time.Time { return time.Now().Add(time.Hour) }
	if code, _ := loginFrom(e, attacker, "gp", testPassword); code != http.StatusUnauthorized {
		t.Errorf("gp from the source that failed %d times as her: %d, want 401 (locked for that source)", store.MaxLoginFailures, code)
	}
}

func TestLoginThrottleBackoffDoublesToItsCapAndIsForgotten(t *testing.T) {
	now := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	th := &loginThrottle{now: func() time.Time { return now }}
	var got []time.Duration
	for range 20 {
		got = append(got, th.failed("10.1.1.1"))
	}
	want := []time.Duration{0, 0, 0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("backoff after failure %d = %v, want %v (all: %v)", i+1, got[i], w, got)
		}
	}
	if got[19] != maxLoginBackoff {
		t.Errorf("backoff after 20 failures = %v, want the cap %v", got[19], maxLoginBackoff)
	}
	if w := th.wait("10.1.1.1"); w != maxLoginBackoff || th.wait("10.1.1.2") != 0 {
		t.Errorf("wait = %v for the failing source, %v for another", w, th.wait("10.1.1.2"))
	}
	now = now.Add(maxLoginBackoff + loginFailureMemory + time.Second)
	if w := th.wait("10.1.1.1"); w != 0 || th.failed("10.1.1.1") != 0 {
		t.Errorf("failures not forgotten after %v: wait %v", loginFailureMemory, w)
	}
}

// Professional identifiers are checked and unique at account creation, and a room moves
// to another clinician only when that clinician accepts it or a second admin approves.
func TestRoomReassignmentNeedsTheReceivingClinicianOrASecondAdmin(t *testing.T) {
	e := newEnv(t, nil)
	gp := e.user("gp", store.RoleClinician)
	e.user("admin", store.RoleAdmin)
	e.user("admin2", store.RoleAdmin)
	admin := e.login("admin")
	var real store.User
	if st := admin.do("POST", "/api/users", map[string]any{"username": "patel", "role": "clinician", "password": testPassword, "display_name": "Dr A Patel", "gmc_number": "7654321"}, &real); st != 201 {
		t.Fatalf("clinician with a valid GMC number: %d", st)
	}
	for _, bad := range []map[string]any{
		{"username": "x1", "role": "clinician", "password": testPassword, "gmc_number": "ABC<svg>"},
		{"username": "x2", "role": "clinician", "password": testPassword, "gmc_number": "123456"},
		{"username": "x3", "role": "clinician", "password": testPassword, "sds_user_id": "12345"},
	} {
		if st, msg := admin.errorOf("POST", "/api/users", bad); st != http.StatusBadRequest {
			t.Errorf("identifier %v: %d %q, want 400", bad, st, msg)
		}
	}
	if st, msg := admin.errorOf("POST", "/api/users", map[string]any{"username": "imposter", "role": "clinician", "password": testPassword, "display_name": "Dr A Patel", "gmc_number": "7654321"}); st != http.StatusConflict {
		t.Errorf("a second account with Dr Patel's GMC number: %d %q, want 409", st, msg)
	}
	var fake store.User
	if st := admin.do("POST", "/api/users", map[string]any{"username": "fake", "role": "clinician", "password": testPassword, "display_name": "Dr Demo", "gmc_number": "L123456"}, &fake); st != 201 {
		t.Fatalf("clinician with an L number: %d", st)
	}
	room := e.room("Room 1", store.SourceBrowser, nil, gp.ID)
	path := "/api/rooms/" + itoa(room.ID) + "/clinician"
	var pending store.Room
	if st := admin.do("PUT", path, map[string]any{"clinician_id": fake.ID}, &pending); st != http.StatusAccepted || pending.ClinicianID != gp.ID || pending.PendingClinicianID != fake.ID {
		t.Fatalf("reassignment request: %d %+v; want 202, the room still the GP's, pending for the new clinician", st, pending)
	}
	if got, _ := e.srv.Store().Room(context.Background(), room.ID); got.ClinicianID != gp.ID {
		t.Fatalf("the room moved before anyone confirmed: clinician %d", got.ClinicianID)
	}
	if st, _ := admin.errorOf("POST", path+"/approve", nil); st != http.StatusForbidden {
		t.Errorf("the requesting admin approved their own reassignment: %d, want 403", st)
	}
	if st, _ := e.login("patel").errorOf("POST", path+"/accept", nil); st != http.StatusForbidden {
		t.Errorf("a clinician the room is not offered to accepted it: %d, want 403", st)
	}
	var moved store.Room
	if st := e.login("admin2").do("POST", path+"/approve", nil, &moved); st != 200 || moved.ClinicianID != fake.ID || moved.PendingClinicianID != 0 {
		t.Fatalf("second admin's approval: %d %+v", st, moved)
	}
	// The other way: the receiving clinician accepts.
	room2 := e.room("Room 2", store.SourceBrowser, nil, gp.ID)
	path2 := "/api/rooms/" + itoa(room2.ID) + "/clinician"
	if st := admin.do("PUT", path2, map[string]any{"clinician_id": real.ID}, nil); st != http.StatusAccepted {
		t.Fatalf("request: %d", st)
	}
	var offered []roomView
	pc := e.login("patel")
	pc.do("GET", "/api/rooms", nil, &offered)
	if len(offered) != 1 || offered[0].ID != room2.ID || !offered[0].Offered {
		t.Errorf("the clinician does not see the room offered to them: %+v", offered)
	}
	if st := pc.do("POST", path2+"/accept", nil, &moved); st != 200 || moved.ClinicianID != real.ID {
		t.Fatalf("accept: %d %+v", st, moved)
	}
	n := 0
	for _, en := range func() []store.AuditEntry {
		es, _ := e.srv.Store().AuditEntries(context.Background(), store.AuditFilter{})
		return es
	}() {
		if en.Action == "config_change" && strings.Contains(string(en.Details), "room_assignment") {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d room assignment steps audited, want 4 (two requests, an approval, an acceptance)", n)
	}
}

// Smaller findings: a clinician's room list shows no server file paths, and a room
// assignment request without a clinician is refused rather than unassigning the room.
func TestRoomListHidesSourcePathsAndEmptyAssignmentIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	a := e.user("a", store.RoleClinician)
	e.user("admin", store.RoleAdmin)
	wav := writeTone(t, e.dir, 440, 1)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": wav}, a.ID)
	var raw json.RawMessage
	if st := e.login("a").do("GET", "/api/rooms", nil, &raw); st != 200 {
		t.Fatal(st)
	}
	if strings.Contains(string(raw), e.dir) || strings.Contains(string(raw), "source_config") {
		t.Errorf("a clinician's room list shows the server's configuration: %s", raw)
	}
	admin := e.login("admin")
	admin.do("GET", "/api/rooms", nil, &raw)
	if !strings.Contains(string(raw), "tone440.wav") {
		t.Errorf("the admin's room list lacks the source configuration: %s", raw)
	}
	if st, msg := admin.errorOf("PUT", "/api/rooms/"+itoa(room.ID)+"/clinician", map[string]any{}); st != http.StatusBadRequest {
		t.Errorf("PUT clinician with {}: %d %q, want 400", st, msg)
	}
	if got, _ := e.srv.Store().Room(context.Background(), room.ID); got.ClinicianID != a.ID {
		t.Errorf("an empty request changed the room's clinician to %d", got.ClinicianID)
	}
}

// The server anchors its audit chain while it runs: signed checkpoints go to its log (the
// journal), the checkpoint file and the database at start, as the chain grows, and at
// shutdown, and the chain matches them all.
func TestServerWritesSignedAuditCheckpoints(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(c *Config, d *Deps) {
		c.CheckpointEvery = 50 * time.Millisecond
		d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	e.user("a", store.RoleClinician)
	e.login("a") // a login entry moves the head
	var st *store.Store = e.srv.Store()
	head := func() int64 { seq, _, _ := audit.Head(context.Background(), st.DB()); return seq }
	waitFor(t, 5*time.Second, "a checkpoint of the head", func() bool {
		cps, _ := audit.ReadCheckpointFile(filepath.Join(e.dir, "audit-checkpoints.log"))
		return len(cps) > 0 && cps[len(cps)-1].Seq == head()
	})
	e.srv.Close()
	st, err := store.Open(context.Background(), filepath.Join(e.dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fromFile, _ := audit.ReadCheckpointFile(filepath.Join(e.dir, "audit-checkpoints.log"))
	fromLog, _ := audit.ParseCheckpoints(strings.NewReader(logs.String()), "log")
	fromDB, _ := audit.LoadCheckpoints(context.Background(), st.DB(), "database")
	if len(fromFile) < 2 || len(fromLog) != len(fromFile) || len(fromDB) != len(fromFile) {
		t.Fatalf("checkpoints: %d in the file, %d in the log, %d in the database", len(fromFile), len(fromLog), len(fromDB))
	}
	all := append(append(fromFile, fromLog...), fromDB...)
	rep, err := audit.CheckAnchors(context.Background(), st.DB(), all, st.Keyring())
	if err != nil || rep.Problem != nil || rep.Invalid != 0 || rep.Newest.Seq != head() {
		t.Fatalf("anchors: %+v %v (head %d)", rep, err, head())
	}
}

// A checkpoint the loop has begun when shutdown cancels it is still written everywhere:
// CI saw one reach the log and the file but not the database ("context canceled"), so the
// three places disagreed. Cancelling the loop stops the next checkpoint, never half of one.
func TestCheckpointBegunAtShutdownIsKeptEverywhere(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(c *Config, d *Deps) {
		c.CheckpointEvery = time.Hour
		d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	e.user("a", store.RoleClinician)
	e.login("a") // moves the head past the start checkpoint
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	e.srv.checkpoint(cancelled, false)
	fromFile, _ := audit.ReadCheckpointFile(filepath.Join(e.dir, "audit-checkpoints.log"))
	fromLog, _ := audit.ParseCheckpoints(strings.NewReader(logs.String()), "log")
	fromDB, _ := audit.LoadCheckpoints(context.Background(), e.srv.Store().DB(), "database")
	if len(fromFile) != 2 || len(fromLog) != 2 || len(fromDB) != 2 {
		t.Fatalf("checkpoints: %d in the file, %d in the log, %d in the database; want 2 each", len(fromFile), len(fromLog), len(fromDB))
	}
}
