package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/domain"
	"scribe/internal/server"
	"scribe/internal/store"
)

// benchClient is a clinician's browser, reduced to what the delay measurement needs: it
// logs in, starts a session in each of its rooms and reads the live websocket.
type benchClient struct {
	base   *url.URL
	http   *http.Client
	dialer *websocket.Dialer
	rooms  map[string]int64 // room name → id
}

// newBenchClient makes a clinician who owns one WAV room per run, and logs in.
func newBenchClient(ctx context.Context, srv *server.Server, runs []*roomRun) (*benchClient, error) {
	base, err := url.Parse(srv.URL())
	if err != nil {
		return nil, fmt.Errorf("bench: server URL: %w", err)
	}
	pw := make([]byte, 16)
	rand.Read(pw)
	password := hex.EncodeToString(pw)
	st := srv.Store()
	u, err := st.CreateUser(ctx, store.NewUser{Username: "benchgp", DisplayName: "Dr Bench", Role: store.RoleClinician, Password: password})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	c := &benchClient{base: base, rooms: map[string]int64{}}
	for _, r := range runs {
		cfg, _ := json.Marshal(map[string]string{"path": "bench:" + r.name}) // opened by the bench's source factory
		room, err := st.CreateRoom(ctx, store.NewRoom{Name: r.name, SourceKind: store.SourceWAV, SourceConfig: cfg, ClinicianID: u.ID})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		c.rooms[r.name] = room.ID
	}
	jar, _ := cookiejar.New(nil)
	// The server's certificate is the self-signed one it made in the bench's data directory.
	tlsConf := &tls.Config{InsecureSkipVerify: true}
	c.http = &http.Client{Jar: jar, Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 64}}
	c.dialer = &websocket.Dialer{TLSClientConfig: tlsConf, Jar: jar, HandshakeTimeout: 30 * time.Second}
	if err := c.do(ctx, "POST", "/api/login", map[string]string{"username": "benchgp", "password": password}, nil); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *benchClient) csrf() string {
	for _, ck := range c.http.Jar.Cookies(c.base) {
		if ck.Name == server.CSRFCookieName {
			return ck.Value
		}
	}
	return ""
}

func (c *benchClient) do(ctx context.Context, method, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath(path).String(), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := c.csrf(); tok != "" {
		req.Header.Set(server.CSRFHeader, tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("bench: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("bench: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("bench: %s %s: %w", method, path, err)
		}
	}
	return nil
}

// liveMessage is the part of a live-socket message the bench reads
// (docs/websocket-protocol.md).
type liveMessage struct {
	Type    string          `json:"type"`
	Segment *store.Segment  `json:"segment"`
	Segs    []store.Segment `json:"segments"`
	Session *struct {
		State string `json:"state"`
	} `json:"session"`
	Message string `json:"message"`
}

// watch starts r's session and reads its websocket until the session stops (the replay
// ended and everything was committed), noting when each committed segment arrives.
func (c *benchClient) watch(ctx context.Context, r *roomRun) error {
	var sess struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, "POST", fmt.Sprintf("/api/rooms/%d/sessions", c.rooms[r.name]), map[string]any{"consent": true}, &sess); err != nil {
		return err
	}
	ws := *c.base
	ws.Scheme = strings.Replace(ws.Scheme, "http", "ws", 1)
	ws.Path = "/api/sessions/" + sess.ID + "/live"
	hdr := http.Header{"Origin": {strings.TrimSuffix(c.base.String(), "/")}}
	conn, resp, err := c.dialer.DialContext(ctx, ws.String(), hdr)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("bench: live socket: %s: %w", resp.Status, err)
		}
		return fmt.Errorf("bench: live socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.WriteJSON(map[string]any{"resume": 0}); err != nil {
		return fmt.Errorf("bench: live socket: %w", err)
	}
	for {
		// Generous: a session with nothing to say for a minute is still running.
		conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
		_, data, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("bench: live socket closed before the session stopped: %w", err)
		}
		at := time.Now()
		var m liveMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("bench: live message: %w", err)
		}
		switch m.Type {
		case "snapshot": // joined late: what was already committed arrives now
			r.mu.Lock()
			for _, g := range m.Segs {
				r.ws = append(r.ws, emitted{seg: domainSegment(g), at: at})
			}
			r.mu.Unlock()
		case "committed":
			if m.Segment != nil {
				r.mu.Lock()
				r.ws = append(r.ws, emitted{seg: domainSegment(*m.Segment), at: at})
				r.mu.Unlock()
			}
		case "provisional":
			if m.Segment != nil {
				r.mu.Lock()
				r.provs = append(r.provs, emitted{seg: domainSegment(*m.Segment), at: at})
				r.mu.Unlock()
			}
		case "error":
			return fmt.Errorf("bench: live socket error: %s", m.Message)
		}
		if m.Session != nil && m.Session.State != store.StateRecording {
			if m.Session.State == store.StateStopped {
				return nil
			}
			return fmt.Errorf("bench: session %s is %s", sess.ID, m.Session.State)
		}
	}
}

func domainSegment(g store.Segment) domain.Segment {
	return domain.Segment{ID: g.ID, Start: g.Start, End: g.End, Speaker: g.Speaker, Text: g.Text, Flags: g.Flags}
}
