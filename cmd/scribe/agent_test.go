package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"scribe/internal/agent"
	"scribe/internal/agent/agenttest"
	"scribe/internal/domain"
	"scribe/internal/store"
)

// tracedFrame is one line of `scribe agent run --trace-frames`.
type tracedFrame struct {
	Run     uint32 `json:"run"`
	Seq     uint64 `json:"seq"`
	Start   int64  `json:"start"`
	Samples int64  `json:"samples"`
}

type agentProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	frames []tracedFrame
	stderr *lockedBuilder
	exited chan error
}

func startAgentProc(t *testing.T, bin string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{cmd: exec.Command(bin, append([]string{"agent", "run"}, args...)...), stderr: &lockedBuilder{}, exited: make(chan error, 1)}
	out, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var f tracedFrame
			if json.Unmarshal(sc.Bytes(), &f) == nil && f.Samples > 0 {
				p.mu.Lock()
				p.frames = append(p.frames, f)
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		<-scanned
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-scanned })
	return p
}

func (p *agentProc) traced() []tracedFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]tracedFrame(nil), p.frames...)
}

// speechIntervals merges an agent's traced speech frames into intervals (seconds).
func speechIntervals(fs []tracedFrame) []domain.Interval {
	var out []domain.Interval
	for _, f := range fs {
		s, e := float64(f.Start)/domain.SampleRate, float64(f.Start+f.Samples)/domain.SampleRate
		if n := len(out); n > 0 && s <= out[n-1].End+1e-6 {
			out[n-1].End = max(out[n-1].End, e)
			continue
		}
		out = append(out, domain.Interval{Start: s, End: e})
	}
	return out
}

type agentListEntry struct {
	ID              int64   `json:"id"`
	RoomID          int64   `json:"room_id"`
	Online          bool    `json:"online"`
	FramesAccepted  int64   `json:"frames_accepted"`
	FramesDuplicate int64   `json:"frames_duplicate"`
	FramesMissing   int64   `json:"frames_missing"`
	LastSeq         *uint64 `json:"last_seq"`
}

