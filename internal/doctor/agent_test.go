package doctor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scribe/internal/agent"
	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/frontend"
	"scribe/internal/server"
	"scribe/internal/store"
	"scribe/internal/vad"
)

// These tests run a real gateway in process (internal/server over TLS, real SQLite) and
// enrol agents with the real enrolment; only the transcriber is a stub, since no audio is
// recorded here.

// drain is a transcriber that reads its source to the end and writes nothing.
type drain struct{}

func (drain) Transcribe(ctx context.Context, src domain.AudioSource, _ float64, _ func(domain.LiveEvent)) error {
	for {
		if _, err := src.Read(ctx); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

type gateway struct {
	t     *testing.T
	dir   string
	st    *store.Store
	ts    *httptest.Server
	room  store.Room
	admin store.User
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	srv, err := server.New(server.Config{DataDir: dir, ShutdownTimeout: 10 * time.Second, AgentSeenEvery: 100 * time.Millisecond},
		server.Deps{Transcriber: drain{}, Stdout: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	ctx := context.Background()
	st := srv.Store()
	admin, err := st.CreateUser(ctx, store.NewUser{Username: "it", DisplayName: "IT", Role: store.RoleAdmin, Password: "a long test password"})
	if err != nil {
		t.Fatal(err)
	}
	gp, err := st.CreateUser(ctx, store.NewUser{Username: "gp", DisplayName: "Dr GP", Role: store.RoleClinician, Password: "a long test password"})
	if err != nil {
		t.Fatal(err)
	}
	room, err := st.CreateRoom(ctx, store.NewRoom{Name: "Room 3", SourceKind: store.SourceAgent, ClinicianID: gp.ID})
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{t: t, dir: dir, st: st, ts: ts, room: room, admin: admin}
}

// enrol enrols an agent the way `scribe agent enrol` does and saves its config (0600).
func (g *gateway) enrol(name string) (agent.Config, string) {
	g.t.Helper()
	code, _, err := g.st.CreateAgentCode(context.Background(), g.room.ID, g.admin.ID)
	if err != nil {
		g.t.Fatal(err)
	}
	cfg, err := agent.Enrol(context.Background(), g.ts.URL, code, name, "")
	if err != nil {
		g.t.Fatal(err)
	}
	path := filepath.Join(g.t.TempDir(), "agent.json")
	if err := cfg.Save(path); err != nil {
		g.t.Fatal(err)
	}
	return cfg, path
}

// agentOptions is the doctor of a room box with the given agent config.
func agentOptions(t *testing.T, path string) Options {
	t.Helper()
	cfg := config.Default()
	cfg.Models.VAD = config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin")
	if cfg.Models.VAD == "" {
		t.Skip("../shared/models not available")
	}
	return Options{Config: cfg, AgentConfig: path, BuildTime: time.Now().Add(-time.Hour), Devices: listDevices}
}

func TestAgentDoctorPasses(t *testing.T) {
	g := startGateway(t)
	cfg, path := g.enrol("room 3 box")
	rs, out, err := run(t, agentOptions(t, path))
	if err != nil {
		t.Fatalf("agent doctor failed on a working agent: %v\n%s", err, out)
	}
	wantStatus(t, rs, "agent cfg", OK, path, "mode 0600", `room "Room 3"`)
	wantStatus(t, rs, "gateway", OK, "reachable", "matches the pinned fingerprint", cfg.Fingerprint)
	wantStatus(t, rs, "token", OK, `"room 3 box" of room "Room 3"`)
	wantStatus(t, rs, "vad", OK, "loads and runs")
	if _, ok := rs["audio"]; !ok {
		t.Error("no audio device check")
	}
	for _, gatewayOnly := range []string{"whisper", "data dir", "data key", "database", "agent"} {
		if _, ok := rs[gatewayOnly]; ok {
			t.Errorf("the agent's doctor ran the gateway check %q", gatewayOnly)
		}
	}
}

// A certificate other than the pinned one is a failure that names both remedies, and the
// token is not sent to whoever presented it.
func TestAgentDoctorWrongPin(t *testing.T) {
	g := startGateway(t)
	cfg, path := g.enrol("room 3 box")
	cfg.Fingerprint = agent.Fingerprint([]byte("some other certificate"))
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	rs, out, err := run(t, agentOptions(t, path))
	if err == nil {
		t.Fatalf("doctor passed with a wrong pin:\n%s", out)
	}
	wantStatus(t, rs, "gateway", Fail, "does not match the pinned fingerprint", cfg.Fingerprint, "enrol this agent again", "intercepting")
	if r, ok := rs["token"]; ok {
		t.Errorf("token checked through an unpinned certificate: %s %s", r.Status, r.Detail)
	}
}

func TestAgentDoctorRefusedToken(t *testing.T) {
	g := startGateway(t)
	cfg, path := g.enrol("room 3 box")
	if _, err := g.st.RevokeAgent(context.Background(), cfg.AgentID, g.admin.ID); err != nil {
		t.Fatal(err)
	}
	rs, out, err := run(t, agentOptions(t, path))
	if err == nil {
		t.Fatalf("doctor passed with a revoked token:\n%s", out)
	}
	wantStatus(t, rs, "gateway", OK, "matches the pinned fingerprint")
	wantStatus(t, rs, "token", Fail, "refused", "was revoked", "enrol again")

	// A token the gateway never issued (a config copied from another gateway, say).
	cfg.Token = strings.Repeat("ab", 32)
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	rs, _, err = run(t, agentOptions(t, path))
	if err == nil {
		t.Fatal("doctor passed with an unknown token")
	}
	wantStatus(t, rs, "token", Fail, "unknown agent token", "scribe agent enrol")
}

func TestAgentDoctorBadConfigFile(t *testing.T) {
	g := startGateway(t)
	_, path := g.enrol("room 3 box")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	rs, out, err := run(t, agentOptions(t, path))
	if err == nil {
		t.Fatalf("doctor passed with a world-readable token:\n%s", out)
	}
	wantStatus(t, rs, "agent cfg", Fail, "readable by others", "chmod 600")
	if _, ok := rs["gateway"]; ok {
		t.Error("gateway checked with a config that was refused")
	}

	if err := os.WriteFile(path, []byte(`{"url": "https://gw:8443", "token": `), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o600)
	rs, _, _ = run(t, agentOptions(t, path))
	wantStatus(t, rs, "agent cfg", Fail, path)

	rs, _, _ = run(t, agentOptions(t, filepath.Join(t.TempDir(), "agent.json")))
	wantStatus(t, rs, "agent cfg", Fail, "no such file", "scribe agent enrol")
}

func TestAgentDoctorUnreachableGateway(t *testing.T) {
	g := startGateway(t)
	cfg, path := g.enrol("room 3 box")
	// A port that was just free on loopback: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg.URL = "https://" + addr
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	rs, out, err := run(t, agentOptions(t, path))
	if err == nil {
		t.Fatalf("doctor passed with no gateway:\n%s", out)
	}
	wantStatus(t, rs, "gateway", Fail, "cannot reach the gateway at "+addr, "scribe serve running")
}

// The gateway's doctor reads last_seen_at from the database: an agent connected now is
// OK, one never connected and one not seen for longer than AgentStale are warnings, and
// a revoked agent is not listed.
func TestGatewayDoctorAgents(t *testing.T) {
	g := startGateway(t)
	g.enrol("never box")
	live, _ := g.enrol("live box")
	revoked, _ := g.enrol("old box")
	if _, err := g.st.RevokeAgent(context.Background(), revoked.AgentID, g.admin.ID); err != nil {
		t.Fatal(err)
	}

	// A real agent connects and stays idle (no session records, so no audio is opened).
	a, err := agent.New(agent.Options{Config: live, Channels: 1,
		Open: func(context.Context) (domain.AudioSource, error) { return nil, errors.New("not used") },
		Frontend: frontend.Config{VAD: vad.DefaultConfig(),
			NewScorer: func() (vad.Scorer, func(), error) { return nil, nil, errors.New("not used") }},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MinBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }() // stopped below
	defer func() { cancel(); <-done }()
	seen := func() time.Time {
		got, err := g.st.Agent(context.Background(), live.AgentID)
		if err != nil || got.LastSeenAt == nil {
			return time.Time{}
		}
		return *got.LastSeenAt
	}
	waitSeen := func(what string, after time.Time) time.Time {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if at := seen(); at.After(after) {
				return at
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last_seen_at still %v", what, seen())
			}
		}
	}
	first := waitSeen("the connected agent was never recorded as seen", time.Time{})
	// While it stays connected (and sends nothing: it is idle) the gateway keeps its
	// last_seen_at fresh, here every 100 ms (Config.AgentSeenEvery; a minute by default).
	waitSeen("last_seen_at not refreshed while the agent stays connected", first)

	opt := Options{Config: config.Default(), Now: time.Now}
	opt.Config.DataDir = g.dir
	byAgent := func(rs []Result) map[string]Result {
		m := map[string]Result{}
		for _, r := range rs {
			if r.Check != "agent" {
				t.Errorf("check %q in the agents' lines", r.Check)
			}
			for _, name := range []string{"never box", "live box", "old box"} {
				if strings.Contains(r.Detail, `"`+name+`"`) {
					m[name] = r
				}
			}
		}
		return m
	}
	all := checkAgents(context.Background(), opt)
	t.Logf("gateway doctor, agents: %+v", all)
	rs := byAgent(all)
	if r := rs["never box"]; r.Status != Warn || !strings.Contains(r.Detail, `of room "Room 3" never connected`) {
		t.Errorf("never-connected agent: %s %q", r.Status, r.Detail)
	}
	if r := rs["live box"]; r.Status != OK || !strings.Contains(r.Detail, "last seen") {
		t.Errorf("connected agent: %s %q", r.Status, r.Detail)
	}
	if r, ok := rs["old box"]; ok {
		t.Errorf("revoked agent listed: %s %q", r.Status, r.Detail)
	}

	// Seen from 15 minutes on, the connected agent's last touch is stale.
	opt.Now = func() time.Time { return time.Now().Add(15 * time.Minute) }
	rs = byAgent(checkAgents(context.Background(), opt))
	if r := rs["live box"]; r.Status != Warn || !strings.Contains(r.Detail, `agent `) || !strings.Contains(r.Detail, "last seen 15m") {
		t.Errorf("stale agent: %s %q", r.Status, r.Detail)
	}
}
