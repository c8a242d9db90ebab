// Package secondpass re-transcribes committed utterances with a larger model when the box
// has nothing live to do, so the clinician reviews better text. It wraps the live
// transcriber: every committed utterance's audio is kept in memory (never on disk) in a
// bounded queue, decoded by the larger model at the lowest priority of the live
// scheduler, and sent back to the session as "refined" events, which the server applies
// only to segments the clinician has not edited.
//
// Like file mode, the second pass decodes consecutive utterances of a session packed
// into one window of up to 30 s of one speaker (transcribe.Packer) rather than one by one: whisper
// loses words on short utterances heard alone. The refined text is handed back per
// utterance wherever whisper's segments keep to one utterance; utterances a segment runs
// across are refined together, so no word is doubled or lost between them.
package secondpass

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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
	Kept      int `json:"kept"`      // refined to less than half their first-pass words: the first pass stands (lostWords)
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
	run    *run
	u      domain.Utterance // the audio, on the stream's timeline: one utterance, or several packed
	offset float64
	// Per utterance of u, in order: its number and the committed segments it replaces
	// (session timeline).
	seqs     []int
	first    [][]domain.Segment
	attempts int
}

// utterances is how many committed utterances the job refines.
func (j *job) utterances() int { return len(j.seqs) }

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
	for _, j := range s.queue {
		s.stats.Cancelled += j.utterances()
	}
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
			s.enqueue(&job{run: r, u: *audio, offset: offset, seqs: []int{ev.Utterance}, first: [][]domain.Segment{pending[ev.Utterance]}})
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
			s.stats.Cancelled += j.utterances()
			continue
		}
		kept = append(kept, j)
	}
	clear(s.queue[len(kept):]) // release the dropped audio
	s.queue = kept
}

