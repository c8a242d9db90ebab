// Package pipeline runs one live stream end to end: audio source → per-channel clean-up →
// VAD segmenter → decoder → transcript events. Audio is held only in memory, in bounded
// buffers, and each utterance's samples are released once it is transcribed.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"scribe/internal/domain"
	"scribe/internal/transcribe"
	"scribe/internal/vad"
)

// Cleaner cleans one channel of live audio (high-pass, noise suppression, gain). Output
// has the same length as input.
type Cleaner interface {
	Process(in []float32) []float32
}

// Transcriber is the decoding engine shared by all streams.
type Transcriber interface {
	Transcribe(ctx context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error)
	TryTranscribe(ctx context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error)
}

// Config holds a stream's segmentation and queueing rules.
type Config struct {
	VAD vad.Config
	// Provisional enables provisional text for utterances still in progress.
	Provisional bool
	// MaxQueued bounds finished utterances waiting for a decoder; past it the reader
	// waits (back-pressure) rather than holding unbounded audio.
	MaxQueued int
	// PackSeconds > 0 is file mode: finished utterances are packed into windows of up to
	// this many seconds and each window is decoded once (see pack.go); no provisional text.
	PackSeconds float64
}

// DefaultConfig enables provisional text and queues up to 32 utterances.
func DefaultConfig() Config {
	return Config{VAD: vad.DefaultConfig(), Provisional: true, MaxQueued: 32}
}

// Attributor says who spoke when in one stream's utterances (package diarize): it sees
// every utterance in order, committed ones to learn from (commit true), and returns who
// spoke when and where the floor changed hands without a pause.
type Attributor interface {
	Attribute(u domain.Utterance, commit bool) (spans []domain.SpeakerSpan, turns []float64)
}

// Deps are the parts a pipeline is built from.
type Deps struct {
	Engine Transcriber
	// NewScorer gives each stream its own VAD (Silero keeps LSTM state per stream) and a
	// function releasing it.
	NewScorer func() (vad.Scorer, func(), error)
	// NewCleaner makes one channel's clean-up chain; nil passes audio through.
	NewCleaner func() Cleaner
	// NewAttributor makes a stream's speaker attribution for its channel count (ctx may
	// carry the stream's own microphone set-up); nil leaves every speaker unknown.
	NewAttributor func(ctx context.Context, nch int) Attributor
	Logger        *slog.Logger
	// Observe, when set, is told each utterance's decode time and queueing delay (metrics).
	Observe func(Observation)
}

// Observation describes one decoded utterance, for metrics.
type Observation struct {
	Final        bool
	Interval     domain.Interval   // the utterance, on the stream's own timeline
	Speech       []domain.Interval // the speech it held: Interval, or a packed window's runs
	AudioSeconds float64
	Decode       time.Duration
	Lag          time.Duration // from the utterance's end being heard to its text
	Queued       int
}

// Pipeline transcribes live streams. One Pipeline serves many streams at once.
type Pipeline struct {
	cfg  Config
	deps Deps
}

// New checks the configuration and dependencies.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	if err := cfg.VAD.Validate(); err != nil {
		return nil, err
	}
	if deps.Engine == nil || deps.NewScorer == nil {
		return nil, errors.New("pipeline: engine and VAD scorer are required")
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 32
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	return &Pipeline{cfg: cfg, deps: deps}, nil
}

type cleanedKey struct{}

// WithoutCleanup marks a stream whose audio was cleaned before it arrived (a room agent
// cleans before sending): Transcribe skips its own clean-up, which would otherwise run
// twice.
func WithoutCleanup(ctx context.Context) context.Context {
	return context.WithValue(ctx, cleanedKey{}, true)
}

// streamSeq numbers streams whose caller gave no room name.
var streamSeq atomic.Int64

type heard struct {
	u  domain.Utterance
	at time.Time // when the segmenter released it
}

