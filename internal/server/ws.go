package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Websocket limits (docs/websocket-protocol.md).
const (
	// MaxClientMessage is the largest text message a live-transcript client may send.
	MaxClientMessage = 4096
	// wsHardLimit is where the connection itself is closed (1009) rather than answered
	// with an error frame.
	wsHardLimit   = 1 << 20
	wsWriteWait   = 10 * time.Second
	wsPingEvery   = 25 * time.Second
	wsPongWait    = 60 * time.Second
	wsResumeWait  = 15 * time.Second
	wsAudioFormat = 15 * time.Second
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	// The default CheckOrigin refuses cross-origin pages, which with the SameSite=Strict
	// cookie keeps other sites from opening a socket as the clinician.
}

func errorFrame(code, msg string) []byte {
	b, _ := json.Marshal(message{Type: "error", Code: code, Message: msg})
	return b
}

// readClientMessage reads one message, answering oversized text with an error instead of
// dropping the connection. It returns (nil, nil) when the message was refused.
func readClientMessage(conn *websocket.Conn, limit int64) (int, []byte, error) {
	kind, r, err := conn.NextReader()
	if err != nil {
		return 0, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(data)) > limit {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return 0, nil, err
		}
		return kind, nil, fmt.Errorf("message too large: the limit is %d bytes", limit)
	}
	return kind, data, nil
}

// MaxSocketsPerLogin bounds the websockets (live and microphone together) one login
// may hold open: a review page needs one or two per open tab.
const MaxSocketsPerLogin = 8

// socketCounts counts the open websockets of each login, by the login token's hash.
type socketCounts struct {
	mu sync.Mutex
	n  map[[32]byte]int
}

// claimSocket takes one of the login's websocket places, or refuses with 429 when all are
// taken. The caller releases it when the socket ends.
func (s *Server) claimSocket(r *http.Request) (release func(), err error) {
	c, _ := r.Cookie(CookieName) // present: the handler authenticated the request
	key := sha256.Sum256([]byte(c.Value))
	sc := &s.sockets
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.n[key] >= MaxSocketsPerLogin {
		return nil, errf(http.StatusTooManyRequests, "this login already has %d live connections open (the limit); close other tabs of scribe", MaxSocketsPerLogin)
	}
	if sc.n == nil {
		sc.n = map[[32]byte]int{}
	}
	sc.n[key]++
	return func() {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if sc.n[key]--; sc.n[key] <= 0 {
			delete(sc.n, key)
		}
	}, nil
}

// loginEnded is what a websocket whose login has ended is told before it is closed.
var loginEnded = errorFrame("logged_out", "your login has ended (logged out, timed out or disabled): log in again")

// watchLogin re-checks, every LoginRecheck, that the login behind r still holds (not
// logged out, everywhere or here; not idle or past its maximum age; the user not
// disabled). The returned channel is closed when it no longer does; the watch ends with
// ctx. A database that cannot be read does not end a login.
func (s *Server) watchLogin(ctx context.Context, r *http.Request) <-chan struct{} {
	ended := make(chan struct{})
	token := ""
	if c, err := r.Cookie(CookieName); err == nil {
		token = c.Value
	}
	go func() {
		t := time.NewTicker(s.cfg.LoginRecheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if ok, err := s.store.LoginActive(ctx, token, s.policy); err == nil && !ok {
				close(ended)
				return
			}
		}
	}()
	return ended
}

type resumeRequest struct {
	Resume *int64 `json:"resume"`
	Epoch  string `json:"epoch"`
	Level  bool   `json:"level"` // also send "level" messages while recording (review.go)
}

