package server

// Audio retention and scheduled transcript purge.
//
// With Config.AudioRetention "until-approved" every chunk a session's source yields is
// also appended, mixed to mono, to that session's encrypted spool (internal/spool: one
// random AES-256-GCM key per session, held only in this process), so the clinician can
// re-listen to a segment during review. The spool outlives Pause/Resume and is destroyed
// — key forgotten, file removed, one audio_deleted audit event — on approval, on
// "discard audio", when its TTL runs out, and on shutdown. A spool file found at start
// belongs to a process that died with its key, so it is unreadable; it is removed and
// recorded as reason "crash-sweep". With the default "none" nothing here touches audio.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/audio"
	"scribe/internal/audit"
	"scribe/internal/domain"
	"scribe/internal/spool"
	"scribe/internal/store"
)

// Audio retention modes (config audio.retention).
const (
	RetentionNone          = "none"
	RetentionUntilApproved = "until-approved"
)

// Reasons recorded in audio_deleted audit events.
const (
	AudioDeletedApproved   = "approved"
	AudioDeletedDiscarded  = "discarded"
	AudioDeletedTTL        = "ttl"
	AudioDeletedShutdown   = "shutdown"
	AudioDeletedCrashSweep = "crash-sweep"
)

// maxRelisten bounds one re-listen request: segments are at most tens of seconds.
const maxRelisten = 5 * time.Minute

// DefaultPurgeInterval is how often a running server looks for transcripts to purge.
const DefaultPurgeInterval = 6 * time.Hour

