package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/store"
)

const testPassword = "a long test password"

type testEnv struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
	dir string
}

func newEnv(t *testing.T, mod func(*Config, *Deps)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{DataDir: dir, WAVSpeed: 8, ShutdownTimeout: 10 * time.Second}
	deps := Deps{Transcriber: fakeTranscriber{segSeconds: 1}, Stdout: io.Discard}
	if mod != nil {
		mod(&cfg, &deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return &testEnv{t: t, srv: srv, ts: ts, dir: dir}
}

func (e *testEnv) user(name string, role store.Role) store.User {
	e.t.Helper()
	u, err := e.srv.Store().CreateUser(context.Background(), store.NewUser{Username: name, DisplayName: "Dr " + name, Role: role, Password: testPassword})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// writeTone writes a WAV of a pure tone, 16 kHz mono, for a WAV room.
func writeTone(t *testing.T, dir string, hz float64, seconds float64) string {
	t.Helper()
	n := int(seconds * 16000)
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.3 * math.Sin(2*math.Pi*hz*float64(i)/16000+0.1))
	}
	path := filepath.Join(dir, fmt.Sprintf("tone%d.wav", int(hz)))
	if err := audio.WriteWAVFile(path, 16000, [][]float32{x}); err != nil {
		t.Fatal(err)
	}
	return path
}

func (e *testEnv) room(name, kind string, cfg any, clinician int64) store.Room {
	e.t.Helper()
	b, _ := json.Marshal(cfg)
	r, err := e.srv.Store().CreateRoom(context.Background(), store.NewRoom{Name: name, SourceKind: kind, SourceConfig: b, ClinicianID: clinician})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

type client struct {
	e    *testEnv
	http *http.Client
}

// login returns a client logged in as name.
func (e *testEnv) login(name string) *client {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &client{e: e, http: &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	var u store.User
	if st := c.do("POST", "/api/login", map[string]string{"username": name, "password": testPassword}, &u); st != 200 {
		e.t.Fatalf("login %s: status %d", name, st)
	}
	return c
}

// do sends a JSON request and decodes the JSON answer into out (if non-nil); it returns
// the status code.
func (c *client) do(method, path string, body any, out any) int {
	c.e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.e.ts.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := c.csrf(); tok != "" && method != "GET" {
		req.Header.Set(CSRFHeader, tok) // as app.js does
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.e.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// errorOf makes a request expected to fail and returns status and error message.
func (c *client) errorOf(method, path string, body any) (int, string) {
	c.e.t.Helper()
	var out struct {
		Error string `json:"error"`
	}
	st := c.do(method, path, body, &out)
	return st, out.Error
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *client) session(id string) (sessionView, []store.Segment) {
	c.e.t.Helper()
	var out struct {
		Session  sessionView     `json:"session"`
		Segments []store.Segment `json:"segments"`
	}
	if st := c.do("GET", "/api/sessions/"+id, nil, &out); st != 200 {
		c.e.t.Fatalf("get session %s: %d", id, st)
	}
	return out.Session, out.Segments
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// csrf is the CSRF token the login set in the client's cookie jar ("" before login).
func (c *client) csrf() string {
	if c.http.Jar == nil {
		return ""
	}
	u, _ := url.Parse(c.e.ts.URL)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == CSRFCookieName {
			return ck.Value
		}
	}
	return ""
}

// approvalItems is the ids of every item of a session's pre-approval check, for tests
// that confirm them all.
func (c *client) approvalItems(id string) []string {
	c.e.t.Helper()
	var out struct {
		Items []store.ApprovalItem `json:"items"`
	}
	if st := c.do("GET", "/api/sessions/"+id+"/approval-check", nil, &out); st != 200 {
		c.e.t.Fatalf("approval check of %s: %d", id, st)
	}
	ids := []string{}
	for _, it := range out.Items {
		ids = append(ids, it.ID)
	}
	return ids
}
