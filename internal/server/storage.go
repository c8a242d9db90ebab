package server

// A full or failing data disk during a live session (issue 14).
//
// A committed segment the database refuses is retried (commitRetryWaits). If it still
// fails the session goes on hold: the segment, and everything committed after it, is kept
// in memory in order and shown on the page as unsaved (provisional) text; recording
// pauses, with a `state` message whose reason says storage is failing; and the storage
// watcher writes the held text every StorageRetryEvery until the disk takes it, then
// records the pause. If the decoder had to be abandoned while pausing, a gap marker
// (flag untranscribed) covers the audio it held. New sessions do not start, and held ones
// do not resume, until the disk works; reading and logging in go on (store.AuditOrDefer,
// store.CreateLogin).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"scribe/internal/domain"
	"scribe/internal/store"
)

// StorageFailingReason is the reason a `state` message gives when a session pauses
// because the disk refuses its transcript.
const StorageFailingReason = "storage is failing: the server's disk is full or failing, so recording is paused. " +
	"The transcript so far is kept and is saved as soon as the disk takes it again; nothing is lost. Tell practice IT"

// storageRecoveredReason is the reason once the held transcript is saved.
const storageRecoveredReason = "storage works again and the whole transcript is saved; press Resume to carry on recording"

// commitRetryWaits are the waits before each attempt to store a committed segment.
var commitRetryWaits = []time.Duration{0, 200 * time.Millisecond, time.Second, 2 * time.Second}

// storageHold is a session's transcript the database refused, kept in memory, in order,
// until the storage watcher can write it. Guarded by the hub's lock.
type storageHold struct {
	pending      []pendingSegment
	target       string  // the state to record once saved: paused, or stopped if the clinician stopped meanwhile
	audioSeconds float64 // audio captured, to record with the state; -1 until the recording has stopped
	interrupted  bool    // found recording at start: to be marked interrupted (store.MarkInterrupted)
}

type pendingSegment struct {
	key int // the utterance it is shown under (provisional) until saved
	seg domain.Segment
	// extends is the stored segment of the line this piece continues (the pipeline
	// commits a line's words piece by piece, domain.LiveEvent.Continues); "" when the
	// piece starts a segment of its own.
	extends   string
	continues bool // a later piece of the same line: joins the held piece before it
	complete  bool // the line's last piece
}

// storageView is what the session's view shows of a hold; read without the hub's lock.
type storageView struct {
	state   string
	unsaved int
}

// setHeldView publishes the hold's summary for viewOf. h.mu is held.
func (ls *liveSession) setHeldView() {
	hold := ls.hub.hold
	if hold == nil {
		ls.held.Store(nil)
		return
	}
	ls.held.Store(&storageView{state: hold.target, unsaved: len(hold.pending)})
}

// holdLocked keeps p in memory under its key and returns the message showing it as
// unsaved text: a piece continuing a line whose earlier piece is held joins it. h.mu is
// held.
func (m *manager) holdLocked(ls *liveSession, p pendingSegment) message {
	h := ls.hub
	if h.hold == nil {
		h.hold = &storageHold{target: store.StatePaused, audioSeconds: -1}
	}
	if n := len(h.hold.pending); p.continues && n > 0 && h.hold.pending[n-1].key == p.key && !h.hold.pending[n-1].complete {
		last := &h.hold.pending[n-1]
		last.seg.Extend(p.seg)
		last.complete = p.complete
		p = *last
	} else {
		h.hold.pending = append(h.hold.pending, p)
	}
	h.provisional[p.key] = p.seg
	ls.setHeldView()
	return provisionalMessage(p.key, p.seg)
}

// storeLocked writes a committed piece: it extends its line's stored segment or starts a
// segment of its own, and notes the segment while the line goes on. h.mu is held.
func (m *manager) storeLocked(ctx context.Context, h *hub, p pendingSegment) (store.Segment, error) {
	var g store.Segment
	var err error
	if p.extends != "" {
		g, err = m.s.store.ExtendCommitted(ctx, h.sessionID, p.extends, p.seg)
	} else {
		g, err = m.s.store.InsertCommitted(ctx, h.sessionID, p.seg)
	}
	if err != nil {
		return g, err
	}
	if p.complete {
		delete(h.open, p.key)
	} else {
		h.open[p.key] = g.ID
	}
	return g, nil
}

