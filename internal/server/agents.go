package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/agent/wire"
	"scribe/internal/diarize"
	"scribe/internal/domain"
	"scribe/internal/source"
	"scribe/internal/store"
)

// Room agents (docs/agent-protocol.md): enrolment with a one-time code, the agent
// websocket, and the audio source of a room whose audio comes from its agent.

const (
	// agentDrainWait bounds how long Pause/Stop wait for the agent to deliver the speech
	// it captured before the command reached it.
	agentDrainWait = 10 * time.Second
	// agentMaxAway caps the buffer an agent may announce (the gateway keeps a session
	// recording that long without hearing from it).
	agentMaxAway = 10 * time.Minute
	// agentQueue is the audio the gateway queues for a run's transcriber before it stops
	// reading from the agent (back-pressure through TCP).
	agentQueue = 60 * time.Second
	// agentSeenEvery is how often a connected agent's last_seen_at is refreshed by
	// default (Config.AgentSeenEvery); scribe doctor warns about an agent not seen for 10 minutes.
	agentSeenEvery = time.Minute
)

// agentHub tracks connected agents and the recording runs fed by them.
type agentHub struct {
	s       *Server
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[int64]*agentConn // by agent id
	dedup   map[int64]agentDedup // by agent id: its latest process's sequence numbers
	runs    map[int64]*agentRun  // by room id: the run being recorded
	started map[int64]time.Time  // by room id: a start asked for with the room's button
}

// agentDedup is the sequence bookkeeping of one agent process (instance).
type agentDedup struct {
	instance string
	d        *wire.Dedup
}

func newAgentHub(s *Server) *agentHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &agentHub{s: s, ctx: ctx, cancel: cancel, conns: map[int64]*agentConn{}, dedup: map[int64]agentDedup{},
		runs: map[int64]*agentRun{}, started: map[int64]time.Time{}}
}

// close drops every agent connection and stops the hub's goroutines.
func (h *agentHub) close() {
	h.cancel()
	h.mu.Lock()
	for _, c := range h.conns {
		c.ws.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (s *Server) agentRoutes(mux *http.ServeMux) {
	s.agents = newAgentHub(s)
	mux.HandleFunc("POST /api/rooms/{room}/agent-code", s.handle(s.createAgentCode, store.RoleAdmin))
	mux.HandleFunc("GET /api/agents", s.handle(s.listAgents, store.RoleAdmin))
	mux.HandleFunc("POST /api/agents/{agent}/revoke", s.handle(s.revokeAgent, store.RoleAdmin))
	mux.HandleFunc("GET /api/rooms/{room}/agent", s.handle(s.roomAgent))
	mux.HandleFunc("POST /api/agent/enrol", func(w http.ResponseWriter, r *http.Request) { s.finish(w, r, s.enrolAgent(w, r)) })
	mux.HandleFunc("GET "+wire.Path, s.agentSocket)
	mux.HandleFunc("GET /api/agent/hello", s.agentHello)
}

func (s *Server) createAgentCode(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "room")
	if err != nil {
		return err
	}
	code, exp, err := s.store.CreateAgentCode(r.Context(), id, userOf(r).ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"code": code, "expires_at": exp,
		"note": "shown once: type it on the agent with scribe agent enrol URL CODE within 15 minutes"})
	return nil
}