// next takes the oldest job whose session is still live, packed with the jobs of the
// same session queued behind it while they fit one window, or waits for one.
func (s *Service) next() (*job, bool) {
	for {
		s.mu.Lock()
		for len(s.queue) > 0 {
			j := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			if j.run.ctx.Err() != nil {
				s.stats.Cancelled += j.utterances()
				continue
			}
			j = s.packLocked(j)
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

// packLocked joins the queued jobs of j's session that follow it into one window of at
// most transcribe.DefaultPackSeconds (s.mu held). Jobs of other sessions keep their place.
func (s *Service) packLocked(j *job) *job {
	if len(s.queue) == 0 || s.queue[0].run != j.run {
		return j
	}
	limit := transcribe.DefaultPackSeconds * domain.SampleRate
	size := func(u domain.Utterance) int {
		if len(u.Channels) == 0 {
			return 0
		}
		return len(u.Channels[0])
	}
	n := size(j.u)
	k := 0
	// One speaker per window (transcribe.Joinable): a window mixing speakers puts words
	// on the wrong one.
	for last := j.u; k < len(s.queue) && s.queue[k].run == j.run && s.queue[k].offset == j.offset &&
		transcribe.Joinable(last, s.queue[k].u) && n+size(s.queue[k].u) <= limit; k++ {
		last = s.queue[k].u
		n += size(last)
	}
	if k == 0 {
		return j
	}
	pk := transcribe.NewPacker(transcribe.DefaultPackSeconds)
	pk.Add(j.u)
	packed := &job{run: j.run, offset: j.offset, seqs: j.seqs, first: j.first, attempts: j.attempts}
	for _, q := range s.queue[:k] {
		pk.Add(q.u)
		packed.seqs = append(packed.seqs, q.seqs...)
		packed.first = append(packed.first, q.first...)
	}
	packed.u, _ = pk.Flush()
	packed.u.Seq, packed.u.Context = j.u.Seq, j.u.Context
	clear(s.queue[:k])
	s.queue = s.queue[k:]
	return packed
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
			s.stats.Dropped += j.utterances()
		} else {
			s.queue = append([]*job{j}, s.queue...) // first again once the box is idle
		}
		s.mu.Unlock()
		return
	case ctx.Err() != nil:
		s.mu.Lock()
		s.stats.Cancelled += j.utterances()
		s.mu.Unlock()
		return
	case err != nil:
		s.cfg.Logger.Warn("second-pass decode failed; the first-pass text stands", "utterance", j.u.Seq, "err", err)
		s.mu.Lock()
		s.stats.Failed += j.utterances()
		s.mu.Unlock()
		return
	}
	for i := range segs {
		segs[i].Start += j.offset
		segs[i].End += j.offset
		segs[i].ID = ""
		segs[i].Flags = append(segs[i].Flags, domain.FlagSecondPass)
	}
	refined, kept := 0, 0
	for _, g := range groups(j, segs) {
		if lostWords(g.first, g.refined) {
			s.cfg.Logger.Warn("the second pass heard less than half the first pass's words; the first-pass text stands",
				"utterance", g.seq, "first_words", wordCount(g.first), "second_words", wordCount(g.refined))
			kept += g.n
			continue
		}
		j.run.emit(domain.LiveEvent{Kind: domain.EventRefined, Utterance: g.seq, Replaces: g.first, Refined: g.refined})
		refined += g.n
	}
	s.mu.Lock()
	s.stats.Refined += refined
	s.stats.Kept += kept
	s.mu.Unlock()
}

// minCheckedWords is the fewest first-pass words lostWords judges: a short line may
// rightly lose a misheard word or two to the larger model.
const minCheckedWords = 6

// lostWords reports whether refined holds less than half the words of first: the larger
// model stopped early or skipped speech. Its text would replace words the first pass
// heard (and the live policy held to its hole check), so the first pass stands; where the
// first pass invented words on noise, its guards flagged them for the reviewer.
func lostWords(first, refined []domain.Segment) bool {
	n := wordCount(first)
	return n >= minCheckedWords && 2*wordCount(refined) < n
}

func wordCount(segs []domain.Segment) int {
	n := 0
	for _, s := range segs {
		n += len(strings.Fields(s.Text))
	}
	return n
}

// group is what one refined event replaces: one or more neighbouring utterances.
type group struct {
	seq     int // the first utterance's number
	n       int // how many utterances
	first   []domain.Segment
	refined []domain.Segment
}

// groups hands a job's refined segments (session timeline) back to its utterances: a
// segment belongs to the utterances its time overlaps (the nearest, if none); utterances
// that share a segment are refined together, so no text is doubled or lost between them.
func groups(j *job, segs []domain.Segment) []group {
	n := j.utterances()
	if n == 1 {
		return []group{{seq: j.seqs[0], n: 1, first: j.first[0], refined: segs}}
	}
	spans := j.u.Speech() // one per utterance, stream timeline
	// link[i]: utterance i is refined together with utterance i+1.
	link := make([]bool, n)
	owner := make([]int, len(segs))
	for k, g := range segs {
		lo, hi := -1, -1
		for i, sp := range spans {
			if g.Start-j.offset < sp.End && g.End-j.offset > sp.Start {
				if lo < 0 {
					lo = i
				}
				hi = i
			}
		}
		if lo < 0 { // between or beyond the utterances: the nearest one
			mid := (g.Start+g.End)/2 - j.offset
			for i, sp := range spans {
				if lo < 0 || distance(mid, sp) < distance(mid, spans[lo]) {
					lo = i
				}
			}
			hi = lo
		}
		for i := lo; i < hi; i++ {
			link[i] = true
		}
		owner[k] = lo
	}
	var out []group
	for i := 0; i < n; i++ {
		g := group{seq: j.seqs[i]}
		from := i
		for ; ; i++ {
			g.first = append(g.first, j.first[i]...)
			g.n++
			if !link[i] {
				break
			}
		}
		for k, seg := range segs {
			if owner[k] >= from && owner[k] <= i {
				g.refined = append(g.refined, seg)
			}
		}
		out = append(out, g)
	}
	return out
}

func distance(t float64, iv domain.Interval) float64 {
	switch {
	case t < iv.Start:
		return iv.Start - t
	case t > iv.End:
		return t - iv.End
	}
	return 0
}
