package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/store"
)

// collect reads live messages until stop says so, checking each numbered message follows
// the previous one without a gap.
func collect(t *testing.T, conn *websocket.Conn, last *int64, seen map[int64]bool, committed *[]string, stop func(message) bool) message {
	t.Helper()
	for {
		m := readMsg(t, conn)
		if m.Type == "error" {
			t.Fatalf("error frame: %+v", m)
		}
		if m.Type != "snapshot" {
			if seen[m.Seq] {
				t.Fatalf("duplicate seq %d (%s)", m.Seq, m.Type)
			}
			if m.Seq != *last+1 {
				t.Fatalf("gap: got seq %d after %d", m.Seq, *last)
			}
			seen[m.Seq] = true
		}
		*last = m.Seq
		if m.Type == "committed" {
			*committed = append(*committed, m.Segment.ID)
		}
		if stop(m) {
			return m
		}
	}
}

func TestWebsocketResumeNoGapNoDuplicate(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = 3 })
	a := e.user("a", store.RoleClinician)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 440, 8)}, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)

	conn, err := c.dialWS("/api/sessions/" + s.ID + "/live")
	if err != nil {
		t.Fatal(err)
	}
	conn.WriteJSON(map[string]any{"resume": 0})
	var last int64
	seen := map[int64]bool{}
	var committed []string
	snap := readMsg(t, conn)
	if snap.Type != "snapshot" {
		t.Fatalf("first message %q, want snapshot", snap.Type)
	}
	last = snap.Seq
	epoch := snap.Epoch
	for _, g := range snap.Segments {
		committed = append(committed, g.ID)
	}
	// Read until two segments are in, then drop the connection mid-session.
	collect(t, conn, &last, seen, &committed, func(message) bool { return len(committed) >= 2 })
	conn.Close()
	dropped := last
	time.Sleep(700 * time.Millisecond) // the session goes on without us

	conn, err = c.dialWS("/api/sessions/" + s.ID + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteJSON(map[string]any{"resume": last, "epoch": epoch})
	first := true
	collect(t, conn, &last, seen, &committed, func(m message) bool {
		if first {
			first = false
			if m.Type == "snapshot" {
				t.Fatalf("resume inside the log gave a snapshot")
			}
			if m.Seq != dropped+1 {
				t.Fatalf("resumed at seq %d, want %d", m.Seq, dropped+1)
			}
		}
		return m.Type == "state" && m.Session.State == store.StateStopped
	})
	if last <= dropped+1 {
		t.Fatalf("nothing happened while disconnected (last %d, dropped at %d)", last, dropped)
	}
	_, segs := c.session(s.ID)
	var stored []string
	for _, g := range segs {
		stored = append(stored, g.ID)
	}
	if strings.Join(committed, ",") != strings.Join(stored, ",") || len(stored) != 8 {
		t.Fatalf("committed over the socket %v, stored %v", committed, stored)
	}
}

func TestWebsocketResyncWhenGapLeftTheLog(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) { c.LiveLogSize = 3 })
	a := e.user("a", store.RoleClinician)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 440, 4)}, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	waitFor(t, 20*time.Second, "session to stop", func() bool { v, _ := c.session(s.ID); return v.State == store.StateStopped })
	conn, err := c.dialWS("/api/sessions/" + s.ID + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := e.srv.live.session(s.ID).hub
	conn.WriteJSON(map[string]any{"resume": 1, "epoch": h.epoch})
	m := readMsg(t, conn)
	if m.Type != "snapshot" || m.Seq != h.seq || len(m.Segments) != 4 || m.Session.State != store.StateStopped {
		t.Fatalf("resync: type %s seq %d (hub at %d), %d segments", m.Type, m.Seq, h.seq, len(m.Segments))
	}
	// A client from another epoch (server restarted) also resyncs.
	conn2, _ := c.dialWS("/api/sessions/" + s.ID + "/live")
	defer conn2.Close()
	conn2.WriteJSON(map[string]any{"resume": h.seq, "epoch": "old"})
	if m := readMsg(t, conn2); m.Type != "snapshot" {
		t.Fatalf("other epoch: %s", m.Type)
	}
}