// holdStateLocked keeps a state change (paused or stopped) the database refused, with
// the audio captured so far, for the storage watcher to record. A stop is not turned back
// into a pause. h.mu is held.
func (m *manager) holdStateLocked(ls *liveSession, state string, audioSeconds float64) {
	h := ls.hub
	if h.hold == nil {
		h.hold = &storageHold{target: state, audioSeconds: audioSeconds}
	}
	if h.hold.target != store.StateStopped {
		h.hold.target = state
	}
	if audioSeconds >= 0 {
		h.hold.audioSeconds = audioSeconds
	}
	ls.setHeldView()
	m.startStorageWatch()
}

func provisionalMessage(key int, seg domain.Segment) message {
	return message{Type: "provisional", Utterance: &key, Segment: &liveSegment{store.Segment{
		Start: seg.Start, End: seg.End, Speaker: seg.Speaker, Text: seg.Text, Flags: seg.Flags}}}
}

// commit stores a piece of a line the pipeline committed and publishes it. A failing
// store is retried; if it still fails the piece is held and the session paused for
// storage.
func (m *manager) commit(ls *liveSession, ev domain.LiveEvent) {
	h := ls.hub
	u := ev.Utterance
	p := pendingSegment{key: u, seg: ev.Segment, continues: ev.Continues, complete: ev.Audio != nil}
	var err error
	for i, wait := range commitRetryWaits {
		time.Sleep(wait)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // stored even while shutting down
		err = h.mutate(func() (message, error) {
			if p.continues {
				p.extends = h.open[u]
			}
			if h.hold != nil { // earlier text is still unsaved: this waits behind it
				return m.holdLocked(ls, p), nil
			}
			g, err := m.storeLocked(ctx, h, p)
			if err != nil {
				return message{}, err
			}
			delete(h.provisional, u)
			return message{Type: "committed", Utterance: &u, Segment: &liveSegment{g}}, nil
		})
		cancel()
		if err == nil || errors.Is(err, store.ErrReadOnly) || errors.Is(err, store.ErrNotFound) {
			break
		}
		m.s.storeFailed("segment")
		m.s.log.Warn("committed segment not stored; retrying", "session", h.sessionID, "utterance", u, "attempt", i+1, "err", err)
	}
	switch {
	case err == nil:
		return
	case errors.Is(err, store.ErrReadOnly), errors.Is(err, store.ErrNotFound):
		m.s.log.Error("committed segment not stored: the session no longer takes text", "session", h.sessionID, "utterance", u, "err", err)
		return
	}
	m.s.log.Error("committed segment not stored; kept in memory and the session paused until the disk takes it", "session", h.sessionID, "utterance", u, "err", err)
	h.mutate(func() (message, error) { return m.holdLocked(ls, p), nil })
	m.startStorageWatch()
	m.pauseForStorage(ls)
}