func (s *Server) liveSocket(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	release, err := s.claimSocket(r)
	if err != nil {
		return err
	}
	defer release()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil // the upgrader has answered the client
	}
	defer conn.Close()
	conn.SetReadLimit(wsHardLimit)
	send := func(b []byte) error {
		conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
		return conn.WriteMessage(websocket.TextMessage, b)
	}

	// Phase 1: the client says where it is. Bad messages get an error frame and another try.
	conn.SetReadDeadline(time.Now().Add(wsResumeWait))
	var req resumeRequest
	for {
		kind, data, err := readClientMessage(conn, MaxClientMessage)
		if data == nil && err != nil && kind == 0 {
			return nil // connection gone or resume timed out
		}
		if err != nil {
			send(errorFrame("too_large", err.Error()))
			continue
		}
		if kind != websocket.TextMessage {
			send(errorFrame("bad_message", "the live socket takes JSON text messages only"))
			continue
		}
		req = resumeRequest{}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Resume == nil || *req.Resume < 0 {
			send(errorFrame("bad_message", `expected {"resume": <last seq seen, 0 if none>, "epoch": "<epoch, if any>"}`))
			continue
		}
		break
	}

	if err := s.auditRead(r, c.ID, "live_view", nil); err != nil {
		s.log.Error("live view not audited; not sent", "session", c.ID, "err", err)
		send(errorFrame("internal", "could not record this view in the audit trail; try again"))
		return nil
	}
	h := s.live.session(c.ID).hub
	v, first, err := h.join(r.Context(), *req.Resume, req.Epoch)
	if err == nil && req.Level {
		h.wantLevel(v)
	}
	if err != nil {
		s.log.Error("live join failed", "session", c.ID, "err", err)
		send(errorFrame("internal", "could not load the session"))
		return nil
	}
	defer h.leave(v)

	// Phase 2: one writer goroutine owns all writes; this goroutine reads.
	ctrl := make(chan []byte, 8)
	writerDone := make(chan struct{})
	watchCtx, stopWatch := context.WithCancel(r.Context())
	defer stopWatch()
	loginEnd := s.watchLogin(watchCtx, r)
	go func() {
		defer close(writerDone)
		defer conn.Close() // unblocks the reader below
		for _, b := range first {
			if send(b) != nil {
				return
			}
		}
		ping := time.NewTicker(wsPingEvery)
		defer ping.Stop()
		for {
			select {
			case b, ok := <-v.send:
				if !ok {
					h.mu.Lock()
					reason := v.reason
					h.mu.Unlock()
					if reason != "" {
						send(errorFrame("dropped", reason))
					}
					conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "resume to continue"), time.Now().Add(time.Second))
					return
				}
				if send(b) != nil {
					return
				}
			case b := <-ctrl:
				if send(b) != nil {
					return
				}
			case <-loginEnd:
				send(loginEnded)
				conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "login ended"), time.Now().Add(time.Second))
				return
			case <-ping.C:
				if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)) != nil {
					return
				}
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(wsPongWait))
	conn.SetPongHandler(func(string) error { conn.SetReadDeadline(time.Now().Add(wsPongWait)); return nil })
	for {
		kind, data, err := readClientMessage(conn, MaxClientMessage)
		if kind == 0 && err != nil {
			break
		}
		var reply []byte
		switch {
		case err != nil:
			reply = errorFrame("too_large", err.Error())
		case kind != websocket.TextMessage:
			reply = errorFrame("bad_message", "the live socket takes JSON text messages only")
		case !json.Valid(data):
			reply = errorFrame("bad_message", "malformed JSON")
		default:
			reply = errorFrame("bad_message", "nothing to do: the server sends updates by itself; reconnect to resume from another seq")
		}
		select {
		case ctrl <- reply:
		default: // a client flooding bad messages does not get every answer
		}
		conn.SetReadDeadline(time.Now().Add(wsPongWait))
	}
	h.leave(v)
	<-writerDone
	return nil
}

type audioFormat struct {
	Format     string `json:"format"`
	SampleRate int    `json:"sample_rate"`
	Channels   int    `json:"channels"`
}

// audioSocket receives browser-microphone audio for a recording browser room.
func (s *Server) audioSocket(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	release, err := s.claimSocket(r)
	if err != nil {
		return err
	}
	defer release()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil
	}
	defer conn.Close()
	conn.SetReadLimit(wsHardLimit)
	fail := func(code, msg string) error {
		conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
		conn.WriteMessage(websocket.TextMessage, errorFrame(code, msg))
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseUnsupportedData, code), time.Now().Add(time.Second))
		return nil
	}
	conn.SetReadDeadline(time.Now().Add(wsAudioFormat))
	kind, data, err := readClientMessage(conn, MaxClientMessage)
	if kind == 0 && err != nil {
		return nil
	}
	var f audioFormat
	if err != nil || kind != websocket.TextMessage || json.Unmarshal(data, &f) != nil {
		return fail("bad_format", `first send the format as text: {"format": "f32le" or "s16le", "sample_rate": 16000, "channels": 1}`)
	}
	if (f.Format != FormatF32LE && f.Format != FormatS16LE) || f.SampleRate != 16000 || f.Channels != 1 {
		return fail("bad_format", fmt.Sprintf("unsupported audio %s at %d Hz with %d channels: send 16000 Hz mono f32le or s16le", f.Format, f.SampleRate, f.Channels))
	}
	src := s.live.browserSourceOf(c.ID)
	if src == nil {
		return fail("not_recording", "this session is not recording from a browser microphone (start or resume it first)")
	}
	conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ready"}`))
	watchCtx, stopWatch := context.WithCancel(r.Context())
	defer stopWatch()
	loginEnd := s.watchLogin(watchCtx, r)
	go func() {
		select {
		case <-loginEnd: // WriteControl and Close are safe beside the reader's writes
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "login ended"), time.Now().Add(time.Second))
			conn.Close()
		case <-watchCtx.Done():
		}
	}()
	for {
		conn.SetReadDeadline(time.Now().Add(wsPongWait))
		kind, data, err := readClientMessage(conn, MaxAudioFrameBytes)
		if kind == 0 && err != nil {
			return nil
		}
		if err != nil {
			return fail("too_large", err.Error())
		}
		if kind != websocket.BinaryMessage {
			return fail("bad_frame", "after the format message, send audio as binary frames only")
		}
		samples, err := decodeAudioFrame(f.Format, data)
		if err != nil {
			return fail("bad_frame", err.Error())
		}
		if err := src.push(r.Context(), samples); err != nil {
			if errors.Is(err, errSourceClosed) {
				return fail("not_recording", "recording is paused or stopped; no audio is kept")
			}
			return fail("overloaded", err.Error())
		}
	}
}