func TestSlowViewerIsDroppedNotWaitedFor(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) { c.ViewerQueue = 4 })
	h := e.srv.live.session("x").hub
	h.mu.Lock()
	h.seq = 1 // resume from a seq in the log, so no snapshot (no database row) is needed
	h.log = []logEntry{{seq: 1, data: []byte(`{}`)}}
	h.mu.Unlock()
	slow, _, err := h.join(t.Context(), 1, h.epoch)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			h.publish(message{Type: "provisional"})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publishing blocked on a slow viewer")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slow.gone || !strings.Contains(slow.reason, "too slow") {
		t.Fatalf("slow viewer not dropped: gone=%v reason=%q", slow.gone, slow.reason)
	}
	if len(h.viewers) != 0 {
		t.Fatalf("%d viewers left", len(h.viewers))
	}
}

func TestThreeRoomsAtOnce(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = 4 })
	c := e.user("a", store.RoleClinician)
	cl := e.login("a")
	tones := []int{200, 400, 800}
	var ids []string
	for i, hz := range tones {
		room := e.room(fmt.Sprintf("Room %d", i+1), store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, float64(hz), 4)}, c.ID)
		ids = append(ids, startWAV(t, e, cl, room.ID).ID)
	}
	for i, id := range ids {
		waitFor(t, 30*time.Second, "session to stop", func() bool { v, _ := cl.session(id); return v.State == store.StateStopped })
		v, segs := cl.session(id)
		if v.RoomName != fmt.Sprintf("Room %d", i+1) {
			t.Fatalf("session %d is in %s", i, v.RoomName)
		}
		if len(segs) != 4 {
			t.Fatalf("room %d: %d segments, want 4", i+1, len(segs))
		}
		for j, g := range segs {
			want := fmt.Sprintf("segment %d (%s) tone %d Hz", j, g.Speaker, tones[i])
			if g.Text != want || g.Start != float64(j) || g.End != float64(j+1) {
				t.Fatalf("room %d segment %d: %+v, want %q at %d–%d s", i+1, j, g, want, j, j+1)
			}
		}
	}
}

func TestPauseResumeContinuesTimeline(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = 2 })
	a := e.user("a", store.RoleClinician)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 440, 20)}, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	sp := "/api/sessions/" + s.ID
	waitFor(t, 20*time.Second, "a committed segment", func() bool { _, g := c.session(s.ID); return len(g) >= 1 })
	var v sessionView
	if st := c.do("POST", sp+"/pause", nil, &v); st != 200 || v.State != store.StatePaused || v.AudioSeconds <= 0 {
		t.Fatalf("pause: %d %+v", st, v)
	}
	_, before := c.session(s.ID)
	time.Sleep(300 * time.Millisecond)
	if _, again := c.session(s.ID); len(again) != len(before) {
		t.Fatalf("segments arrived while paused: %d then %d", len(before), len(again))
	}
	if st, _ := c.errorOf("POST", sp+"/pause", nil); st != 409 {
		t.Fatalf("pausing a paused session: %d", st)
	}
	if st := c.do("POST", sp+"/resume", nil, &v); st != 200 || v.State != store.StateRecording {
		t.Fatalf("resume: %d %+v", st, v)
	}
	waitFor(t, 20*time.Second, "a segment after resume", func() bool { _, g := c.session(s.ID); return len(g) > len(before) })
	if st := c.do("POST", sp+"/stop", nil, &v); st != 200 || v.State != store.StateStopped {
		t.Fatalf("stop: %d %+v", st, v)
	}
	_, segs := c.session(s.ID)
	for i := 1; i < len(segs); i++ {
		if segs[i].Start < segs[i-1].End-1e-9 {
			t.Fatalf("timeline went back after resume: %+v then %+v", segs[i-1], segs[i])
		}
	}
	if last := segs[len(before)]; last.Start < before[len(before)-1].End-1e-9 {
		t.Fatalf("resumed run did not continue the timeline")
	}
}