// pauseForStorage stops the session's recording (in its own goroutine: it waits for the
// pipeline, which may be the caller) and tells its viewers why. Committed text the
// pipeline still delivers is held behind the rest.
func (m *manager) pauseForStorage(ls *liveSession) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ls.mu.Lock()
		defer ls.mu.Unlock()
		h := ls.hub
		secs, abandoned := 0.0, false
		if run := ls.run; run != nil {
			ctx, cancel := context.WithTimeout(context.Background(), m.s.cfg.ShutdownTimeout)
			secs = m.stopRunLocked(ctx, ls)
			abandoned = ctx.Err() != nil || run.err != nil
			cancel()
		}
		ctx := context.Background()
		c, err := m.s.store.Consultation(ctx, h.sessionID) // reading needs no space
		if err != nil {
			m.s.log.Error("session not paused for storage", "session", h.sessionID, "err", err)
			return
		}
		audio := c.AudioSeconds + secs
		lastEnd := c.AudioSeconds
		if segs, err := m.s.store.Segments(ctx, h.sessionID, true); err == nil && len(segs) > 0 {
			lastEnd = max(lastEnd, segs[len(segs)-1].End)
		}
		h.mu.Lock()
		if h.hold == nil { // all saved meanwhile: record the pause the ordinary way
			h.mu.Unlock()
			m.setState(ctx, ls, h.sessionID, store.StatePaused, audio, "paused: the disk refused the transcript for a moment; everything is saved")
			return
		}
		defer h.mu.Unlock()
		hold := h.hold
		if hold.audioSeconds < 0 {
			hold.audioSeconds = audio
		}
		for _, p := range hold.pending {
			lastEnd = max(lastEnd, p.seg.End)
		}
		if abandoned && audio-lastEnd > 0.05 {
			// The decoder was given up on: what it held is a visible gap, not a silent one.
			gap := domain.Segment{Start: lastEnd, End: audio, Speaker: domain.SpeakerUnknown, Flags: []domain.Flag{domain.FlagUntranscribed}}
			h.publishLocked(m.holdLocked(ls, pendingSegment{key: -1 - len(hold.pending), seg: gap, complete: true}))
		}
		view, err := m.s.viewOf(ctx, c)
		if err != nil {
			m.s.log.Error("session view", "session", h.sessionID, "err", err)
			return
		}
		h.publishLocked(message{Type: "state", Session: &view, Reason: StorageFailingReason})
		// A page drops provisional text when the state leaves recording: show the held text again.
		for _, p := range hold.pending {
			h.publishLocked(provisionalMessage(p.key, p.seg))
		}
	}()
}

// startStorageWatch starts the storage watcher unless it runs.
func (m *manager) startStorageWatch() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watching || m.closing {
		return
	}
	m.watching = true
	m.wg.Add(1)
	go m.storageWatch()
}

// storageWatch writes what the disk refused — held transcripts, then the store's deferred
// logins and audit entries — every StorageRetryEvery until nothing is left.
func (m *manager) storageWatch() {
	defer m.wg.Done()
	t := time.NewTicker(m.s.cfg.StorageRetryEvery)
	defer t.Stop()
	for {
		select {
		case <-m.runCtx.Done():
			m.mu.Lock()
			m.watching = false
			m.mu.Unlock()
			return
		case <-t.C:
		}
		saved := m.flushHolds()
		ctx, cancel := context.WithTimeout(m.runCtx, 10*time.Second)
		left, err := m.s.store.FlushDeferred(ctx)
		cancel()
		if err != nil && !store.StorageFailure(err) {
			m.s.log.Error("deferred logins and audit entries not written", "err", err)
		}
		m.mu.Lock()
		if saved && left == 0 && m.heldLocked() == 0 {
			m.watching = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
	}
}

// heldLocked is how many sessions have a hold. m.mu is held.
func (m *manager) heldLocked() int {
	n := 0
	for _, ls := range m.sessions {
		if ls.held.Load() != nil {
			n++
		}
	}
	return n
}

// unsaved is how many committed segments wait in memory for the disk (for /metrics).
func (m *manager) unsaved() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, ls := range m.sessions {
		if v := ls.held.Load(); v != nil {
			n += v.unsaved
		}
	}
	return n
}

// storageViewOf is the hold of session id, if any, without creating a live session.
func (m *manager) storageViewOf(id string) *storageView {
	m.mu.Lock()
	ls := m.sessions[id]
	m.mu.Unlock()
	if ls == nil {
		return nil
	}
	return ls.held.Load()
}

// flushHolds tries to write every held transcript; it reports whether none is left.
func (m *manager) flushHolds() bool {
	m.mu.Lock()
	var held []*liveSession
	for _, ls := range m.sessions {
		if ls.held.Load() != nil {
			held = append(held, ls)
		}
	}
	m.mu.Unlock()
	done := true
	for _, ls := range held {
		done = m.flushHold(ls) && done
	}
	return done
}

