package server

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/store"
)

// readWorklist reads worklist messages until one satisfies ok (or the deadline passes).
func readWorklist(t *testing.T, conn *websocket.Conn, what string, ok func([]worklistItem) bool) []worklistItem {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn.SetReadDeadline(deadline)
		var m struct {
			Type     string         `json:"type"`
			Sessions []worklistItem `json:"sessions"`
		}
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("worklist socket, waiting for %s: %v", what, err)
		}
		if m.Type == "worklist" && ok(m.Sessions) {
			return m.Sessions
		}
	}
}

// The worklist socket sends the clinician's own consultations at once and again as
// they change: state changes at once, write-back states (which nothing announces) within
// the poll; each held note says what it needs. It closes when the login ends.
func TestWorklistLiveWithDeliveryStates(t *testing.T) {
	var mu sync.Mutex
	delivery := map[string][2]string{}
	e := newEnv(t, func(c *Config, d *Deps) {
		d.Sources = map[string]SourceFactory{toneRoomKind: openToneSource}
		d.DeliveryState = func(_ context.Context, id string) (string, string) {
			mu.Lock()
			defer mu.Unlock()
			return delivery[id][0], delivery[id][1]
		}
	})
	a := e.user("a", store.RoleClinician)
	b := e.user("b", store.RoleClinician)
	room := e.room("Room A", toneRoomKind, toneConfig{Seconds: 2}, a.ID)
	e.room("Room B", toneRoomKind, toneConfig{Seconds: 2}, b.ID)
	ca, cb := e.login("a"), e.login("b")
	wa, err := ca.dialWS("/api/worklist/live")
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	wb, err := cb.dialWS("/api/worklist/live")
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	readWorklist(t, wa, "the empty list", func(l []worklistItem) bool { return len(l) == 0 })

	s := startWAV(t, e, ca, room.ID)
	readWorklist(t, wa, "the recording session", func(l []worklistItem) bool {
		return len(l) == 1 && l[0].ID == s.ID && l[0].State == store.StateRecording && l[0].RoomName == "Room A" && l[0].ConsentByName == "Dr a"
	})
	waitFor(t, 10*time.Second, "two lines", func() bool { _, segs := ca.session(s.ID); return len(segs) == 2 })
	start := time.Now()
	if st := ca.do("POST", "/api/sessions/"+s.ID+"/stop", nil, nil); st != 200 {
		t.Fatalf("stop: %d", st)
	}
	readWorklist(t, wa, "the session to review", func(l []worklistItem) bool {
		return len(l) == 1 && l[0].State == store.StateStopped && l[0].Action == "Review and approve the note"
	})
	if d := time.Since(start); d > worklistPoll {
		t.Fatalf("a state change took %v to reach the worklist", d)
	}
	if st := ca.do("POST", "/api/sessions/"+s.ID+"/approve", map[string]any{"reviewed": true, "confirm": ca.approvalItems(s.ID)}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	readWorklist(t, wa, "the approved session", func(l []worklistItem) bool {
		return len(l) == 1 && l[0].State == store.StateApproved && l[0].Action == ""
	})
	mu.Lock()
	delivery[s.ID] = [2]string{"held", "no NHS number"}
	mu.Unlock()
	l := readWorklist(t, wa, "the held note", func(l []worklistItem) bool { return len(l) == 1 && l[0].DeliveryState == "held" })
	if !strings.Contains(l[0].Action, "Held, not filed: no NHS number") {
		t.Fatalf("held note's action: %q", l[0].Action)
	}
	// Another clinician's list never shows it.
	wb.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		var m struct{ Sessions []worklistItem }
		if err := wb.ReadJSON(&m); err != nil {
			break // nothing more for b
		}
		if len(m.Sessions) != 0 {
			t.Fatalf("clinician b's worklist shows %+v", m.Sessions)
		}
	}
	// Log out everywhere: the socket says so and closes.
	if st := ca.do("POST", "/api/logout-everywhere", nil, nil); st != 200 {
		t.Fatalf("logout everywhere: %d", st)
	}
	wa.SetReadDeadline(time.Now().Add(10 * time.Second))
	var last message
	for {
		_, data, err := wa.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) || last.Code != "logged_out" {
				t.Fatalf("after logout everywhere: %v (last message %+v)", err, last)
			}
			break
		}
		json.Unmarshal(data, &last)
	}
}

// A live viewer that asks for levels gets "level" messages while recording: unnumbered,
// with the input level of the room's audio and the elapsed recording time; one that does
// not ask gets none.
func TestLiveLevelMessages(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.WAVSpeed = 1 })
	a := e.user("a", store.RoleClinician)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 300, 3)}, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	watch := func(level bool) (*websocket.Conn, func() []message) {
		conn, err := c.dialWS("/api/sessions/" + s.ID + "/live")
		if err != nil {
			t.Fatal(err)
		}
		conn.WriteJSON(map[string]any{"resume": 0, "level": level})
		var mu sync.Mutex
		var got []message
		go func() {
			for {
				var m message
				if conn.ReadJSON(&m) != nil {
					return
				}
				mu.Lock()
				got = append(got, m)
				mu.Unlock()
			}
		}()
		return conn, func() []message { mu.Lock(); defer mu.Unlock(); return append([]message(nil), got...) }
	}
	with, gotWith := watch(true)
	defer with.Close()
	without, gotWithout := watch(false)
	defer without.Close()
	waitFor(t, 10*time.Second, "the session to stop at the end of the file", func() bool { v, _ := c.session(s.ID); return v.State == store.StateStopped })
	time.Sleep(300 * time.Millisecond)
	var levels []levelReading
	for _, m := range gotWith() {
		if m.Type == "level" {
			if m.Seq != 0 || m.Epoch != "" || m.Level == nil {
				t.Fatalf("level message %+v is numbered or empty", m)
			}
			levels = append(levels, *m.Level)
		}
	}
	if len(levels) < 8 {
		t.Fatalf("%d level messages over 3 s of recording", len(levels))
	}
	// A 0.3-amplitude tone is 20·log10(0.3/√2) = -13.5 dBFS.
	mid := levels[len(levels)/2]
	if math.Abs(mid.DBFS+13.5) > 1 || mid.Clipping {
		t.Fatalf("mid-recording level %+v, want -13.5 dBFS", mid)
	}
	for i := 1; i < len(levels); i++ {
		if levels[i].Elapsed < levels[i-1].Elapsed {
			t.Fatalf("elapsed went back: %+v", levels)
		}
	}
	if last := levels[len(levels)-1].Elapsed; last < 2 || last > 3.05 {
		t.Fatalf("last elapsed %.1f s for a 3 s file", last)
	}
	for _, m := range gotWithout() {
		if m.Type == "level" {
			t.Fatal("a viewer that did not ask got level messages")
		}
	}
}
