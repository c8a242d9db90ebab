// Package pipeline runs one live stream end to end: audio source → per-channel clean-up →
// VAD segmenter (internal/frontend) → speaker attribution (package diarize, through
// Attributor) → the streaming commit policy (internal/stream) over the shared decoder →
// transcript events. File mode (Config.PackSeconds) packs the finished utterances into
// windows instead and decodes each once (pack.go). Audio is held only in memory, in
// bounded buffers, and released once the words in it are committed.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"scribe/internal/domain"
	"scribe/internal/frontend"
	"scribe/internal/stream"
	"scribe/internal/transcribe"
)

// Decoder decodes a stream's rolling buffer on the decoders shared by all streams
// (transcribe.Engine.Hypothesis): closes as committed work, steps after it.
type Decoder interface {
	Hypothesis(ctx context.Context, final bool, prepare func() ([]float32, string)) ([]domain.DecodedSegment, time.Duration, error)
}

// Transcriber decodes a finished (packed) utterance whole: file mode's decoding
// (transcribe.Engine.Transcribe), turn by turn with each segment's speaker.
type Transcriber interface {
	Transcribe(ctx context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error)
}

// Attributor says who spoke when in one stream's utterances (package diarize): it sees
// every utterance in order, finished ones to learn from (commit true), and returns who
// spoke when and where the floor changed hands without a pause.
type Attributor interface {
	Attribute(u domain.Utterance, commit bool) (spans []domain.SpeakerSpan, turns []float64)
}

// Config holds a stream's commit rules.
type Config struct {
	Stream stream.Config
	// Provisional decodes the growing buffer every step while people talk: words are
	// committed as they become stable and the rest is shown as provisional text. Without
	// it (a file transcribed as fast as it can be read) lines are decoded only once the
	// VAD closes them, still with the preceding speech as context.
	Provisional bool
	// MaxHeld bounds the audio (seconds) read but not yet taken by the decoding side;
	// past it the reader waits (back-pressure) rather than holding unbounded audio.
	MaxHeld float64
	// PackSeconds > 0 is file mode: finished utterances are packed into windows of up to
	// this many seconds and each window is decoded once (pack.go); no provisional text.
	// The engine must then be a Transcriber.
	PackSeconds float64
	// MixSpeakers lets a packed window hold several speakers (transcribe.Packer).
	MixSpeakers bool
}

// DefaultConfig streams with provisional text.
func DefaultConfig() Config {
	return Config{Stream: stream.DefaultConfig(), Provisional: true, MaxHeld: 60}
}

// Deps are the parts a pipeline is built from.
type Deps struct {
	Engine Decoder
	// Frontend is each stream's clean-up and VAD (the same as a room agent's).
	Frontend frontend.Config
	// NewAttributor makes a stream's speaker attribution for its channel count (ctx may
	// carry the stream's own microphone set-up); nil leaves every speaker unknown.
	NewAttributor func(ctx context.Context, nch int) Attributor
	Logger        *slog.Logger
	// Observe, when set, is told about every decode (metrics).
	Observe func(Observation)
}

// Observation describes one decode of a stream (Decode > 0), or one line committed
// (Final).
type Observation struct {
	// Final: a line was completed — all its words committed. Interval and AudioSeconds are
	// the line's, Lag the time from the VAD closing it to then, Queued the lines closed
	// after it still waiting.
	Final bool
	// Close: the decode was committed work (a closed line's words were due), not a step.
	Close        bool
	Interval     domain.Interval   // the line, or the audio decoded, on the stream's timeline
	Speech       []domain.Interval // Final: the speech the line held (a packed window's runs)
	AudioSeconds float64
	Decode       time.Duration
	Lag          time.Duration
	Queued       int
}

// Pipeline transcribes live streams. One Pipeline serves many streams at once.
type Pipeline struct {
	cfg  Config
	deps Deps
}

// New checks the configuration and dependencies.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	if err := deps.Frontend.VAD.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Stream.Validate(); err != nil {
		return nil, err
	}
	if need := cfg.Stream.Context + deps.Frontend.VAD.MaxUtterance + 2; cfg.Stream.MaxBuffer < need {
		// A line in progress, with its context, must always fit in the buffer.
		return nil, fmt.Errorf("pipeline: stream buffer %.0f s cannot hold %.0f s of context and a %.0f s utterance", cfg.Stream.MaxBuffer, cfg.Stream.Context, deps.Frontend.VAD.MaxUtterance)
	}
	if deps.Engine == nil || deps.Frontend.NewScorer == nil {
		return nil, errors.New("pipeline: engine and VAD scorer are required")
	}
	if _, ok := deps.Engine.(Transcriber); cfg.PackSeconds > 0 && !ok {
		return nil, errors.New("pipeline: file mode needs an engine that transcribes whole utterances")
	}
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = 60
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