// A gateway and two room agents (separate processes on loopback) record two rooms
// playing two different consultations; the agents' network path is cut for 10 s in the
// middle. Each room's stored transcript covers the agent's speech exactly once, the
// sequence numbers show no gap, and a revoked agent is cut off and refused.
func TestAgentsSurviveNetworkCutAndRevocation(t *testing.T) {
	model, vadModel := testModels(t)
	clips := []string{
		filepath.Join("..", "..", "testdata", "audio", "day1_consultation01-60s.stereo.wav"),
		filepath.Join("..", "..", "testdata", "audio", "day1_consultation02-60s.stereo.wav"),
	}
	for _, c := range clips {
		if _, err := os.Stat(c); err != nil {
			t.Skipf("%s missing: run scripts/make-test-audio", c)
		}
	}
	bin := scribeBinary(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "scribe.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("models:\n  whisper: %s\n  vad: %s\n  workers: 2\n  threads: 1\ntranscription:\n  temperature_inc: 0\n", model, vadModel)), 0o600)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.NewUser{Username: "it", Role: store.RoleAdmin, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	var rooms []store.Room
	for i := range 2 {
		u, err := st.CreateUser(ctx, store.NewUser{Username: fmt.Sprintf("gp%d", i+1), Role: store.RoleClinician, Password: testPassword})
		if err != nil {
			t.Fatal(err)
		}
		r, err := st.CreateRoom(ctx, store.NewRoom{Name: fmt.Sprintf("Room %d", i+1), SourceKind: store.SourceAgent, ClinicianID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, r)
	}
	st.Close()

	_, base, serveErr := startServeProt(t, bin, cfgFile, dir)
	gateway := strings.TrimSuffix(strings.TrimPrefix(base, "https://"), "/")
	gateway = strings.Replace(gateway, "localhost", "127.0.0.1", 1)
	tc, err := tls.Dial("tcp", gateway, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	wantFP := agent.Fingerprint(tc.ConnectionState().PeerCertificates[0].Raw)
	tc.Close()
	proxy := agenttest.NewNetCut(t, gateway)
	via := "https://" + proxy.Addr()

	admin := newAPIClient(t, base, "it", testPassword)
	var agents []*agentProc
	for i, r := range rooms {
		var code struct {
			Code string `json:"code"`
		}
		if st := admin.call("POST", fmt.Sprintf("/api/rooms/%d/agent-code", r.ID), map[string]any{}, &code); st != 201 || len(code.Code) < 16 {
			t.Fatalf("agent code: %d %q", st, code.Code)
		}
		acfg := filepath.Join(dir, fmt.Sprintf("agent%d", i+1), "agent.json")
		out, err := exec.Command(bin, "agent", "enrol", via, code.Code, "--config", acfg, "--fingerprint", wantFP).CombinedOutput()
		if err != nil || !strings.Contains(string(out), wantFP) {
			t.Fatalf("enrol: %v\n%s", err, out)
		}
		if fi, err := os.Stat(acfg); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("agent config: %v %v", fi.Mode(), err)
		}
		// The code works once.
		if out, err := exec.Command(bin, "agent", "enrol", via, code.Code, "--config", acfg+".again").CombinedOutput(); err == nil || !strings.Contains(string(out), "already used") {
			t.Fatalf("a used code was accepted again: %v\n%s", err, out)
		}
		agents = append(agents, startAgentProc(t, bin, "--config", acfg, "--wav", clips[i], "--vad-model", vadModel, "--trace-frames"))
	}
	listAgents := func() []agentListEntry {
		var as []agentListEntry
		admin.call("GET", "/api/agents", nil, &as)
		return as
	}
	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v\ngateway: %s\nagent 1: %s\nagent 2: %s", what, limit, serveErr.String(), agents[0].stderr.String(), agents[1].stderr.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("both agents online", 30*time.Second, func() bool {
		as := listAgents()
		return len(as) == 2 && as[0].Online && as[1].Online
	})

	var gps []*apiClient
	var sessions []string
	for i, r := range rooms {
		gp := newAPIClient(t, base, fmt.Sprintf("gp%d", i+1), testPassword)
		var s struct {
			ID string `json:"id"`
		}
		if st := gp.call("POST", fmt.Sprintf("/api/rooms/%d/sessions", r.ID), map[string]any{"consent": true}, &s); st != 201 {
			t.Fatalf("start session in room %d: %d", i+1, st)
		}
		gps, sessions = append(gps, gp), append(sessions, s.ID)
	}

	time.Sleep(20 * time.Second)
	proxy.Set(true)
	time.Sleep(10 * time.Second)
	proxy.Set(false)

	type sessionOut struct {
		Session struct {
			State string `json:"state"`
		} `json:"session"`
		Segments []store.Segment `json:"segments"`
	}
	outs := make([]sessionOut, 2)
	waitFor("both sessions stopped at the end of their clips", 150*time.Second, func() bool {
		for i := range gps {
			gps[i].call("GET", "/api/sessions/"+sessions[i], nil, &outs[i])
		}
		return outs[0].Session.State == store.StateStopped && outs[1].Session.State == store.StateStopped
	})

	as := listAgents()
	for i, p := range agents {
		frames := p.traced()
		if len(frames) < 10 {
			t.Fatalf("agent %d traced only %d speech frames", i+1, len(frames))
		}
		for k := 1; k < len(frames); k++ {
			if frames[k].Seq <= frames[k-1].Seq || frames[k].Start < frames[k-1].Start+frames[k-1].Samples {
				t.Fatalf("agent %d frames out of order or overlapping: %+v then %+v", i+1, frames[k-1], frames[k])
			}
		}
		a := as[i]
		if !a.Online || a.FramesMissing != 0 || a.LastSeq == nil || *a.LastSeq < frames[len(frames)-1].Seq {
			t.Fatalf("agent %d at the gateway: %+v (last traced seq %d)", i+1, a, frames[len(frames)-1].Seq)
		}
		if !strings.Contains(p.stderr.String(), "reconnecting") {
			t.Fatalf("agent %d never lost its connection: the cut did not happen?\n%s", i+1, p.stderr.String())
		}
		t.Logf("agent %d: %d speech frames; gateway accepted %d frames, dropped %d duplicates after the cut", i+1, len(frames), a.FramesAccepted, a.FramesDuplicate)

		speech := speechIntervals(frames)
		segs := outs[i].Segments
		sort.Slice(segs, func(x, y int) bool { return segs[x].Start < segs[y].Start })
		for k := 1; k < len(segs); k++ {
			if segs[k].Start < segs[k-1].End-0.01 {
				t.Fatalf("room %d: segments overlap (speech doubled): %.2f–%.2f and %.2f–%.2f", i+1, segs[k-1].Start, segs[k-1].End, segs[k].Start, segs[k].End)
			}
		}
		var segIv []domain.Interval
		for _, s := range segs {
			segIv = append(segIv, domain.Interval{Start: s.Start, End: s.End})
			inside := false
			for _, iv := range speech {
				inside = inside || (s.Start >= iv.Start-0.3 && s.End <= iv.End+0.3)
			}
			if !inside {
				t.Fatalf("room %d: segment %.2f–%.2f lies outside the agent's speech %v", i+1, s.Start, s.End, speech)
			}
		}
		for _, iv := range speech {
			if iv.Duration() < 0.5 {
				continue
			}
			if got := domain.OverlapSeconds([]domain.Interval{iv}, segIv); got < 0.6*iv.Duration() {
				t.Fatalf("room %d: agent speech %.2f–%.2f only %.2f s covered by stored segments (lost in the cut?)", i+1, iv.Start, iv.End, got)
			}
		}
		t.Logf("room %d: %d agent speech intervals (%.1f s), %d segments (%.1f s)", i+1, len(speech), domain.TotalSeconds(speech), len(segs), domain.TotalSeconds(segIv))
	}

	// Revocation: the live connection closes at once, the agent stops, and it is refused
	// from then on; the room cannot start without it.
	if st := admin.call("POST", fmt.Sprintf("/api/agents/%d/revoke", as[0].ID), map[string]any{}, nil); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	select {
	case err := <-agents[0].exited:
		if err == nil || !strings.Contains(agents[0].stderr.String(), "revoked") {
			t.Fatalf("revoked agent: exit %v\n%s", err, agents[0].stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("revoked agent still running\n%s", agents[0].stderr.String())
	}
	again := startAgentProc(t, bin, "--config", filepath.Join(dir, "agent1", "agent.json"), "--wav", clips[0], "--vad-model", vadModel)
	select {
	case err := <-again.exited:
		if err == nil || !strings.Contains(again.stderr.String(), "revoked") {
			t.Fatalf("revoked agent reconnecting: exit %v\n%s", err, again.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("revoked agent was not refused")
	}
	var refusal map[string]string
	if st := gps[0].call("POST", fmt.Sprintf("/api/rooms/%d/sessions", rooms[0].ID), map[string]any{"consent": true}, &refusal); st < 400 || !strings.Contains(refusal["error"], "offline") {
		t.Fatalf("start with the room's agent offline: %d %v", st, refusal)
	}
}