// Transcribe reads src until io.EOF, commits whatever is pending and returns nil.
// Cancelling ctx abandons work in progress and returns ctx.Err(). offset (seconds) is added
// to every time, so a session resumed after a pause continues its timeline. emit is called
// from one goroutine, in order; committed events are never dropped.
func (p *Pipeline) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	nch := src.Channels()
	if nch < 1 {
		return fmt.Errorf("pipeline: source has %d channels", nch)
	}
	scorer, release, err := p.deps.NewScorer()
	if err != nil {
		return fmt.Errorf("pipeline: VAD: %w", err)
	}
	defer release()
	vcfg := p.cfg.VAD
	if !p.cfg.Provisional || p.cfg.PackSeconds > 0 {
		vcfg.ProvisionalEvery = 0
	}
	seg, err := vad.New(vcfg, scorer, nch)
	if err != nil {
		return err
	}
	var cleaners []Cleaner
	if p.deps.NewCleaner != nil && ctx.Value(cleanedKey{}) == nil {
		for range nch {
			cleaners = append(cleaners, p.deps.NewCleaner())
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if transcribe.RoomOf(ctx) == "" {
		// The engine shares decoders fairly between rooms: a stream its caller did not
		// name is a room of its own.
		ctx = transcribe.WithRoom(ctx, fmt.Sprintf("stream-%d", streamSeq.Add(1)))
	}
	finals := make(chan heard, p.cfg.MaxQueued)
	prov := &latest{wake: make(chan struct{}, 1)}

	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() { // the reader: owned by this call, stopped by cancel or EOF
		defer wg.Done()
		defer close(finals)
		readErr = p.read(ctx, src, seg, cleaners, p.newAttributor(ctx, nch), finals, prov)
		if readErr != nil {
			cancel()
		}
	}()

	decode := p.decode
	if p.cfg.PackSeconds > 0 {
		decode = p.decodePacked
	}
	decErr := decode(ctx, offset, finals, prov, emit)
	if decErr != nil {
		cancel()
	}
	wg.Wait()
	switch {
	case readErr != nil && !errors.Is(readErr, context.Canceled):
		return readErr
	case decErr != nil:
		return decErr
	}
	return ctx.Err()
}

// read pulls audio, cleans it, feeds the segmenter and attributes speakers.
func (p *Pipeline) read(ctx context.Context, src domain.AudioSource, seg *vad.Segmenter, cleaners []Cleaner, attr Attributor, finals chan<- heard, prov *latest) error {
	send := func(us []domain.Utterance) error {
		for _, u := range us {
			if attr != nil {
				u.Speakers, u.Turns = attr.Attribute(u, u.Final)
			}
			if !u.Final {
				prov.set(u)
				continue
			}
			// The utterance a provisional decode is working on has just ended: its
			// committed decode supersedes it, so stop it now rather than let the final wait.
			prov.supersede()
			select {
			case finals <- heard{u: u, at: time.Now()}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	for {
		chunk, err := src.Read(ctx)
		if errors.Is(err, io.EOF) {
			us, ferr := seg.Flush()
			if ferr != nil {
				return ferr
			}
			return send(us)
		}
		if err != nil {
			return fmt.Errorf("pipeline: reading audio: %w", err)
		}
		if len(chunk) == 0 || len(chunk[0]) == 0 {
			continue
		}
		if len(cleaners) == len(chunk) {
			for i := range chunk {
				chunk[i] = cleaners[i].Process(chunk[i])
			}
		}
		us, err := seg.Push(domain.MixDown(chunk), chunk)
		if err != nil {
			return err
		}
		if err := send(us); err != nil {
			return err
		}
	}
}

// decode turns utterances into events: finished utterances first, then — only when a
// decoder is free — the newest provisional snapshot.
func (p *Pipeline) decode(ctx context.Context, offset float64, finals <-chan heard, prov *latest, emit func(domain.LiveEvent)) error {
	committed := -1
	var said history
	commit := func(h heard) error {
		h.u.Context = said.tail()
		text, err := p.commit(ctx, h, offset, len(finals), emit)
		if err != nil {
			return err
		}
		committed = h.u.Seq
		said.add(text)
		return nil
	}
	for {
		// Finished utterances have priority over provisional text.
		select {
		case h, ok := <-finals:
			if !ok {
				return nil
			}
			if err := commit(h); err != nil {
				return err
			}
			continue
		default:
		}
		select {
		case h, ok := <-finals:
			if !ok {
				return nil
			}
			if err := commit(h); err != nil {
				return err
			}
		case <-prov.wake:
			u, ok := prov.take()
			if !ok || u.Seq <= committed {
				continue
			}
			u.Context = said.tail()
			pctx := prov.begin(ctx)
			segs, took, err := p.deps.Engine.TryTranscribe(pctx, u)
			superseded := prov.end()
			if errors.Is(err, transcribe.ErrBusy) {
				continue // dropped or preempted under load; a newer snapshot or the commit follows
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if superseded {
					continue // the utterance ended mid-decode: its commit follows
				}
				p.deps.Logger.Warn("provisional decode failed", "err", err)
				continue
			}
			p.observe(Observation{Interval: u.Interval, AudioSeconds: u.End - u.Start, Decode: took})
			emit(domain.LiveEvent{Kind: domain.EventProvisional, Utterance: u.Seq, Segment: joinProvisional(segs, offset)})
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// commit decodes a finished utterance, emits its segments and returns their text.
func (p *Pipeline) commit(ctx context.Context, h heard, offset float64, queued int, emit func(domain.LiveEvent)) (string, error) {
	u := h.u
	segs, took, err := p.deps.Engine.Transcribe(ctx, u)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// The speech is real even if decoding failed: keep it visible to the reviewer.
		p.deps.Logger.Error("decode failed; utterance kept as untranscribed", "utterance", u.Seq, "err", err)
		segs = transcribe.Untranscribed(u)
	}
	p.observe(Observation{Final: true, Interval: u.Interval, Speech: u.Speech(), AudioSeconds: u.Seconds(), Decode: took, Lag: time.Since(h.at), Queued: queued})
	var text []string
	for i, s := range segs {
		if s.Text != "" {
			text = append(text, s.Text)
		}
		s.Start += offset
		s.End += offset
		ev := domain.LiveEvent{Kind: domain.EventCommitted, Utterance: u.Seq, Segment: s}
		if i == len(segs)-1 {
			// For a second pass; dropped with the event unless one keeps it.
			ev.Audio = &u
		}
		emit(ev)
	}
	return strings.Join(text, " "), nil
}

func (p *Pipeline) newAttributor(ctx context.Context, nch int) Attributor {
	if p.deps.NewAttributor == nil {
		return nil
	}
	return p.deps.NewAttributor(ctx, nch)
}

func (p *Pipeline) observe(o Observation) {
	if p.deps.Observe != nil {
		p.deps.Observe(o)
	}
}

// joinProvisional shows a growing utterance as one provisional segment.
func joinProvisional(segs []domain.Segment, offset float64) domain.Segment {
	if len(segs) == 0 {
		return domain.Segment{}
	}
	out := segs[0]
	for _, s := range segs[1:] {
		if s.Text != "" {
			if out.Text != "" {
				out.Text += " "
			}
			out.Text += s.Text
		}
		out.End = s.End
		out.Flags = append(out.Flags, s.Flags...)
	}
	out.Start += offset
	out.End += offset
	out.ID = ""
	return out
}

// latest holds only the newest provisional snapshot: older ones are coalesced away. It
// also holds the cancel function of the provisional decode in flight, so the reader can
// stop it when the utterance ends.
type latest struct {
	mu         sync.Mutex
	u          domain.Utterance
	ok         bool
	wake       chan struct{}
	cancel     context.CancelFunc // of the provisional decode in flight, if any
	superseded bool
}

// begin starts a provisional decode: its context is cancelled by supersede.
func (l *latest) begin(ctx context.Context) context.Context {
	c, cancel := context.WithCancel(ctx)
	l.mu.Lock()
	l.cancel, l.superseded = cancel, false
	l.mu.Unlock()
	return c
}

// end finishes the provisional decode begun last; true if supersede cancelled it.
func (l *latest) end() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
	return l.superseded
}

// supersede cancels the provisional decode in flight and drops the pending snapshot: a
// finished utterance is about to be committed.
func (l *latest) supersede() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
		l.superseded = true
	}
	l.u, l.ok = domain.Utterance{}, false
}

func (l *latest) set(u domain.Utterance) {
	l.mu.Lock()
	l.u, l.ok = u, true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *latest) take() (domain.Utterance, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.u, l.ok
	l.u, l.ok = domain.Utterance{}, false
	return u, ok
}