// Transcribe reads src until io.EOF, commits whatever is pending and returns nil.
// Cancelling ctx abandons work in progress and returns ctx.Err(). offset (seconds) is added
// to every time, so a session resumed after a pause continues its timeline. emit is called
// from one goroutine, in order; committed events are never dropped.
func (p *Pipeline) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	nch := src.Channels()
	if nch < 1 {
		return fmt.Errorf("pipeline: source has %d channels", nch)
	}
	fcfg := p.deps.Frontend
	if ctx.Value(cleanedKey{}) != nil {
		fcfg.NewCleaner = nil
	}
	fe, err := frontend.New(fcfg, nch)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	defer fe.Close()
	st, err := stream.New(p.cfg.Stream, nch)
	if err != nil {
		return err
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if transcribe.RoomOf(ctx) == "" {
		// The engine shares decoders fairly between rooms: a stream its caller did not
		// name is a room of its own.
		ctx = transcribe.WithRoom(ctx, fmt.Sprintf("stream-%d", streamSeq.Add(1)))
	}
	in := &inbox{wake: make(chan struct{}, 1), room: make(chan struct{}, 1), max: int(p.cfg.MaxHeld * domain.SampleRate)}
	packed := p.cfg.PackSeconds > 0
	var attr Attributor
	if p.deps.NewAttributor != nil {
		attr = p.deps.NewAttributor(ctx, nch)
	}
	lb := newLabeller(attr)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader: owned by this call, stopped by cancel or EOF
		defer wg.Done()
		err := fe.Run(ctx, src, func(us []domain.Utterance, pos frontend.Position) error {
			return in.put(ctx, lb.label(us, packed), pos.Read)
		})
		in.finish(err)
		if err != nil {
			cancel() // the audio failed: abandon the stream
		}
	}()

	var decErr error
	if packed {
		decErr = p.decodePacked(ctx, in, offset, emit)
	} else {
		d := &decoding{p: p, st: st, in: in, offset: offset, emit: emit}
		decErr = d.run(ctx)
	}
	if decErr != nil {
		cancel()
	}
	wg.Wait()
	readErr := in.err
	switch {
	case readErr != nil && !errors.Is(readErr, context.Canceled):
		return fmt.Errorf("pipeline: %w", readErr)
	case decErr != nil:
		return decErr
	}
	return parent.Err()
}

// labeller gives the segmenter's utterances their speakers. A finished utterance is
// labelled whole and learnt from, and says where its turns fall. A growing one carries
// only its new audio, so the utterance heard so far is kept here and labelled again,
// without learning, every labelEvery of new audio: an attribution judges speech in
// context (a second of voice, a stretch of channel dominance), not a tenth of a second.
type labeller struct {
	attr  Attributor
	seq   int         // the growing utterance held, -1 for none
	start float64     // where it starts
	chans [][]float32 // its audio so far
	fresh int         // samples added since it was last labelled
}

// labelEvery is the new audio (seconds) between two labellings of a growing utterance.
const labelEvery = 0.5

func newLabeller(attr Attributor) *labeller { return &labeller{attr: attr, seq: -1} }

// label labels us in place. File mode (finalsOnly) decodes finished utterances only and
// drops the rest.
func (b *labeller) label(us []domain.Utterance, finalsOnly bool) []domain.Utterance {
	out := us[:0]
	for _, u := range us {
		if finalsOnly && !u.Final {
			continue
		}
		switch {
		case b.attr == nil:
		case u.Final:
			u.Speakers, u.Turns = b.attr.Attribute(u, true)
			b.seq, b.chans = -1, nil
		case len(u.Channels) > 0:
			if u.Seq != b.seq {
				b.seq, b.start, b.chans, b.fresh = u.Seq, u.AudioStart(), make([][]float32, len(u.Channels)), 0
			}
			for i, c := range u.Channels {
				b.chans[i] = append(b.chans[i], c...)
			}
			if b.fresh += len(u.Channels[0]); b.fresh >= int(labelEvery*domain.SampleRate) {
				b.fresh = 0
				so := u
				so.Interval.Start, so.Channels = b.start, b.chans
				u.Speakers, _ = b.attr.Attribute(so, false)
			}
		}
		out = append(out, u)
	}
	return out
}

// decoding is the decoding side of one stream: it owns the stream's commit state.
type decoding struct {
	p      *Pipeline
	st     *stream.Stream
	in     *inbox
	offset float64
	emit   func(domain.LiveEvent)
	closes []time.Time // when each line still waiting for its words was closed
	// backlog is what the reader heard that the stream has no room for yet (its buffer
	// is full until decodes commit and trim).
	backlog []domain.Utterance
	read    int64 // samples the reader had read at the last take
	done    bool  // the reader has finished and the inbox is empty
}