func (s *Server) enrolAgent(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Code string `json:"code"`
		Name string `json:"name"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Name) > 100 {
		return errf(http.StatusBadRequest, "agent name longer than 100 characters")
	}
	a, token, err := s.store.EnrolAgent(r.Context(), req.Code, req.Name)
	if errors.Is(err, store.ErrBadCredential) {
		s.log.Info("agent enrolment refused") // never the code
		return errf(http.StatusUnauthorized, "%s", strings.TrimPrefix(err.Error(), store.ErrBadCredential.Error()+": "))
	}
	if err != nil {
		return err
	}
	s.log.Info("agent enrolled", "agent", a.ID, "room", a.RoomName)
	writeJSON(w, http.StatusCreated, map[string]any{"agent_id": a.ID, "room_id": a.RoomID, "room_name": a.RoomName, "token": token})
	return nil
}

// agentView is an agent with its live state, for admins.
type agentView struct {
	store.Agent
	agentStatus
}

// agentStatus is what the UI shows about a room's agent.
type agentStatus struct {
	Online           bool       `json:"online"`
	StartRequestedAt *time.Time `json:"start_requested_at,omitempty"`
	FramesAccepted   int64      `json:"frames_accepted"`
	FramesDuplicate  int64      `json:"frames_duplicate"`
	FramesMissing    int64      `json:"frames_missing"`
	LastSeq          *uint64    `json:"last_seq,omitempty"`
}

func (h *agentHub) statusLocked(agentID, roomID int64) agentStatus {
	var st agentStatus
	if t, ok := h.started[roomID]; ok {
		st.StartRequestedAt = &t
	}
	if c, ok := h.conns[agentID]; ok {
		st.Online = true
		st.FramesAccepted, st.FramesDuplicate, st.FramesMissing = c.dedup.Accepted, c.dedup.Duplicates, c.dedup.Gaps
		if seq, ok := c.dedup.Acked(); ok {
			st.LastSeq = &seq
		}
	}
	return st
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	as, err := s.store.Agents(r.Context())
	if err != nil {
		return err
	}
	out := make([]agentView, 0, len(as))
	s.agents.mu.Lock()
	for _, a := range as {
		out = append(out, agentView{Agent: a, agentStatus: s.agents.statusLocked(a.ID, a.RoomID)})
	}
	s.agents.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// roomAgent tells a room's clinician (or an admin) whether its agent is online and
// whether someone pressed the room's button asking for a start.
func (s *Server) roomAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "room")
	if err != nil {
		return err
	}
	room, err := s.store.Room(r.Context(), id)
	u := userOf(r)
	if err != nil || (u.Role != store.RoleAdmin && room.ClinicianID != u.ID) {
		return errf(http.StatusNotFound, "room %d not found among your rooms", id)
	}
	var agentID int64 // 0 (no agent) while the room's agent is offline
	s.agents.mu.Lock()
	if c := s.agents.connOfRoomLocked(id); c != nil {
		agentID = c.agent.ID
	}
	st := s.agents.statusLocked(agentID, id)
	s.agents.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "agent")
	if err != nil {
		return err
	}
	a, err := s.store.RevokeAgent(r.Context(), id, userOf(r).ID)
	if err != nil {
		return err
	}
	s.agents.kick(id, "this agent was revoked by an administrator")
	s.log.Info("agent revoked", "agent", id)
	writeJSON(w, http.StatusOK, a)
	return nil
}

// agentConn is one agent's live websocket.
type agentConn struct {
	agent    store.Agent
	ws       *websocket.Conn
	send     chan []byte
	done     chan struct{}
	once     sync.Once
	channels int
	mics     *diarize.Setup // the box's microphone set-up, from its hello (nil: older agent)
	buffer   time.Duration
	dedup    *wire.Dedup // guarded by agentHub.mu
}

func (c *agentConn) stop() { c.once.Do(func() { close(c.done) }) }

// queue hands a message to the connection's writer without waiting; a connection too
// slow to take control messages is dropped (the agent reconnects and resends).
func (c *agentConn) queue(m wire.Message) {
	b, _ := json.Marshal(m)
	select {
	case c.send <- b:
	case <-c.done:
	default:
		c.stop()
	}
}

func (h *agentHub) connOfRoomLocked(roomID int64) *agentConn {
	for _, c := range h.conns {
		if c.agent.RoomID == roomID {
			return c
		}
	}
	return nil
}

// kick closes a revoked agent's connection at once, telling it why in the close frame.
func (h *agentHub) kick(agentID int64, why string) {
	h.mu.Lock()
	c := h.conns[agentID]
	h.mu.Unlock()
	if c == nil {
		return
	}
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(wire.CloseRevoked, why), time.Now().Add(time.Second))
	c.stop()
	c.ws.Close()
}

func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(v, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// authAgent authenticates the agent's bearer token, answering 403 (revoked, saying when)
// or 401 (unknown) itself when it is refused.
func (s *Server) authAgent(w http.ResponseWriter, r *http.Request) (store.Agent, bool) {
	ctx := r.Context()
	a, err := s.store.AgentByToken(ctx, bearer(r))
	if errors.Is(err, store.ErrRevoked) {
		s.store.AuditAgentRefused(ctx, a.ID, "revoked")
		s.log.Warn("revoked agent refused", "agent", a.ID)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf(
			"agent %d of room %q was revoked on %s; ask the administrator for a new code and enrol again", a.ID, a.RoomName, a.RevokedAt.Format(time.RFC3339))})
		return a, false
	}
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unknown agent token: enrol this agent with scribe agent enrol URL CODE"})
		return a, false
	}
	return a, true
}

// agentHello tells an agent (scribe doctor on the room box) whether its token is accepted
// and which room it is bound to. It does not count as the agent being seen: last_seen_at
// stays about the agent's audio connection, which is what the gateway's doctor reports.
func (s *Server) agentHello(w http.ResponseWriter, r *http.Request) {
	a, ok := s.authAgent(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"agent_id": a.ID, "agent_name": a.Name, "room_id": a.RoomID, "room_name": a.RoomName})
}

// agentSocket is the agent's websocket: hello, then speech frames in, acks and control out.
func (s *Server) agentSocket(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, ok := s.authAgent(w, r)
	if !ok {
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer ws.Close()
	ws.SetReadLimit(wire.HeaderSize + 4*wire.MaxFrameSamples*wire.MaxChannels)
	ws.SetReadDeadline(time.Now().Add(wsPongWait))
	var hello wire.Message
	if kind, data, err := ws.ReadMessage(); err != nil || kind != websocket.TextMessage || json.Unmarshal(data, &hello) != nil || hello.Type != "hello" {
		ws.WriteMessage(websocket.TextMessage, mustJSON(wire.Message{Type: "error", Message: "expected a hello message first"}))
		return
	}
	if hello.Version != wire.Version || hello.Channels < 1 || hello.Channels > wire.MaxChannels || hello.Instance == "" {
		ws.WriteMessage(websocket.TextMessage, mustJSON(wire.Message{Type: "error", Message: fmt.Sprintf("unsupported hello (protocol version %d, %d channels); this gateway speaks version %d", hello.Version, hello.Channels, wire.Version)}))
		return
	}
	s.store.TouchAgent(ctx, a.ID)
	// A dropped agent was last seen when it dropped, not at its last periodic touch.
	defer s.store.TouchAgent(context.WithoutCancel(ctx), a.ID)
	buffer := min(time.Duration(hello.BufferSeconds*float64(time.Second)), agentMaxAway)
	if buffer <= 0 {
		buffer = 2 * time.Minute
	}
	c := &agentConn{agent: a, ws: ws, send: make(chan []byte, 256), done: make(chan struct{}), channels: hello.Channels, mics: hello.Microphones, buffer: buffer}
	h := s.agents
	h.attach(c, hello.Instance)
	defer h.detach(c)
	s.log.Info("agent connected", "agent", a.ID, "room", a.RoomName, "channels", c.channels)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the writer: owned by this handler, ends with c.done
		defer wg.Done()
		defer ws.Close()
		ping := time.NewTicker(wsPingEvery)
		defer ping.Stop()
		// last_seen_at is all a separate process (scribe doctor) can see of a connected
		// agent, so keep it fresh while the connection lasts.
		every := s.cfg.AgentSeenEvery
		if every <= 0 {
			every = agentSeenEvery
		}
		touch := time.NewTicker(every)
		defer touch.Stop()
		for {
			select {
			case <-touch.C:
				if err := s.store.TouchAgent(h.ctx, a.ID); err != nil && h.ctx.Err() == nil {
					s.log.Warn("cannot record agent as seen", "agent", a.ID, "err", err)
				}
			case b := <-c.send:
				ws.SetWriteDeadline(time.Now().Add(wsWriteWait))
				if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
					c.stop()
					return
				}
			case <-ping.C:
				if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
					c.stop()
					return
				}
			case <-c.done:
				return
			case <-h.ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer c.stop()
	ws.SetPongHandler(func(string) error { ws.SetReadDeadline(time.Now().Add(wsPongWait)); return nil })
	for {
		ws.SetReadDeadline(time.Now().Add(wsPongWait))
		kind, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		switch kind {
		case websocket.BinaryMessage:
			f, err := wire.Decode(data)
			if err != nil {
				s.log.Warn("bad frame from agent", "agent", a.ID, "err", err)
				c.queue(wire.Message{Type: "error", Message: err.Error()})
				return
			}
			if err := h.receive(c, f); err != nil {
				return
			}
		case websocket.TextMessage:
			var m wire.Message
			if json.Unmarshal(data, &m) == nil && m.Type == "button" {
				h.pressedOffline(c, m)
				h.wg.Add(1)
				go func() { // may pause or resume a session, which waits on this reader
					defer h.wg.Done()
					h.button(c, m)
				}()
			}
		}
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// attach registers a connection (replacing an older one of the same agent) and tells the
// agent what to do: keep recording a run in progress, or stay idle.
func (h *agentHub) attach(c *agentConn, instance string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.conns[c.agent.ID]; old != nil {
		old.stop()
		old.ws.Close()
	}
	dd, ok := h.dedup[c.agent.ID]
	if !ok || dd.instance != instance {
		// A new agent process: the previous one's sequence numbers are void.
		dd = agentDedup{instance: instance, d: &wire.Dedup{}}
		h.dedup[c.agent.ID] = dd
	}
	c.dedup = dd.d
	h.conns[c.agent.ID] = c
	if run := h.runs[c.agent.RoomID]; run != nil {
		run.conn = c
		if run.awayTimer != nil {
			run.awayTimer.Stop()
			run.awayTimer = nil
		}
		if run.closing {
			// Pause/Stop came while the agent was away: it delivers the rest, then ends.
			c.queue(wire.Message{Type: "idle", Run: run.id, Reason: "paused or stopped in the UI"})
		} else {
			c.queue(wire.Message{Type: "record", Run: run.id})
		}
	} else {
		c.queue(wire.Message{Type: "idle", Reason: "no session is recording"})
	}
}

// detach forgets a closed connection; a run it was feeding waits for the agent to come
// back, but not longer than the agent's buffer lasts.
func (h *agentHub) detach(c *agentConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns[c.agent.ID] != c {
		return
	}
	delete(h.conns, c.agent.ID)
	h.s.log.Warn("agent disconnected", "agent", c.agent.ID, "room", c.agent.RoomName)
	run := h.runs[c.agent.RoomID]
	if run == nil || run.conn != c {
		return
	}
	run.conn = nil
	if run.closing {
		return // the drain timer of Close bounds the wait
	}
	limit := c.buffer
	run.awayTimer = time.AfterFunc(limit, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if run.conn == nil && !run.ended {
			h.s.log.Error("agent away longer than its buffer: stopping the session", "room", c.agent.RoomName, "away", limit)
			run.finishLocked(fmt.Sprintf("the room agent was unreachable for longer than its %v buffer, so the session was stopped; everything received before is kept", limit))
		}
	})
}

// receive handles one frame: duplicates are dropped, new audio goes to the room's run,
// and the agent gets an acknowledgement.
func (h *agentHub) receive(c *agentConn, f wire.Frame) error {
	h.mu.Lock()
	fresh := c.dedup.Accept(f.Seq)
	run := h.runs[c.agent.RoomID]
	if run != nil && (run.id != f.Run || run.ended) {
		run = nil
	}
	h.mu.Unlock()
	if fresh {
		if run == nil {
			if f.Kind == wire.KindAudio {
				h.s.log.Warn("speech from an agent for a run no longer recording: discarded", "agent", c.agent.ID, "run", f.Run)
			}
		} else if err := run.add(h.ctx, f); err != nil {
			return err
		}
	}
	h.mu.Lock()
	seq, ok := c.dedup.Acked()
	h.mu.Unlock()
	if ok {
		c.queue(wire.Message{Type: "ack", Seq: &seq})
	}
	return nil
}

// agentPressFresh is how old a press may be and still pause or resume a session: an
// older one was made while the agent was offline, and the session may have been paused,
// resumed or stopped in the UI since.
const agentPressFresh = 5 * time.Second

// pressedOffline notes, before the frames that follow it are read, that the agent paused
// run m.Run itself when the button was pressed while it was offline: the end of that run
// then waits for the session's Pause (button) instead of stopping the session.
func (h *agentHub) pressedOffline(c *agentConn, m wire.Message) {
	if m.Run == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if run := h.runs[c.agent.RoomID]; run != nil && run.id == m.Run && !run.ended {
		run.pausedAtRoom = true
	}
}

// button handles a press of the room's button: it pauses a recording session or
// resumes a paused one; with no session it asks the clinician's screen for a start
// (consent is still taken in the UI). A press the agent could only send late (it was
// offline) never resumes recording; one that paused a run at the agent pauses the session.
func (h *agentHub) button(c *agentConn, m wire.Message) {
	ctx := store.WithActor(h.ctx, fmt.Sprintf("agent:%d", c.agent.ID))
	roomID := c.agent.RoomID
	ago := time.Duration(max(m.Ago, 0) * float64(time.Second))
	pressed := time.Now().Add(-ago).UTC()
	late := ""
	if ago > agentPressFresh {
		late = fmt.Sprintf(" (pressed at %s while the room agent was offline)", pressed.Local().Format("15:04:05"))
	}
	cs, err := h.s.store.Consultations(ctx, store.ConsultationFilter{RoomID: roomID, States: []string{store.StateRecording, store.StatePaused}, Limit: 1})
	if err != nil {
		h.s.log.Error("button: cannot read the room's session", "err", err)
		h.releasePausedAtRoom(roomID, m.Run)
		return
	}
	if len(cs) == 0 {
		h.releasePausedAtRoom(roomID, m.Run)
		h.mu.Lock()
		h.started[roomID] = pressed
		h.mu.Unlock()
		h.s.log.Info("start requested with the room's button", "room", c.agent.RoomName, "ago", ago.Round(time.Second))
		c.queue(wire.Message{Type: "notice", Message: "start requested at the room: the clinician confirms consent and starts in the UI"})
		return
	}
	var action, text string
	switch {
	case m.Run != 0 && cs[0].State == store.StateRecording:
		action, text = "pause", "Paused at the room"+late+"; nothing was recorded after the press"
	case m.Run != 0 || ago > agentPressFresh:
		// Too late to act on: the session may have changed since, and recording must
		// never resume on a stale press.
		h.releasePausedAtRoom(roomID, m.Run)
		text = "The room's button was pressed" + late + " and not acted on: use Pause or Resume here"
	case cs[0].State == store.StatePaused:
		action, text = "resume", "Resumed at the room"
	default:
		action, text = "pause", "Paused at the room"
	}
	if action != "" {
		if _, err := h.s.live.transition(ctx, cs[0].ID, action); err != nil {
			h.s.log.Warn("button: "+action+" failed", "session", cs[0].ID, "err", err)
			h.releasePausedAtRoom(roomID, m.Run)
			text = "The room's button was pressed but the session could not be " + action + "d: " + err.Error()
		}
	}
	h.s.live.session(cs[0].ID).hub.publish(message{Type: "agent", Message: text})
	c.queue(wire.Message{Type: "notice", Message: text})
}

// releasePausedAtRoom ends a run the agent paused by itself when the session will not be
// paused for it (no session, or the press came too late): the run ends as the agent
// ended it.
func (h *agentHub) releasePausedAtRoom(roomID int64, run uint32) {
	if run == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.runs[roomID]; r != nil && r.id == run && r.pausedAtRoom {
		r.pausedAtRoom = false
		if r.endSeen {
			r.finishLocked("the recording was paused with the room's button while the room agent was offline")
		}
	}
}

// agentRun is the audio source of one recording run of an agent room: the agent's
// speech frames laid on a timeline with silence filled in.
type agentRun struct {
	h       *agentHub
	roomID  int64
	id      uint32
	push    *source.Push
	tl      wire.Timeline // used only by the connection's reader
	conn    *agentConn    // guarded by h.mu; nil while the agent is away
	closing bool          // guarded by h.mu: Pause/Stop asked the agent to finish
	ended   bool          // guarded by h.mu: the source is closed
	reason  string        // guarded by h.mu: why the run ended by itself
	// pausedAtRoom (guarded by h.mu): the agent paused this run itself (button pressed
	// while offline); its end frame waits for the session's Pause instead of ending the run.
	pausedAtRoom bool
	endSeen      bool // guarded by h.mu: the end frame came while pausedAtRoom
	awayTimer    *time.Timer
	drain        *time.Timer
}

var _ domain.AudioSource = (*agentRun)(nil)

// openRun starts a run on the room's connected agent, or explains why it cannot.
func (h *agentHub) openRun(room store.Room) (*agentRun, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.connOfRoomLocked(room.ID)
	if c == nil {
		return nil, fmt.Errorf("the room agent of %q is offline: check that the box in the room is powered and on the network (scribe agent run), then start again", room.Name)
	}
	if old := h.runs[room.ID]; old != nil && !old.ended {
		old.finishLocked("")
	}
	var b [4]byte
	rand.Read(b[:])
	id := binary.BigEndian.Uint32(b[:])
	if id == 0 {
		id = 1
	}
	run := &agentRun{h: h, roomID: room.ID, id: id, push: source.NewPush(c.channels, agentQueue), conn: c}
	run.tl.Channels = c.channels
	h.runs[room.ID] = run
	delete(h.started, room.ID)
	c.queue(wire.Message{Type: "record", Run: id})
	return run, nil
}

func (r *agentRun) Channels() int { return r.tl.Channels }

// Microphones is the room box's microphone set-up, when it announced one.
func (r *agentRun) Microphones() (diarize.Setup, bool) {
	if r.conn.mics == nil {
		return diarize.Setup{}, false
	}
	return *r.conn.mics, true
}

func (r *agentRun) Read(ctx context.Context) ([][]float32, error) { return r.push.Read(ctx) }

// Close asks the agent to finish the run and lets the transcriber read what the agent
// still delivers (up to agentDrainWait) before the source ends. It does not wait.
func (r *agentRun) Close() error {
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.ended || r.closing {
		return nil
	}
	r.closing = true
	if r.awayTimer != nil {
		r.awayTimer.Stop()
	}
	if r.endSeen { // the agent already sent everything (it paused at the room)
		r.finishLocked("")
		return nil
	}
	if r.conn != nil { // otherwise it is told when it reconnects (attach)
		r.conn.queue(wire.Message{Type: "idle", Run: r.id, Reason: "paused or stopped in the UI"})
	}
	r.drain = time.AfterFunc(agentDrainWait, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !r.ended {
			h.s.log.Warn("agent did not finish its run in time; ending it", "room", r.roomID)
			r.finishLocked("")
		}
	})
	return nil
}

// EndReason says why the run ended without Pause or Stop (live.go shows it).
func (r *agentRun) EndReason() string {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	return r.reason
}

// finishLocked ends the source: the transcriber reads what is queued, then io.EOF.
func (r *agentRun) finishLocked(reason string) {
	if r.ended {
		return
	}
	r.ended, r.reason = true, reason
	if r.awayTimer != nil {
		r.awayTimer.Stop()
	}
	if r.drain != nil {
		r.drain.Stop()
	}
	if r.h.runs[r.roomID] == r {
		delete(r.h.runs, r.roomID)
	}
	if r.conn != nil && !r.closing {
		r.conn.queue(wire.Message{Type: "idle", Run: r.id, Reason: reason})
	}
	r.push.Close()
}

// add lays one new frame on the timeline and queues the audio, waiting while the
// transcriber is behind.
func (r *agentRun) add(ctx context.Context, f wire.Frame) error {
	chunks, err := r.tl.Add(f)
	if err != nil {
		return err
	}
	for _, c := range chunks {
		for {
			err := r.push.Write(c)
			if !errors.Is(err, source.ErrOverrun) {
				break // written, or the run ended (what follows is discarded)
			}
			t := time.NewTimer(20 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
	if f.Kind == wire.KindEnd {
		r.h.mu.Lock()
		if r.pausedAtRoom && !r.closing {
			r.endSeen = true // the button's Pause closes the run (Close)
			r.h.mu.Unlock()
			return nil
		}
		reason := ""
		if !r.closing {
			reason = "the room agent ended the recording (its audio source ended or it could not keep recording)"
		}
		r.finishLocked(reason)
		r.h.mu.Unlock()
	}
	return nil
}

var _ io.Closer = (*agentRun)(nil)