// flushHold writes a session's held segments in order, then the state the session is in;
// it reports whether the hold is gone.
func (m *manager) flushHold(ls *liveSession) bool {
	h := ls.hub
	ctx, cancel := context.WithTimeout(m.runCtx, 10*time.Second)
	defer cancel()
	h.mu.Lock()
	for h.hold != nil && len(h.hold.pending) > 0 {
		p := h.hold.pending[0]
		g, err := m.storeLocked(ctx, h, p)
		if errors.Is(err, store.ErrReadOnly) || errors.Is(err, store.ErrNotFound) {
			m.s.log.Error("held segment can no longer be stored", "session", h.sessionID, "err", err)
		} else if err != nil {
			m.s.storeFailed("segment")
			h.mu.Unlock()
			return false
		} else {
			key := p.key
			h.publishLocked(message{Type: "committed", Utterance: &key, Segment: &liveSegment{g}})
		}
		h.hold.pending = h.hold.pending[1:]
		delete(h.provisional, p.key)
		ls.setHeldView()
	}
	ready := h.hold == nil || h.hold.interrupted || h.hold.audioSeconds >= 0
	h.mu.Unlock()
	if !ready {
		return false // the recording is still being stopped; its state comes next round
	}
	ls.mu.Lock() // the state changes beside Pause, Resume and Stop
	defer ls.mu.Unlock()
	h.mu.Lock()
	hold := h.hold
	h.mu.Unlock()
	if hold == nil {
		return true
	}
	var c store.Consultation
	var err error
	if hold.interrupted {
		c, err = m.s.store.MarkInterrupted(ctx, h.sessionID)
	} else {
		c, err = m.s.store.SetState(ctx, h.sessionID, hold.target, hold.audioSeconds)
	}
	if store.StorageFailure(err) {
		m.s.storeFailed("state")
		return false
	}
	if err != nil {
		m.s.log.Error("state of a session held for storage not recorded", "session", h.sessionID, "err", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = nil
	ls.setHeldView()
	if err == nil {
		if view, err := m.s.viewOf(ctx, c); err == nil {
			h.publishLocked(message{Type: "state", Session: &view, Reason: storageRecoveredReason})
		}
	}
	m.s.log.Info("transcript held for storage saved", "session", h.sessionID, "state", c.State)
	return true
}

// holdTransition handles Pause, Resume and Stop of a session held for storage; handled
// is false when the session has no hold. ls.mu is held.
func (m *manager) holdTransition(ls *liveSession, c store.Consultation, action string) (store.Consultation, bool, error) {
	h := ls.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold == nil {
		return c, false, nil
	}
	switch action {
	case "resume":
		return c, true, fmt.Errorf("%w: the transcript so far is not saved yet; resume once the disk takes it (practice IT: free space on the data disk)", store.ErrStorage)
	case "stop":
		h.hold.target = store.StateStopped
		ls.setHeldView()
		if view, err := m.s.viewOf(context.Background(), c); err == nil {
			h.publishLocked(message{Type: "state", Session: &view, Reason: "stopped by the clinician; saved as soon as the disk takes it"})
		}
	}
	return c, true, nil // pause: already paused
}

// storeFailed counts a write the disk refused in /metrics.
func (s *Server) storeFailed(kind string) {
	if m := s.deps.Safety.Metrics; m != nil {
		m.StoreFailure(kind)
	}
}

// roomForRecording refuses a start or resume while the disk is failing or has less free
// space than the practice's floor.
func (s *Server) roomForRecording() error {
	if s.cfg.MinFreeBytes > 0 {
		free, err := store.FreeBytes(s.cfg.DataDir)
		if err != nil {
			return err
		}
		if free < s.cfg.MinFreeBytes {
			return errf(http.StatusInsufficientStorage, "cannot start recording: the server's data disk has %d MB free, less than the %d MB the practice keeps free (storage.min_free_mb); ask practice IT to free space",
				free>>20, s.cfg.MinFreeBytes>>20)
		}
	}
	s.live.mu.Lock()
	held := s.live.heldLocked()
	s.live.mu.Unlock()
	if held > 0 {
		return errf(http.StatusInsufficientStorage, "cannot record: %s", StorageFailingReason)
	}
	return nil
}