// run decodes until the reader has finished and every line is committed.
func (d *decoding) run(ctx context.Context) error {
	for {
		done := d.take()
		kind := d.st.Due()
		if kind == stream.Step && !d.p.cfg.Provisional {
			kind = stream.None
		}
		if kind == stream.None {
			if done {
				return nil
			}
			select {
			case <-d.in.wake:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if err := d.decode(ctx, kind); err != nil {
			return err
		}
	}
}

// take moves what the reader has heard into the stream; done once the reader has finished
// and everything it heard was taken.
func (d *decoding) take() (done bool) {
	for !d.st.Full() {
		if len(d.backlog) == 0 { // else the reader waits: the inbox is bounded
			if d.backlog, d.read, d.done = d.in.take(); len(d.backlog) == 0 {
				break
			}
		}
		for len(d.backlog) > 0 && !d.st.Full() {
			u := d.backlog[0]
			d.backlog = d.backlog[1:]
			if u.Final {
				d.closes = append(d.closes, time.Now())
			}
			d.publish(d.st.Push(u))
		}
	}
	heard := float64(d.read) / domain.SampleRate
	switch {
	case len(d.backlog) > 0:
		heard = d.backlog[0].AudioStart()
	case d.done:
		heard = math.Inf(1) // the end: nothing more will confirm any word
	}
	d.publish(d.st.Advance(heard))
	return d.done && len(d.backlog) == 0
}

// decode runs one decode of the stream's buffer and publishes what it commits.
func (d *decoding) decode(ctx context.Context, kind stream.Kind) error {
	var job stream.Job
	segs, took, err := d.p.deps.Engine.Hypothesis(ctx, kind == stream.Close, func() ([]float32, string) {
		d.take() // the newest audio: under load, a step that waited covers more
		job = d.st.Job(kind)
		return job.Samples, job.Context
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, transcribe.ErrPreempted):
		return nil // committed work needed the decoder; the step runs again later, over more audio
	case kind == stream.Close:
		// The speech is real even if decoding failed: keep it visible to the reviewer.
		d.p.deps.Logger.Error("decode failed; lines kept as untranscribed", "err", err)
		d.publish(d.st.Undecoded())
		return nil
	default:
		d.p.deps.Logger.Warn("step decode failed", "err", err)
		select { // try again with more audio
		case <-d.in.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	d.p.observe(Observation{Close: kind == stream.Close, Interval: domain.Interval{Start: job.End() - job.Seconds(), End: job.End()},
		AudioSeconds: job.Seconds(), Decode: took})
	d.publish(d.st.Apply(job, segs))
	return nil
}

// publish emits events on the session's timeline and observes the lines they complete.
func (d *decoding) publish(evs []domain.LiveEvent) {
	for _, ev := range evs {
		ev.Segment.Start += d.offset
		ev.Segment.End += d.offset
		if ev.Kind == domain.EventCommitted && ev.Audio != nil && len(d.closes) > 0 {
			d.p.observe(Observation{Final: true, Interval: ev.Audio.Interval, Speech: ev.Audio.Speech(), AudioSeconds: ev.Audio.Duration(),
				Lag: time.Since(d.closes[0]), Queued: len(d.closes) - 1})
			d.closes = d.closes[1:]
		}
		d.emit(ev)
	}
}

func (p *Pipeline) observe(o Observation) {
	if p.deps.Observe != nil {
		p.deps.Observe(o)
	}
}

// inbox passes the segmenter's output from the reader to the decoding side without ever
// making the reader wait for a decode, up to a bound on the audio held.
type inbox struct {
	mu   sync.Mutex
	us   []domain.Utterance
	read int64 // samples per channel the reader has read
	held int   // samples per channel in us
	max  int
	done bool
	err  error
	wake chan struct{} // the decoding side: something arrived
	room chan struct{} // the reader: something was taken
}

func (b *inbox) put(ctx context.Context, us []domain.Utterance, read int64) error {
	if len(us) == 0 {
		b.mu.Lock()
		b.read = read
		b.mu.Unlock()
		signal(b.wake)
		return nil
	}
	n := 0
	for _, u := range us {
		if len(u.Channels) > 0 {
			n += len(u.Channels[0])
		}
	}
	for {
		b.mu.Lock()
		if b.held == 0 || b.held+n <= b.max {
			b.us = append(b.us, us...)
			b.held += n
			b.read = read
			b.mu.Unlock()
			signal(b.wake)
			return nil
		}
		b.mu.Unlock()
		select { // back-pressure: the decoder is far behind
		case <-b.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// finish records that the reader has stopped (err nil at the end of the source).
func (b *inbox) finish(err error) {
	b.mu.Lock()
	b.done, b.err = true, err
	b.mu.Unlock()
	signal(b.wake)
}

func (b *inbox) take() ([]domain.Utterance, int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	us := b.us
	b.us, b.held = nil, 0
	if len(us) > 0 {
		signal(b.room)
	}
	return us, b.read, b.done && len(us) == 0
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