// retention owns the held audio of every session and the goroutines that expire it and
// purge old transcripts.
type retention struct {
	mu   sync.Mutex
	held map[string]*heldAudio // session id → its spool, while held
	// ended marks sessions whose audio was deleted in this process: they never spool
	// again (a discard is final, an approved session cannot record).
	ended map[string]string

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// heldAudio is one session's spool plus where each record sits on the session timeline.
type heldAudio struct {
	mu        sync.Mutex
	sessionID string
	sp        *spool.Spool // nil once destroyed
	chunks    []chunkRef   // in timeline order
	failed    bool         // an append failed: logged once
}

type chunkRef struct {
	id    string
	start int64 // first sample on the session timeline (16 kHz)
	n     int
}

// setUpRetention checks the retention settings, sweeps spools left by a dead process
// (recording each in the audit trail) and starts the TTL and purge goroutines, which
// stopRetention ends. Called by New once the store is open.
func (s *Server) setUpRetention(ctx context.Context) error {
	cfg := &s.cfg
	switch cfg.AudioRetention {
	case "":
		cfg.AudioRetention = RetentionNone
	case RetentionNone, RetentionUntilApproved:
	default:
		return fmt.Errorf("server: audio retention %q must be %s or %s", cfg.AudioRetention, RetentionNone, RetentionUntilApproved)
	}
	if cfg.AudioTTL <= 0 {
		cfg.AudioTTL = spool.MaxTTL
	}
	if cfg.AudioTTL > spool.MaxTTL {
		return fmt.Errorf("server: audio retention TTL %v is longer than the %v maximum", cfg.AudioTTL, spool.MaxTTL)
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = filepath.Join(cfg.DataDir, "spool")
	}
	if cfg.TranscriptRetention <= 0 {
		cfg.TranscriptRetention = store.DefaultTranscriptRetention
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = DefaultPurgeInterval
	}
	s.ret = &retention{held: map[string]*heldAudio{}, ended: map[string]string{}}

	// Swept whatever the mode: audio.retention may have been switched off since the crash.
	swept, err := spool.Sweep(cfg.SpoolDir)
	for _, sw := range swept {
		if aerr := s.store.Audit(ctx, audit.Event{Actor: "system", Action: audit.ActionAudioDeleted, SessionID: sw.SessionID,
			Details: map[string]any{"bytes": sw.Bytes, "reason": AudioDeletedCrashSweep, "spool_modified": sw.Modified.UTC().Format(time.RFC3339)}}); aerr != nil {
			return fmt.Errorf("server: record swept audio spool: %w", aerr)
		}
		s.log.Info("audio spool left by a stopped process removed; its key died with that process", "session", sw.SessionID, "bytes", sw.Bytes)
	}
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}

	rctx, cancel := context.WithCancel(context.Background())
	s.ret.cancel = cancel
	if cfg.AudioRetention == RetentionUntilApproved {
		every := min(max(cfg.AudioTTL/8, 10*time.Millisecond), time.Minute)
		s.ret.wg.Add(1)
		go func() {
			defer s.ret.wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case now := <-t.C:
					s.expireAudio(rctx, now)
				}
			}
		}()
	}
	s.ret.wg.Add(1)
	go func() {
		defer s.ret.wg.Done()
		t := time.NewTicker(cfg.PurgeInterval)
		defer t.Stop()
		for {
			if n, err := s.purgeTranscripts(rctx); err != nil && rctx.Err() == nil {
				s.log.Error("scheduled transcript purge failed", "err", err)
			} else if n > 0 {
				s.log.Info("scheduled transcript purge", "sessions", n)
			}
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// stopRetention stops the retention goroutines and destroys every spool still held
// (reason shutdown). Call it after the pipelines have stopped and before the store
// closes; it runs once.
func (s *Server) stopRetention() {
	if s.ret == nil {
		return
	}
	s.ret.stopOnce.Do(func() {
		if s.ret.cancel != nil {
			s.ret.cancel()
		}
		s.ret.wg.Wait()
		s.ret.mu.Lock()
		var ids []string
		for id := range s.ret.held {
			ids = append(ids, id)
		}
		s.ret.mu.Unlock()
		for _, id := range ids {
			if _, err := s.deleteAudio(store.WithActor(context.Background(), "system"), id, AudioDeletedShutdown); err != nil {
				s.log.Error("audio spool not deleted at shutdown", "session", id, "err", err)
			}
		}
	})
}

// purgeTranscripts removes transcripts past retention (store.PurgeTranscript records
// each in the audit trail) and returns how many sessions it purged.
func (s *Server) purgeTranscripts(ctx context.Context) (int, error) {
	ps, err := s.store.PurgeCandidates(ctx, s.cfg.TranscriptRetention)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ps {
		if err := s.store.PurgeTranscript(store.WithActor(ctx, "system"), p); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// expireAudio deletes every spool older than the TTL at now.
func (s *Server) expireAudio(ctx context.Context, now time.Time) {
	s.ret.mu.Lock()
	var due []string
	for id, h := range s.ret.held {
		h.mu.Lock()
		if h.sp != nil && h.sp.Expired(now) {
			due = append(due, id)
		}
		h.mu.Unlock()
	}
	s.ret.mu.Unlock()
	for _, id := range due {
		if _, err := s.deleteAudio(store.WithActor(ctx, "system"), id, AudioDeletedTTL); err != nil {
			s.log.Error("expired audio spool not deleted", "session", id, "err", err)
		}
	}
}

// spoolTee returns src wrapped so that what it yields is also spooled for the session,
// when audio is retained; otherwise src itself. A spool that cannot be opened leaves the
// session recording without re-listening (logged): losing the transcript would be worse.
func (s *Server) spoolTee(c store.Consultation, src domain.AudioSource) domain.AudioSource {
	if s.ret == nil || s.cfg.AudioRetention != RetentionUntilApproved {
		return src
	}
	s.ret.mu.Lock()
	defer s.ret.mu.Unlock()
	if _, ended := s.ret.ended[c.ID]; ended {
		return src
	}
	h := s.ret.held[c.ID]
	if h == nil {
		sp, err := spool.Open(s.cfg.SpoolDir, c.ID, s.cfg.AudioTTL)
		if err != nil {
			s.log.Error("audio spool not opened: this session's audio cannot be re-listened to", "session", c.ID, "err", err)
			return src
		}
		h = &heldAudio{sessionID: c.ID, sp: sp}
		s.ret.held[c.ID] = h
	}
	return &spoolingSource{AudioSource: src, held: h, srv: s, pos: int64(math.Round(c.AudioSeconds * domain.SampleRate))}
}

// spoolingSource appends every chunk it passes on to the session's spool.
type spoolingSource struct {
	domain.AudioSource
	held *heldAudio
	srv  *Server
	pos  int64 // next sample's place on the session timeline
}

func (t *spoolingSource) Read(ctx context.Context) ([][]float32, error) {
	chans, err := t.AudioSource.Read(ctx)
	if len(chans) > 0 && len(chans[0]) > 0 {
		mono := domain.MixDown(chans)
		if aerr := t.held.append(t.pos, mono); aerr != nil {
			t.srv.log.Error("audio not spooled: re-listening to this part will be unavailable", "session", t.held.sessionID, "err", aerr)
		}
		t.pos += int64(len(chans[0]))
	}
	return chans, err
}

// append spools one chunk; after the spool is destroyed it does nothing. Only the first
// failure is returned, so a full disk does not flood the log.
func (h *heldAudio) append(start int64, samples []float32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sp == nil {
		return nil
	}
	id := "c" + strconv.Itoa(len(h.chunks))
	if err := h.sp.Append(id, float64(start)/domain.SampleRate, samples); err != nil {
		if h.failed {
			return nil
		}
		h.failed = true
		return err
	}
	h.chunks = append(h.chunks, chunkRef{id: id, start: start, n: len(samples)})
	return nil
}

// read decrypts the samples between start and end (in samples on the session timeline);
// parts never spooled are silence. ok is false when nothing in the range was spooled.
func (h *heldAudio) read(start, end int64) (out []float32, ok bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sp == nil {
		return nil, false, spool.ErrDestroyed
	}
	out = make([]float32, end-start)
	for _, c := range h.chunks {
		cs, ce := c.start, c.start+int64(c.n)
		if ce <= start || cs >= end {
			continue
		}
		x, err := h.sp.Read(c.id)
		if err != nil {
			return nil, false, err
		}
		lo, hi := max(cs, start), min(ce, end)
		copy(out[lo-start:hi-start], x[lo-cs:hi-cs])
		clear(x)
		ok = true
	}
	return out, ok, nil
}

// audioHeld reports whether a session's audio can be re-listened to now.
func (s *Server) audioHeld(id string) bool {
	if s.ret == nil {
		return false
	}
	s.ret.mu.Lock()
	h := s.ret.held[id]
	s.ret.mu.Unlock()
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sp != nil && len(h.chunks) > 0
}

// deleteAudio destroys a session's spool and records audio_deleted (session, bytes,
// reason; the entry's time is the deletion's). The actor comes from ctx. It reports
// whether there was a spool. The key is gone even when the event cannot be written,
// so the error then says the deletion happened but is not evidenced.
func (s *Server) deleteAudio(ctx context.Context, id, reason string) (bool, error) {
	if s.ret == nil {
		return false, nil
	}
	s.ret.mu.Lock()
	h := s.ret.held[id]
	delete(s.ret.held, id)
	s.ret.ended[id] = reason
	s.ret.mu.Unlock()
	if h == nil {
		return false, nil
	}
	h.mu.Lock()
	sp := h.sp
	h.sp, h.chunks = nil, nil
	h.mu.Unlock()
	if sp == nil {
		return false, nil
	}
	size, derr := sp.Destroy(reason)
	if errors.Is(derr, spool.ErrDestroyed) {
		return false, nil
	}
	details := map[string]any{"bytes": size, "reason": reason}
	if derr != nil {
		details["file_left"] = true // key destroyed: the bytes left are unreadable
	}
	if err := s.store.Audit(context.WithoutCancel(ctx), audit.Event{Action: audit.ActionAudioDeleted, SessionID: id, Details: details}); err != nil {
		return true, fmt.Errorf("audio of session %s deleted (%s) but not recorded in the audit trail: %w", id, reason, err)
	}
	return true, derr
}

// audioRoute serves GET /api/sessions/{id}/audio: a websocket upgrade is the browser
// microphone feeding a recording session (ws.go); a plain GET with start and end is a
// re-listen of that range during review.
func (s *Server) audioRoute(w http.ResponseWriter, r *http.Request) error {
	if websocket.IsWebSocketUpgrade(r) {
		return s.audioSocket(w, r)
	}
	return s.relisten(w, r)
}

// relisten returns seconds start..end of the session's held audio as a 16 kHz mono
// 16-bit WAV, decrypted in memory, for the session's own clinician; each listen is an
// audit event.
func (s *Server) relisten(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	startS, err1 := strconv.ParseFloat(q.Get("start"), 64)
	endS, err2 := strconv.ParseFloat(q.Get("end"), 64)
	if err1 != nil || err2 != nil || math.IsNaN(startS) || math.IsNaN(endS) || startS < 0 || endS <= startS {
		return errf(http.StatusBadRequest, "give the range to play as ?start=S&end=E in seconds, with 0 ≤ start < end")
	}
	if endS-startS > maxRelisten.Seconds() {
		return errf(http.StatusBadRequest, "at most %v can be played at once", maxRelisten)
	}
	if s.cfg.AudioRetention != RetentionUntilApproved {
		return errf(http.StatusNotFound, "no audio is kept on this server (audio.retention is %s): audio is released once transcribed", s.cfg.AudioRetention)
	}
	s.ret.mu.Lock()
	h := s.ret.held[c.ID]
	s.ret.mu.Unlock()
	if h == nil {
		return s.audioGone(r.Context(), c.ID)
	}
	from, to := int64(math.Round(startS*domain.SampleRate)), int64(math.Round(endS*domain.SampleRate))
	samples, ok, err := h.read(from, to)
	if errors.Is(err, spool.ErrDestroyed) {
		return s.audioGone(r.Context(), c.ID)
	}
	if err != nil {
		return err
	}
	if !ok {
		return errf(http.StatusNotFound, "no audio is held for %.2f–%.2f s of this session", startS, endS)
	}
	// The listen is on record before any audio leaves.
	if err := s.store.Audit(r.Context(), audit.Event{Action: audit.ActionDataAccess, SessionID: c.ID,
		Details: map[string]any{"purpose": "audio_relisten", "start": startS, "end": endS}}); err != nil {
		return err
	}
	var buf bytes.Buffer
	err = audio.WriteWAV(&buf, domain.SampleRate, [][]float32{samples})
	clear(samples)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
	clear(buf.Bytes())
	return nil
}

// audioGone explains why a session has no audio: deleted (when and why, from the audit
// trail) or never kept.
func (s *Server) audioGone(ctx context.Context, id string) error {
	entries, err := s.store.AuditEntries(ctx, store.AuditFilter{SessionID: id, Limit: 5000})
	if err != nil {
		return err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Action != string(audit.ActionAudioDeleted) {
			continue
		}
		var d struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(e.Details, &d) // a reason-less entry still proves the deletion
		return errf(http.StatusConflict, "the audio of this session was deleted at %s (%s)", e.At, d.Reason)
	}
	return errf(http.StatusNotFound, "no audio was kept for this session")
}

// discardAudio is POST /api/sessions/{id}/discard-audio: the clinician deletes the held
// audio now. It is final for the session: later recording is not spooled.
func (s *Server) discardAudio(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	had, err := s.deleteAudio(r.Context(), c.ID, AudioDeletedDiscarded)
	if err != nil {
		return err
	}
	if !had {
		return errf(http.StatusConflict, "no audio is held for this session")
	}
	var view sessionView
	err = s.live.session(c.ID).hub.mutate(func() (message, error) {
		var err error
		if view, err = s.sessionView(r.Context(), c.ID); err != nil {
			return message{}, err
		}
		return message{Type: "state", Session: &view, Reason: "audio discarded by the clinician"}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}
