package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/domain"
	"scribe/internal/testmodels"
	"scribe/internal/textdiff"
)

// liveSeen is what a review page received over the live socket.
type liveSeen struct {
	committed   map[string][]string // segment id → its texts, in the order they arrived
	order       []string            // segment ids in the order they first arrived
	pieces      int                 // committed messages that extended a segment already seen
	provisional int
}

// watchLive reads a session's live socket as the review page does, until the session
// stops, and checks what the page relies on: a committed segment's text only ever grows
// by words added at its end.
func watchLive(t *testing.T, a *apiClient, sessionID string) <-chan liveSeen {
	t.Helper()
	u, _ := url.Parse(a.base)
	ws := *u
	ws.Scheme = "wss"
	ws.Path = "/api/sessions/" + sessionID + "/live"
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Jar: a.c.Jar, HandshakeTimeout: 30 * time.Second}
	conn, _, err := d.Dial(ws.String(), http.Header{"Origin": {a.base}})
	if err != nil {
		t.Fatalf("live socket: %v", err)
	}
	if err := conn.WriteJSON(map[string]any{"resume": 0}); err != nil {
		t.Fatal(err)
	}
	out := make(chan liveSeen, 1)
	go func() { // owned by the test: ends with the session or the connection
		defer conn.Close()
		seen := liveSeen{committed: map[string][]string{}}
		defer func() { out <- seen }()
		for {
			conn.SetReadDeadline(time.Now().Add(3 * time.Minute))
			var m struct {
				Type    string `json:"type"`
				Segment *struct {
					ID   string `json:"id"`
					Text string `json:"text"`
				} `json:"segment"`
				Session *struct {
					State string `json:"state"`
				} `json:"session"`
			}
			if err := conn.ReadJSON(&m); err != nil {
				t.Errorf("live socket: %v", err)
				return
			}
			switch {
			case m.Type == "provisional":
				seen.provisional++
			case m.Type == "committed" && m.Segment != nil:
				id, text := m.Segment.ID, m.Segment.Text
				prev := seen.committed[id]
				if len(prev) == 0 {
					seen.order = append(seen.order, id)
				} else if last := prev[len(prev)-1]; !strings.HasPrefix(text, last) {
					t.Errorf("committed segment %s was rewritten: %q, then %q", id, last, text)
				} else {
					seen.pieces++
				}
				seen.committed[id] = append(prev, text)
			}
			if m.Session != nil && m.Session.State == "stopped" {
				return
			}
		}
	}()
	return out
}

func (s liveSeen) text() string {
	var parts []string
	for _, id := range s.order {
		if v := s.committed[id]; v[len(v)-1] != "" {
			parts = append(parts, v[len(v)-1])
		}
	}
	return strings.Join(parts, " ")
}

// make run's demo, with no model installed, runs the real tiny.en from the model cache,
// says so, and its room transcribes real words: jfk.wav replayed through the live
// pipeline of a real server (clean-up, Silero, the streaming commit policy, the store),
// watched over the live socket as the review page does and read back through the API.
// Every word is right; committed text is only ever extended, never rewritten.
func TestDemoTranscribesRealWordsLive(t *testing.T) {
	model := testmodels.Real(t, "tiny.en")
	jfk := jfkPath(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "scribe.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("data_dir: %s\nlisten: 127.0.0.1:0\nmodels: {whisper: %s, workers: 1, threads: 2}\ndemo: {wavs: [%s]}\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "not-installed.bin"), jfk)), 0o600); err != nil {
		t.Fatal(err)
	}
	base, out := startServe(t, "--demo", "--config", cfgPath)
	if !strings.Contains(out, "real tiny.en") || !strings.Contains(out, model) {
		t.Errorf("the demo does not say it runs the real tiny.en (%s): %q", model, out)
	}
	pw := regexp.MustCompile(`password "([^"]+)"`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("no demo password in %q", out)
	}
	a := newAPIClient(t, base, "demo", pw[1])
	var rooms []struct {
		ID int64 `json:"id"`
	}
	a.call("GET", "/api/rooms", nil, &rooms)
	if len(rooms) == 0 {
		t.Fatal("no demo room")
	}
	var sess struct {
		ID string `json:"id"`
	}
	if st := a.call("POST", fmt.Sprintf("/api/rooms/%d/sessions", rooms[0].ID), map[string]any{"consent": true}, &sess); st != 201 {
		t.Fatalf("start: %d", st)
	}
	seen := watchLive(t, a, sess.ID)
	var v struct {
		Session  struct{ State string } `json:"session"`
		Segments []domain.Segment       `json:"segments"`
	}
	deadline := time.Now().Add(3 * time.Minute)
	for a.call("GET", "/api/sessions/"+sess.ID, nil, &v); v.Session.State != "stopped"; a.call("GET", "/api/sessions/"+sess.ID, nil, &v) {
		if time.Now().After(deadline) {
			t.Fatalf("session still %s", v.Session.State)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var parts []string
	for _, s := range v.Segments {
		if s.Text != "" {
			parts = append(parts, s.Text)
		}
	}
	got := strings.Join(parts, " ")
	if r := textdiff.WER(jfkReference, got); r.WER != 0 {
		t.Errorf("live demo room: WER %.3f: %q", r.WER, got)
	}
	select {
	case s := <-seen:
		if s.text() != got {
			t.Errorf("the live socket ended with %q, the API has %q", s.text(), got)
		}
		t.Logf("%d segments, %d later pieces, %d provisional updates: %q", len(s.order), s.pieces, s.provisional, got)
	case <-time.After(time.Minute):
		t.Fatal("the live socket never saw the session stop")
	}
}
