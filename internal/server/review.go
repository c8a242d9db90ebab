package server

// The clinician's screens (issue 13): the pre-approval check, discarding an empty
// consultation, the live worklist of the clinician's own consultations, and the
// recording header's input level and elapsed time.

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/store"
)

func (s *Server) reviewRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/sessions/{id}/approval-check", s.handle(s.approvalCheck, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/discard", s.handle(s.discardSession, store.RoleClinician))
	mux.HandleFunc("GET /api/worklist", s.handle(s.getWorklist, store.RoleClinician))
	mux.HandleFunc("GET /api/worklist/live", s.handle(s.worklistSocket, store.RoleClinician))
}

// approvalCheck lists what the clinician must decide before approving (store.ApprovalItem).
func (s *Server) approvalCheck(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	items, err := s.store.ApprovalCheck(r.Context(), c.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

// discardSession closes a stopped consultation whose note is empty: nothing is filed.
func (s *Server) discardSession(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var v sessionView
	err = s.live.session(c.ID).hub.mutate(func() (message, error) {
		if err := s.store.Discard(r.Context(), c.ID, userOf(r).ID); err != nil {
			return message{}, err
		}
		if _, err := s.deleteAudio(r.Context(), c.ID, AudioDeletedDiscarded); err != nil {
			s.log.Error("audio not deleted at discard", "session", c.ID, "err", err)
		}
		var err error
		if v, err = s.sessionView(r.Context(), c.ID); err != nil {
			return message{}, err
		}
		return message{Type: "state", Session: &v, Reason: "discarded by the clinician: nothing was filed"}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// worklistItem is one of the clinician's consultations with what it needs from them.
type worklistItem struct {
	sessionView
	// Action says, in words, what the clinician has to do ("" when nothing).
	Action string `json:"action,omitempty"`
}

// worklistDays is how long an approved consultation that reached the record stays on
// the worklist; one that did not stays until it does.
const worklistDays = 7

// worklist is the clinician's consultations that are in progress, waiting for review,
// or approved recently or not yet in the record, newest first.
func (s *Server) worklist(ctx context.Context, clinicianID int64) ([]worklistItem, error) {
	cs, err := s.store.Consultations(ctx, store.ConsultationFilter{ClinicianID: clinicianID, Limit: 200})
	if err != nil {
		return nil, err
	}
	out := []worklistItem{}
	for _, c := range cs {
		c.DocumentText = ""
		v, err := s.viewOf(ctx, c)
		if err != nil {
			return nil, err
		}
		if v.Discarded {
			continue
		}
		it := worklistItem{sessionView: v, Action: actionFor(v)}
		if c.State == store.StateApproved && it.Action == "" && time.Since(c.ApprovedAt) > worklistDays*24*time.Hour {
			continue
		}
		out = append(out, it)
	}
	return out, nil
}

// actionFor says what a consultation needs from its clinician ("" when nothing).
func actionFor(v sessionView) string {
	switch v.State {
	case store.StateRecording:
		return ""
	case store.StatePaused:
		if v.Interrupted {
			return "Interrupted: resume or stop the recording"
		}
		return "Paused: resume or stop the recording"
	case store.StateStopped:
		return "Review and approve the note"
	}
	switch v.DeliveryState { // the write-back's states (Deps.DeliveryState)
	case "held":
		return "Held, not filed: " + v.DeliveryReason + ". Open the note to put it right."
	case "failed":
		return "Not filed: " + v.DeliveryReason + ". Open the note; the practice's IT admin can retry it."
	}
	return ""
}

func (s *Server) getWorklist(w http.ResponseWriter, r *http.Request) error {
	list, err := s.worklist(r.Context(), userOf(r).ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// worklistPoll is how often an open worklist socket looks for changes nothing announces
// (the write-back's delivery states); session state changes are sent at once.
const worklistPoll = 2 * time.Second

// worklistSocket streams the clinician's worklist: the whole list at once and again
// whenever it changes (docs/websocket-protocol.md). It closes when the login ends.
func (s *Server) worklistSocket(w http.ResponseWriter, r *http.Request) error {
	u := userOf(r)
	token := ""
	if c, err := r.Cookie(CookieName); err == nil {
		token = c.Value
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil // the upgrader has answered the client
	}
	defer conn.Close()
	conn.SetReadLimit(MaxClientMessage)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// A hijacked connection outlives the HTTP server's shutdown: the server's own stop
	// (the live manager's run context) ends it.
	defer context.AfterFunc(s.live.runCtx, cancel)()
	// The client sends nothing; reading notices when it goes and answers pings.
	go func() {
		defer cancel()
		conn.SetReadDeadline(time.Now().Add(wsPongWait))
		conn.SetPongHandler(func(string) error { conn.SetReadDeadline(time.Now().Add(wsPongWait)); return nil })
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(worklistPoll)
	defer tick.Stop()
	lastPing := time.Now()
	var last []byte
	for {
		changed := s.changes.wait()
		if ok, err := s.store.LoginActive(ctx, token, s.policy); err == nil && !ok {
			conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
			conn.WriteMessage(websocket.TextMessage, errorFrame("logged_out", "your login has ended: sign in again"))
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "logged out"), time.Now().Add(time.Second))
			return nil
		}
		list, err := s.worklist(ctx, u.ID)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("worklist not loaded", "err", err)
		} else {
			b, _ := json.Marshal(map[string]any{"type": "worklist", "sessions": list})
			if !bytes.Equal(b, last) {
				conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
				if conn.WriteMessage(websocket.TextMessage, b) != nil {
					return nil
				}
				last = b
			}
		}
		if time.Since(lastPing) >= wsPingEvery {
			if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)) != nil {
				return nil
			}
			lastPing = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		}
	}
}

// broadcaster wakes everyone waiting for "something changed".
type broadcaster struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (b *broadcaster) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcaster) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// levelEvery is how often a recording session's viewers get its input level.
const levelEvery = 200 * time.Millisecond

// meter sends the run's input level and the session's elapsed recording time to the
// session's viewers until the run ends. These "level" messages are not numbered or kept:
// a viewer that misses one just waits for the next.
func (m *manager) meter(h *hub, run *pipelineRun, offset float64) {
	t := time.NewTicker(levelEvery)
	defer t.Stop()
	for {
		select {
		case <-run.done:
			return
		case <-t.C:
		}
		rms, peak := run.src.takeLevel()
		db := -120.0
		if rms > 0 {
			db = max(db, 20*math.Log10(rms))
		}
		h.sendEphemeral(message{Type: "level", Level: &levelReading{DBFS: math.Round(db*10) / 10, Clipping: peak >= 0.999,
			Elapsed: math.Round((offset+run.src.seconds())*10) / 10}})
	}
}

// levelReading is a "level" message's payload.
type levelReading struct {
	DBFS     float64 `json:"dbfs"`     // RMS level of the audio since the last reading, dB full scale
	Clipping bool    `json:"clipping"` // a sample reached full scale
	Elapsed  float64 `json:"elapsed"`  // seconds recorded in this session so far
}

// wantLevel signs a viewer up for "level" messages (asked for in its resume request).
func (h *hub) wantLevel(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v.level = true
}

// sendEphemeral hands a message outside the numbered log to every viewer that asked for
// levels and has room for it; a viewer with a full queue simply misses it.
func (h *hub) sendEphemeral(msg message) {
	data, err := json.Marshal(msg)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for v := range h.viewers {
		if !v.level {
			continue
		}
		select {
		case v.send <- data:
		default:
		}
	}
}
