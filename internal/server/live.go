package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"scribe/internal/cleantext"
	"scribe/internal/diarize"
	"scribe/internal/domain"
	"scribe/internal/pipeline"
	"scribe/internal/store"
)

// message is one server→client websocket message (docs/websocket-protocol.md).
type message struct {
	Seq         int64             `json:"seq,omitempty"`
	Epoch       string            `json:"epoch,omitempty"`
	Type        string            `json:"type"`
	Utterance   *int              `json:"utterance,omitempty"`
	Segment     *liveSegment      `json:"segment,omitempty"`
	Segments    []store.Segment   `json:"segments,omitempty"`
	Provisional []provisionalMsg  `json:"provisional,omitempty"`
	Session     *sessionView      `json:"session,omitempty"`
	Flag        *store.ReviewFlag `json:"flag,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	Code        string            `json:"code,omitempty"`
	Message     string            `json:"message,omitempty"`
	Replaces    []string          `json:"replaces,omitempty"` // "refined": segment ids Segments replace
	Level       *levelReading     `json:"level,omitempty"`    // "level" (review.go): not numbered
}

// liveSegment is either a provisional segment (no id, no version) or a stored one.
type liveSegment struct {
	store.Segment
}

type provisionalMsg struct {
	Utterance int            `json:"utterance"`
	Segment   domain.Segment `json:"segment"`
}

type logEntry struct {
	seq  int64
	data []byte
}

// viewer is one websocket connection watching a session.
type viewer struct {
	send   chan []byte // closed by the hub when the viewer is dropped or leaves
	gone   bool        // guarded by hub.mu
	reason string      // why the hub dropped it, guarded by hub.mu
	level  bool        // wants "level" messages (review.go), guarded by hub.mu
}

// hub orders everything that happens to one session's transcript into a numbered log,
// keeps the latest part for resuming viewers, and fans messages out without ever
// waiting for a viewer. Its lock also serialises the session's database writes with
// their broadcast, so a snapshot read under it is exactly the state at its seq.
type hub struct {
	s         *Server
	sessionID string
	epoch     string
	mu        sync.Mutex
	seq       int64
	log       []logEntry
	viewers   map[*viewer]struct{}
	// Latest provisional segment per utterance not committed yet (for snapshots).
	provisional map[int]domain.Segment
	// open is the stored segment of each line the pipeline is still committing words to.
	open map[int]string
	// hold is committed text the database refused, kept until it takes it (storage.go).
	hold *storageHold
}

func newEpoch() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// publishLocked numbers msg, keeps it in the log and hands it to every viewer. A viewer
// whose queue is full is dropped: it reconnects and resumes (or resyncs) by itself.
func (h *hub) publishLocked(msg message) {
	h.seq++
	msg.Seq, msg.Epoch = h.seq, h.epoch
	data, err := json.Marshal(msg)
	if err != nil {
		h.s.log.Error("live message not encodable", "type", msg.Type, "err", err)
		return
	}
	if msg.Type == "state" {
		h.s.changes.notify() // worklists (review.go)
	}
	h.log = append(h.log, logEntry{seq: h.seq, data: data})
	if limit := h.s.cfg.LiveLogSize; len(h.log) >= 2*limit {
		h.log = append([]logEntry(nil), h.log[len(h.log)-limit:]...)
	}
	for v := range h.viewers {
		select {
		case v.send <- data:
		default:
			h.dropLocked(v, "too slow: send queue full; reconnect and resume")
		}
	}
}

func (h *hub) publish(msg message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishLocked(msg)
}

func (h *hub) dropLocked(v *viewer, reason string) {
	if v.gone {
		return
	}
	v.gone, v.reason = true, reason
	delete(h.viewers, v)
	close(v.send)
}

func (h *hub) leave(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(v, "")
}

// oldestSeq is the first seq still in the log (h.seq+1 when the log is empty).
func (h *hub) oldestLocked() int64 {
	if len(h.log) == 0 {
		return h.seq + 1
	}
	if limit := h.s.cfg.LiveLogSize; len(h.log) > limit {
		return h.log[len(h.log)-limit].seq
	}
	return h.log[0].seq
}

// join registers a viewer that has seen everything up to lastSeq of epoch. It returns
// what the viewer must be sent first: the missed messages, or one snapshot message when
// they are no longer all in the log (or the viewer is new, or from another epoch).
func (h *hub) join(ctx context.Context, lastSeq int64, epoch string) (*viewer, [][]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var first [][]byte
	if lastSeq > 0 && epoch == h.epoch && lastSeq <= h.seq && lastSeq+1 >= h.oldestLocked() {
		for _, e := range h.log {
			if e.seq > lastSeq {
				first = append(first, e.data)
			}
		}
	} else {
		snap, err := h.snapshotLocked(ctx)
		if err != nil {
			return nil, nil, err
		}
		// A snapshot always carries its lists, empty or not (the page relies on them).
		data, err := json.Marshal(struct {
			message
			Segments    []store.Segment  `json:"segments"`
			Provisional []provisionalMsg `json:"provisional"`
		}{snap, snap.Segments, snap.Provisional})
		if err != nil {
			return nil, nil, fmt.Errorf("snapshot: %w", err)
		}
		first = [][]byte{data}
	}
	v := &viewer{send: make(chan []byte, h.s.cfg.ViewerQueue)}
	h.viewers[v] = struct{}{}
	return v, first, nil
}

// snapshotLocked is the whole current state, numbered with the current seq: applying it
// puts a client exactly where the log is now.
func (h *hub) snapshotLocked(ctx context.Context) (message, error) {
	view, err := h.s.sessionView(ctx, h.sessionID)
	if err != nil {
		return message{}, err
	}
	segs, err := h.s.store.Segments(ctx, h.sessionID, false)
	if err != nil {
		return message{}, err
	}
	msg := message{Seq: h.seq, Epoch: h.epoch, Type: "snapshot", Session: &view, Segments: segs, Provisional: []provisionalMsg{}}
	if msg.Segments == nil {
		msg.Segments = []store.Segment{}
	}
	for u, g := range h.provisional {
		msg.Provisional = append(msg.Provisional, provisionalMsg{Utterance: u, Segment: g})
	}
	return msg, nil
}

// mutate runs a database change for the session and publishes the message it returns,
// both under the hub lock.
func (h *hub) mutate(fn func() (message, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	msg, err := fn()
	if err != nil {
		return err
	}
	if msg.Type != "" {
		h.publishLocked(msg)
	}
	return nil
}

// pipelineRun is one Transcribe call, from Start or Resume to Pause, Stop or the end of
// the source.
type pipelineRun struct {
	src       *countingSource
	cancel    context.CancelFunc
	done      chan struct{}
	err       error
	requested atomic.Bool // Pause/Stop/shutdown closed the source (vs. the source ending)
}

// liveSession is a session's hub plus its running pipeline, if any.
type liveSession struct {
	hub     *hub
	mu      sync.Mutex // serialises Start/Pause/Resume/Stop of this session
	run     *pipelineRun
	browser *browserSource              // current source of a browser-microphone room
	held    atomic.Pointer[storageView] // set while the hub holds text for storage (storage.go)
}

// manager owns every session's hub and pipeline goroutines.
type manager struct {
	s        *Server
	mu       sync.Mutex
	sessions map[string]*liveSession
	wg       sync.WaitGroup
	// runCtx is cancelled only when a shutdown's deadline passes: until then pipelines
	// are stopped by closing their sources, so they commit what they have.
	runCtx    context.Context
	cancelRun context.CancelFunc
	closing   bool
	watching  bool // the storage watcher runs (storage.go)
}

func newManager(s *Server) *manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &manager{s: s, sessions: map[string]*liveSession{}, runCtx: ctx, cancelRun: cancel}
}

func (m *manager) session(id string) *liveSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	ls, ok := m.sessions[id]
	if !ok {
		ls = &liveSession{hub: &hub{s: m.s, sessionID: id, epoch: newEpoch(), viewers: map[*viewer]struct{}{}, provisional: map[int]domain.Segment{}, open: map[int]string{}}}
		m.sessions[id] = ls
	}
	return ls
}

func (m *manager) pauseOrphans(ctx context.Context) error {
	cs, err := m.s.store.Consultations(ctx, store.ConsultationFilter{States: []string{store.StateRecording}, Limit: 10000})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	for _, c := range cs {
		_, err := m.s.store.MarkInterrupted(ctx, c.ID)
		if store.StorageFailure(err) {
			// The disk is full: start all the same, show the session paused, and mark it
			// once the disk takes writes (storage.go).
			ls := m.session(c.ID)
			ls.hub.mu.Lock()
			ls.hub.hold = &storageHold{target: store.StatePaused, audioSeconds: c.AudioSeconds, interrupted: true}
			ls.setHeldView()
			ls.hub.mu.Unlock()
			m.startStorageWatch()
			m.s.log.Error("session left recording not yet marked interrupted: the disk refuses writes", "session", c.ID, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("server: mark session left recording as interrupted: %w", err)
		}
		m.s.log.Info("session was recording when the server stopped: marked interrupted, paused until resumed", "session", c.ID)
	}
	return nil
}

func (m *manager) openSource(ctx context.Context, ls *liveSession, room store.Room) (domain.AudioSource, error) {
	if f, ok := m.s.deps.Sources[room.SourceKind]; ok {
		return f(ctx, room)
	}
	switch room.SourceKind {
	case store.SourceWAV:
		return m.s.wavFactory(ctx, room)
	case store.SourceBrowser:
		b := newBrowserSource()
		ls.browser = b
		return b, nil
	case store.SourceDevice:
		return nil, errors.New("audio devices are not available in this build of the server")
	case store.SourceAgent:
		return m.s.agents.openRun(room) // agents.go
	}
	return nil, fmt.Errorf("room %q has an unknown audio source kind %q", room.Name, room.SourceKind)
}

var errShuttingDown = errors.New("the server is shutting down")

// startRun opens the room's source and starts a pipeline goroutine on it. ls.mu is held.
func (m *manager) startRun(ctx context.Context, ls *liveSession, c store.Consultation) error {
	m.mu.Lock()
	closing := m.closing
	m.mu.Unlock()
	if closing {
		return errShuttingDown
	}
	room, err := m.s.store.Room(ctx, c.RoomID)
	if err != nil {
		return err
	}
	src, err := m.openSource(ctx, ls, room)
	if err != nil {
		return fmt.Errorf("%w: cannot open the room's audio: %w", store.ErrBadState, err)
	}
	runCtx, cancel := context.WithCancel(withRoom(m.runCtx, room.Name))
	if ms, ok := src.(interface{ Microphones() (diarize.Setup, bool) }); ok {
		if setup, ok := ms.Microphones(); ok {
			runCtx = diarize.WithSetup(runCtx, setup) // a room box says how its microphones are arranged
		}
	}
	src = m.s.spoolTee(c, src) // retention.go: also spooled, encrypted, when audio is retained
	if room.SourceKind == store.SourceAgent {
		runCtx = pipeline.WithoutCleanup(runCtx) // the agent cleaned the audio before sending it
	}
	run := &pipelineRun{src: &countingSource{AudioSource: src}, cancel: cancel, done: make(chan struct{})}
	ls.run = run
	offset := c.AudioSeconds
	m.wg.Add(3)
	go func() {
		defer m.wg.Done()
		m.heartbeat(run, c.ID)
	}()
	go func() { defer m.wg.Done(); m.meter(ls.hub, run, offset) }() // review.go: input level
	go func() {
		defer m.wg.Done()
		defer close(run.done)
		defer cancel()
		run.err = m.s.deps.Transcriber.Transcribe(runCtx, run.src, offset, func(ev domain.LiveEvent) { m.handleEvent(ls, ev) })
		run.src.Close()
		if run.err != nil {
			m.s.log.Error("transcription pipeline failed", "session", c.ID, "err", run.err)
		}
		if !run.requested.Load() {
			// The source ended by itself (end of a WAV file, device gone) or the pipeline
			// failed: end the run so the session does not claim to be recording.
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.endedByItself(ls, run, c.ID)
			}()
		}
	}()
	return nil
}

// heartbeat records that the session is alive every HeartbeatEvery until the run ends,
// so that a crash is dated by its last heartbeat (store.MarkInterrupted).
func (m *manager) heartbeat(run *pipelineRun, id string) {
	t := time.NewTicker(m.s.cfg.HeartbeatEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-run.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.s.cfg.HeartbeatEvery)
		err := m.s.store.Heartbeat(ctx, id)
		cancel()
		if err != nil && !failing {
			m.s.log.Warn("session heartbeat not recorded", "session", id, "err", err)
		}
		failing = err != nil
	}
}

func (m *manager) handleEvent(ls *liveSession, ev domain.LiveEvent) {
	h := ls.hub
	u := ev.Utterance
	// Machine text enters here: what a model emits is cleaned like what people type.
	ev.Segment.Text = cleantext.Line(ev.Segment.Text)
	ev.Refined = slices.Clone(ev.Refined)
	for i := range ev.Refined {
		ev.Refined[i].Text = cleantext.Line(ev.Refined[i].Text)
	}
	switch ev.Kind {
	case domain.EventProvisional:
		h.mu.Lock()
		h.provisional[u] = ev.Segment
		h.publishLocked(message{Type: "provisional", Utterance: &u, Segment: &liveSegment{store.Segment{
			Start: ev.Segment.Start, End: ev.Segment.End, Speaker: ev.Segment.Speaker, Text: ev.Segment.Text, Flags: ev.Segment.Flags}}})
		h.mu.Unlock()
	case domain.EventCommitted:
		m.commit(ls, ev) // storage.go: retried, held in memory if the disk refuses it
	case domain.EventRefined: // second pass (internal/secondpass): only unedited segments change
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := h.mutate(func() (message, error) {
			old, segs, err := m.s.store.ReplaceSecondPass(ctx, h.sessionID, ev.Replaces, ev.Refined)
			if err != nil || len(segs) == 0 {
				return message{}, err
			}
			return message{Type: "refined", Utterance: &u, Segments: segs, Replaces: old}, nil
		})
		if err != nil && !errors.Is(err, store.ErrReadOnly) {
			m.s.log.Warn("second-pass text not stored; the first-pass text stands", "session", h.sessionID, "utterance", u, "err", err)
		}
	}
}

// stopRunLocked closes the run's source and waits for the pipeline to commit and return.
// It returns the seconds of audio the run read. ls.mu is held.
func (m *manager) stopRunLocked(ctx context.Context, ls *liveSession) float64 {
	run := ls.run
	if run == nil {
		return 0
	}
	run.requested.Store(true)
	run.src.Close()
	select {
	case <-run.done:
	case <-ctx.Done():
		run.cancel() // abandon work in progress
		<-run.done
	}
	ls.run, ls.browser = nil, nil
	h := ls.hub
	h.mu.Lock()
	clear(h.provisional) // whatever was provisional is committed or gone now,
	if h.hold != nil {   // or held for storage, and still shown
		for _, p := range h.hold.pending {
			h.provisional[p.key] = p.seg
		}
	}
	clear(h.open) // a resumed run numbers its lines afresh
	h.mu.Unlock()
	return run.src.seconds()
}

func (m *manager) endedByItself(ls *liveSession, run *pipelineRun, id string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.run != run {
		return // Pause or Stop got there first
	}
	secs := m.stopRunLocked(context.Background(), ls)
	ctx := context.Background()
	c, err := m.s.store.Consultation(ctx, id)
	if err != nil {
		m.s.log.Error("session vanished", "session", id, "err", err)
		return
	}
	state, reason := store.StateStopped, "the audio source ended"
	if r, ok := run.src.AudioSource.(interface{ EndReason() string }); ok && r.EndReason() != "" {
		reason = r.EndReason() // e.g. a room agent away longer than its buffer
	}
	if run.err != nil {
		state, reason = store.StatePaused, "transcription failed; resume to try again"
	}
	m.setState(ctx, ls, id, state, c.AudioSeconds+secs, reason)
}

func (m *manager) setState(ctx context.Context, ls *liveSession, id, state string, audioSeconds float64, reason string) (store.Consultation, error) {
	var c store.Consultation
	err := ls.hub.mutate(func() (message, error) {
		var err error
		c, err = m.s.store.SetState(ctx, id, state, audioSeconds)
		if store.StorageFailure(err) && state != store.StateRecording {
			// Recording has stopped all the same: the state waits in memory until the disk
			// takes it (storage.go), and the page says why.
			m.s.storeFailed("state")
			m.holdStateLocked(ls, state, audioSeconds)
			c, err = m.s.store.Consultation(ctx, id)
			reason = StorageFailingReason
		}
		if err != nil {
			return message{}, err
		}
		view, err := m.s.viewOf(ctx, c)
		if err != nil {
			return message{}, err
		}
		return message{Type: "state", Session: &view, Reason: reason}, nil
	})
	if err != nil {
		m.s.log.Error("session state not saved", "session", id, "state", state, "err", err)
	}
	return c, err
}

// start begins recording a freshly created consultation.
func (m *manager) start(ctx context.Context, c store.Consultation) error {
	ls := m.session(c.ID)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if err := m.startRun(ctx, ls, c); err != nil {
		// Nothing is recording: say so in the database too.
		m.s.store.SetState(context.WithoutCancel(ctx), c.ID, store.StateStopped, 0)
		return err
	}
	return nil
}

// transition handles Pause, Resume and Stop.
func (m *manager) transition(ctx context.Context, id, action string) (store.Consultation, error) {
	ls := m.session(id)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	c, err := m.s.store.Consultation(ctx, id)
	if err != nil {
		return c, err
	}
	if c.State == store.StateApproved {
		return c, store.ErrReadOnly
	}
	if c, held, err := m.holdTransition(ls, c, action); held { // storage.go
		return c, err
	}
	// Waiting for the pipeline to commit must not be cut short by the client going away.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.s.cfg.ShutdownTimeout)
	defer cancel()
	switch action {
	case "pause":
		if c.State != store.StateRecording {
			return c, fmt.Errorf("%w: only a recording session can be paused (it is %s)", store.ErrBadState, c.State)
		}
		secs := m.stopRunLocked(wctx, ls)
		return m.setState(wctx, ls, id, store.StatePaused, c.AudioSeconds+secs, "paused by the clinician")
	case "resume":
		if c.State != store.StatePaused {
			return c, fmt.Errorf("%w: only a paused session can be resumed (it is %s)", store.ErrBadState, c.State)
		}
		if err := m.s.roomForRecording(); err != nil {
			return c, err
		}
		if err := m.startRun(ctx, ls, c); err != nil {
			return c, err
		}
		rc, err := m.setState(wctx, ls, id, store.StateRecording, -1, "resumed by the clinician")
		if err != nil { // not recorded as recording: do not record
			m.stopRunLocked(wctx, ls)
		}
		return rc, err
	case "stop":
		if c.State == store.StateStopped {
			return c, nil
		}
		secs := m.stopRunLocked(wctx, ls)
		return m.setState(wctx, ls, id, store.StateStopped, c.AudioSeconds+secs, "stopped by the clinician")
	}
	return c, fmt.Errorf("%w: unknown action %q", store.ErrInvalid, action)
}

// browserSourceOf returns the source a browser-microphone websocket should feed.
func (m *manager) browserSourceOf(id string) *browserSource {
	ls := m.session(id)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.browser
}

// shutdown pauses every recording session, letting pipelines commit until ctx's
// deadline, then abandons what is left, and drops all viewers.
func (m *manager) shutdown(ctx context.Context) {
	m.mu.Lock()
	m.closing = true
	var all []*liveSession
	for _, ls := range m.sessions {
		all = append(all, ls)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, ls := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls.mu.Lock()
			defer ls.mu.Unlock()
			if ls.run == nil {
				return
			}
			secs := m.stopRunLocked(ctx, ls)
			id := ls.hub.sessionID
			c, err := m.s.store.Consultation(context.Background(), id)
			if err == nil && c.State == store.StateRecording {
				m.setState(context.Background(), ls, id, store.StatePaused, c.AudioSeconds+secs, "the server is shutting down")
			}
		}()
	}
	wg.Wait()
	if !m.flushHolds() { // a last try: what is still held dies with the process
		m.s.log.Error("transcript text held for storage could not be saved before shutdown", "segments", m.unsaved())
	}
	m.cancelRun()
	m.wg.Wait()
	if m.s.agents != nil {
		m.s.agents.close()
	}
	for _, ls := range all {
		h := ls.hub
		h.mu.Lock()
		for v := range h.viewers {
			h.dropLocked(v, "the server is shutting down")
		}
		h.mu.Unlock()
	}
}
