// Package secondpass re-transcribes committed utterances with a larger model when the box
// has nothing live to do, so the clinician reviews better text. It wraps the live
// transcriber: every committed utterance's audio is kept in memory (never on disk) in a
// bounded queue, decoded by the larger model at the lowest priority of the live
// scheduler, and sent back to the session as a "refined" event, which the server applies
// only to segments the clinician has not edited.
package secondpass

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"scribe/internal/domain"
	"scribe/internal/transcribe"
)

// Live is the live transcriber being wrapped (server.Transcriber).
type Live interface {
	Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error
}

// Refiner decodes one utterance with the second-pass model.
type Refiner interface {
	Transcribe(ctx context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error)
}

// Idler runs work at the lowest priority of the live scheduler (transcribe.Engine.WhenIdle).
type Idler interface {
	WhenIdle(ctx context.Context, quiet time.Duration, fn func(ctx context.Context) error) error
}

// Config bounds the second pass.
type Config struct {
	// MaxQueued is how many utterances' audio may wait for the second pass; past it new
	// ones are not refined (their first-pass text stands). 0 means 32.
	MaxQueued int
	// Quiet is how long the live scheduler must have been idle before a refinement
	// starts, so refinements do not start and get preempted between every two live
	// decodes. 0 means one second.
	Quiet time.Duration
	// MaxAttempts bounds how often one refinement is preempted and retried before it is
	// dropped. 0 means 5.
	MaxAttempts int
	Logger      *slog.Logger
}

// Stats counts what happened to queued refinements.
type Stats struct {
	Queued    int `json:"queued"`    // waiting now
	Refined   int `json:"refined"`   // decoded and sent to the session
	Dropped   int `json:"dropped"`   // refused because the queue was full, or preempted too often
	Cancelled int `json:"cancelled"` // their session's transcription was abandoned
	Preempted int `json:"preempted"` // decodes interrupted by live work (then retried)
	Failed    int `json:"failed"`
}

// run is one live Transcribe call. Its refinements outlive a graceful end (Pause, Stop,
// the source ending: "after the session stops" is when most are done) but not an
// abandoned one (its context cancelled, or the pipeline failing).
type run struct {
	ctx    context.Context
	cancel context.CancelFunc
	emit   func(domain.LiveEvent)
}

type job struct {
	run      *run
	u        domain.Utterance // the audio, on the stream's timeline
	offset   float64
	first    []domain.Segment // the committed segments it replaces (session timeline)
	attempts int
}

// Service is the second pass. Close stops it and drops what is queued.
type Service struct {
	cfg     Config
	live    Live
	refiner Refiner
	idle    Idler

	mu     sync.Mutex
	queue  []*job
	stats  Stats
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// New starts the second pass's worker goroutine (stopped by Close).
func New(cfg Config, live Live, refiner Refiner, idle Idler) (*Service, error) {
	if live == nil || refiner == nil || idle == nil {
		return nil, errors.New("secondpass: live transcriber, refiner and idler are required")
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 32
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, live: live, refiner: refiner, idle: idle, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go s.work()
	return s, nil
}

// Close stops the worker (cancelling a refinement in progress) and drops the queue.
func (s *Service) Close() {
	s.cancel()
	<-s.done
	s.mu.Lock()
	s.stats.Cancelled += len(s.queue)
	s.queue = nil
	s.stats.Queued = 0
	s.mu.Unlock()
}

// Stats is a snapshot of the counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Queued = len(s.queue)
	return st
}

// Transcribe runs the live transcription, passing every event on unchanged and first,
// and queues each committed utterance for the second pass. emit may be called for this
// session's refinements after Transcribe has returned.
func (s *Service) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &run{ctx: rctx, cancel: cancel, emit: emit}
	pending := map[int][]domain.Segment{}
	err := s.live.Transcribe(ctx, src, offset, func(ev domain.LiveEvent) {
		audio := ev.Audio
		ev.Audio = nil
		emit(ev)
		if ev.Kind != domain.EventCommitted {
			return
		}
		pending[ev.Utterance] = domain.AddCommitted(pending[ev.Utterance], ev)
		if audio != nil {
			s.enqueue(&job{run: r, u: *audio, offset: offset, first: pending[ev.Utterance]})
			delete(pending, ev.Utterance)
		}
	})
	if err != nil || ctx.Err() != nil {
		// Abandoned: nothing of this session is refined any more.
		cancel()
		s.dropRun(r)
	}
	return err
}

func (s *Service) enqueue(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= s.cfg.MaxQueued {
		// Never block the live session: its first-pass text stands.
		s.stats.Dropped++
		return
	}
	s.queue = append(s.queue, j)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Service) dropRun(r *run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.queue[:0]
	for _, j := range s.queue {
		if j.run == r {
			s.stats.Cancelled++
			continue
		}
		kept = append(kept, j)
	}
	clear(s.queue[len(kept):]) // release the dropped audio
	s.queue = kept
}

// next takes the oldest job whose session is still live, or waits for one.
func (s *Service) next() (*job, bool) {
	for {
		s.mu.Lock()
		for len(s.queue) > 0 {
			j := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			if j.run.ctx.Err() != nil {
				s.stats.Cancelled++
				continue
			}
			s.mu.Unlock()
			return j, true
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return nil, false
		}
	}
}

// work is the worker: one refinement at a time, each only when the live scheduler is idle.
func (s *Service) work() {
	defer close(s.done)
	for {
		j, ok := s.next()
		if !ok {
			return
		}
		s.refine(j)
	}
}

func (s *Service) refine(j *job) {
	var segs []domain.Segment
	ctx, cancel := context.WithCancel(transcribe.WithRoom(j.run.ctx, "second-pass"))
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // Close cancels the refinement in progress
	defer stop()
	err := s.idle.WhenIdle(ctx, s.cfg.Quiet, func(wctx context.Context) error {
		var err error
		segs, _, err = s.refiner.Transcribe(wctx, j.u)
		return err
	})
	switch {
	case errors.Is(err, transcribe.ErrPreempted):
		s.mu.Lock()
		s.stats.Preempted++
		j.attempts++
		if j.attempts >= s.cfg.MaxAttempts {
			s.stats.Dropped++
		} else {
			s.queue = append([]*job{j}, s.queue...) // first again once the box is idle
		}
		s.mu.Unlock()
		return
	case ctx.Err() != nil:
		s.mu.Lock()
		s.stats.Cancelled++
		s.mu.Unlock()
		return
	case err != nil:
		s.cfg.Logger.Warn("second-pass decode failed; the first-pass text stands", "utterance", j.u.Seq, "err", err)
		s.mu.Lock()
		s.stats.Failed++
		s.mu.Unlock()
		return
	}
	for i := range segs {
		segs[i].Start += j.offset
		segs[i].End += j.offset
		segs[i].ID = ""
		segs[i].Flags = append(segs[i].Flags, domain.FlagSecondPass)
	}
	j.run.emit(domain.LiveEvent{Kind: domain.EventRefined, Utterance: j.u.Seq, Replaces: j.first, Refined: segs})
	s.mu.Lock()
	s.stats.Refined++
	s.mu.Unlock()
}
