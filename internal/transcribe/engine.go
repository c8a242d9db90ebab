// Package transcribe turns utterances into transcript segments: it sizes and runs the
// decoder, applies the hallucination guards, gives each segment the speaker the room's
// attribution (package diarize) found in its stretch, and keeps the
// vocabulary hint the only prompt. The decoder (libwhisper) sits behind an interface, so
// this package is pure Go.
package transcribe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"scribe/internal/diarize"
	"scribe/internal/domain"
)

// Decoder is one speech decoder state: it decodes one utterance at a time.
type Decoder interface {
	Decode(ctx context.Context, samples []float32, opts domain.DecodeOptions) ([]domain.DecodedSegment, error)
}

// Config holds the engine's decoding choices.
type Config struct {
	Language       string
	Threads        int // per decoder
	BeamSize       int
	Temperature    float32
	TemperatureInc float32 // 0 disables temperature fallback
	Thresholds     Thresholds
	Vocabulary     []string
	// ModelAudioCtx is the model's full encoder context (1500 for every whisper model).
	ModelAudioCtx int
	// ShrinkAudioCtx sizes the encoder to short utterances: much faster, but measured with
	// real tiny.en it garbles words (jfk.wav: WER 0 → 18 %), so it is off by default.
	ShrinkAudioCtx bool
	// MaxQueuedPerRoom bounds the committed utterances one room may have waiting for a
	// decoder; past it Transcribe returns ErrQueueFull instead of holding more audio.
	// 0 means DefaultMaxQueuedPerRoom.
	MaxQueuedPerRoom int
	// Observe, when set, is told about every decode the scheduler ran (metrics: lag per
	// room). It is called without locks held, from the decoding goroutine.
	Observe func(Scheduled)
}

// DefaultConfig is greedy English decoding with fallback and the built-in vocabulary.
func DefaultConfig() Config {
	voc, _ := ParseVocabulary(strings.NewReader(DefaultVocabulary))
	return Config{
		Language:         "en",
		Threads:          2,
		Temperature:      0,
		TemperatureInc:   0.2,
		Thresholds:       DefaultThresholds(),
		Vocabulary:       voc,
		ModelAudioCtx:    1500,
		ShrinkAudioCtx:   false,
		MaxQueuedPerRoom: DefaultMaxQueuedPerRoom,
	}
}

// Engine transcribes utterances on a pool of decoders that share one model. The
// decoders are handed out by a scheduler shared by every room (see scheduler.go).
type Engine struct {
	cfg   Config
	sched *scheduler

	mu     sync.RWMutex // guards prompt (SetVocabulary)
	prompt string
}

// NewEngine makes an engine over the given decoders (one per concurrent utterance).
func NewEngine(cfg Config, decoders []Decoder) (*Engine, error) {
	if len(decoders) == 0 {
		return nil, errors.New("transcribe: no decoders")
	}
	if cfg.ModelAudioCtx <= 0 {
		cfg.ModelAudioCtx = 1500
	}
	if cfg.MaxQueuedPerRoom <= 0 {
		cfg.MaxQueuedPerRoom = DefaultMaxQueuedPerRoom
	}
	return &Engine{cfg: cfg, prompt: BuildPrompt(cfg.Vocabulary), sched: newScheduler(decoders, cfg.MaxQueuedPerRoom)}, nil
}

// Prompt is the vocabulary hint given to the decoder.
func (e *Engine) Prompt() string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.prompt
}

// SetVocabulary replaces the vocabulary hint for utterances decoded from now on (an
// admin published a new term list). The prompt is still built from the terms alone.
func (e *Engine) SetVocabulary(terms []string) {
	p := BuildPrompt(terms)
	e.mu.Lock()
	e.prompt = p
	e.mu.Unlock()
}

// Workers is the number of decoders.
func (e *Engine) Workers() int { return e.sched.size }

// minDecodeSamples: libwhisper refuses input under one second, so shorter utterances are
// padded with silence to this length.
const minDecodeSamples = domain.SampleRate + domain.SampleRate/20

// AudioCtxFor sizes the encoder context to seconds of audio: whisper's encoder produces
// 50 positions per second; a margin keeps the last words, and past ~28 s the full window is used.
func AudioCtxFor(seconds float64, full int) int {
	if seconds <= 0 {
		return full
	}
	n := int(math.Ceil(seconds*50)) + 64
	n = (n + 63) / 64 * 64
	if n >= full {
		return 0 // 0 means the model's own full context
	}
	return n
}

// MaxTokensFor bounds decoding of seconds of speech: fast speech is ~4 words (~6 tokens) a
// second, so 10 a second plus a margin never cuts real speech but stops a runaway loop.
func MaxTokensFor(seconds float64) int { return int(math.Ceil(seconds*10)) + 16 }

// Transcribe waits for a decoder and transcribes u: a committed utterance. Waiting
// utterances are served committed-first and round-robin by room (the room comes from
// WithRoom on ctx). Cancelling ctx while waiting or decoding returns promptly with an
// error wrapping ctx.Err() and frees the decoder.
func (e *Engine) Transcribe(ctx context.Context, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	room := RoomOf(ctx)
	d, wait, err := e.sched.acquire(ctx, room)
	if err != nil {
		return nil, 0, err
	}
	defer e.sched.release(d)
	segs, took, err := e.run(ctx, d, u)
	e.observe(Scheduled{Room: room, Final: true, Wait: wait, Decode: took, AudioSeconds: u.Seconds(), Err: err})
	return segs, took, err
}

// Hypothesis decodes a live stream's rolling buffer (internal/stream), with token times.
// A close (final) waits as committed work: before any step, round-robin by room. A step
// waits after all committed work, round-robin with the other rooms' steps, and is
// cancelled (ErrPreempted) if committed work comes to need its decoder. prepare is called
// once a decoder is there and gives the audio and the preceding text: under load a step
// starts later and covers more audio, rather than steps queueing up.
func (e *Engine) Hypothesis(ctx context.Context, final bool, prepare func() (samples []float32, context string)) ([]domain.DecodedSegment, time.Duration, error) {
	room := RoomOf(ctx)
	var (
		d         Decoder
		work      = ctx
		wait      time.Duration
		preempted = func() bool { return false }
		err       error
	)
	if final {
		d, wait, err = e.sched.acquire(ctx, room)
	} else {
		d, work, preempted, wait, err = e.sched.acquireStep(ctx, room)
	}
	if err != nil {
		return nil, 0, err
	}
	defer e.sched.release(d)
	samples, prompt := prepare()
	if len(samples) == 0 {
		return nil, 0, nil
	}
	seconds := float64(len(samples)) / domain.SampleRate
	opts := e.options(seconds, prompt)
	opts.TokenTimestamps = true
	opts.OneWindow = true
	start := time.Now()
	segs, err := d.Decode(work, padded(samples), opts)
	took := time.Since(start)
	if err != nil && ctx.Err() == nil && preempted() {
		segs, err = nil, ErrPreempted
	}
	e.observe(Scheduled{Room: room, Final: final, Wait: wait, Decode: took, AudioSeconds: seconds, Err: err})
	return segs, took, err
}

// WhenIdle runs fn at the lowest priority of the scheduler: once every decoder is free,
// no committed utterance waits and no live work (committed or provisional) has run for
// quiet. fn does not get a decoder, only the right to use the machine (a second-pass model
// has its own): it must work under the context it is given, which is cancelled as soon
// as live work needs a decoder, and WhenIdle then returns ErrPreempted. Waiting ends with
// ctx.
func (e *Engine) WhenIdle(ctx context.Context, quiet time.Duration, fn func(ctx context.Context) error) error {
	for {
		d, work, preempted, wait, retry := e.sched.tryIdle(ctx, quiet)
		if d != nil {
			err := fn(work)
			p := preempted()
			e.sched.release(d)
			if p && ctx.Err() == nil {
				return ErrPreempted
			}
			return err
		}
		if wait != nil {
			select {
			case <-wait:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// Stats is a snapshot of the scheduler: free decoders and, per room, queue and lag.
func (e *Engine) Stats() Stats { return e.sched.stats() }

func (e *Engine) observe(s Scheduled) {
	if e.cfg.Observe != nil {
		e.cfg.Observe(s)
	}
}

// run decodes u: a committed utterance turn by turn (u.Turns), so no segment straddles
// two speakers; a provisional one whole.
func (e *Engine) run(ctx context.Context, d Decoder, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	if !u.Final || len(u.Runs) > 0 {
		// A packed utterance holds one speaker (Packer): it is decoded whole.
		return e.runPart(ctx, d, u)
	}
	var out []domain.Segment
	var took time.Duration
	var preceding []string
	if u.Context != "" {
		preceding = append(preceding, u.Context)
	}
	for _, part := range splitTurns(u) {
		// Each turn is preceded by the turns decoded before it, as the utterance would be.
		part.Context = ContextTail(preceding)
		segs, t, err := e.runPart(ctx, d, part)
		took += t
		if err != nil {
			return nil, took, err
		}
		for _, s := range segs {
			if s.Text != "" {
				preceding = append(preceding, s.Text)
			}
		}
		out = append(out, segs...)
	}
	for i := range out {
		out[i].ID = fmt.Sprintf("u%d-%d", u.Seq, i)
	}
	return out, took, nil
}

// splitTurns cuts u where the floor passes between speakers.
func splitTurns(u domain.Utterance) []domain.Utterance {
	cuts := u.Turns
	if len(cuts) == 0 {
		return []domain.Utterance{u}
	}
	n := len(u.Channels[0])
	for _, c := range u.Channels[1:] {
		n = min(n, len(c))
	}
	parts := make([]domain.Utterance, 0, len(cuts)+1)
	from := 0
	for i, c := range append(cuts[:len(cuts):len(cuts)], u.End) {
		to := n
		if i < len(cuts) {
			to = min(n, int((c-u.Start)*domain.SampleRate))
		}
		p := u
		p.Interval = domain.Interval{Start: u.Start + float64(from)/domain.SampleRate, End: u.Start + float64(to)/domain.SampleRate}
		p.Channels = make([][]float32, len(u.Channels))
		for ch, x := range u.Channels {
			p.Channels[ch] = x[from:to]
		}
		p.Cut = u.Cut && i == len(cuts)
		p.Turns = nil
		parts = append(parts, p)
		from = to
	}
	return parts
}

// padded is samples, lengthened with silence to what libwhisper accepts.
func padded(samples []float32) []float32 {
	if len(samples) >= minDecodeSamples {
		return samples
	}
	out := make([]float32, minDecodeSamples)
	copy(out, samples)
	return out
}

// options are the decoding options for seconds of audio after the preceding text.
func (e *Engine) options(seconds float64, context string) domain.DecodeOptions {
	opts := domain.DecodeOptions{
		Language:       e.cfg.Language,
		Threads:        e.cfg.Threads,
		BeamSize:       e.cfg.BeamSize,
		Temperature:    e.cfg.Temperature,
		TemperatureInc: e.cfg.TemperatureInc,
		LogprobThold:   float32(e.cfg.Thresholds.LogProb),
		// Whisper's skip rule is turned off (threshold above any probability): we flag
		// instead of dropping, in guard().
		NoSpeechThold:     2,
		Prompt:            decoderPrompt(e.Prompt(), context),
		SuppressNonSpeech: true,
		MaxTokens:         MaxTokensFor(seconds),
	}
	if e.cfg.ShrinkAudioCtx {
		opts.AudioCtx = AudioCtxFor(max(seconds, float64(minDecodeSamples)/domain.SampleRate), e.cfg.ModelAudioCtx)
	}
	return opts
}

func (e *Engine) runPart(ctx context.Context, d Decoder, u domain.Utterance) ([]domain.Segment, time.Duration, error) {
	mono := u.Mono()
	if len(mono) == 0 {
		return nil, 0, nil
	}
	start := time.Now()
	decoded, err := e.decodeAll(ctx, d, mono, u.Context)
	took := time.Since(start)
	if err != nil {
		return nil, took, fmt.Errorf("transcribe: utterance %d: %w", u.Seq, err)
	}
	return e.segments(u, decoded), took, nil
}

// decodeAll decodes mono, speech after the text context, and makes sure the decoder did
// not stop early: when the words it aligned leave MaxHole or more of the audio without one
// (see hole), the audio from the end of the last word before that stretch is decoded once
// more, after the text before it, and whichever of the two decodes has more words there
// is kept. A segment that ends its words before the stretch no longer claims it, so
// speech still without words is flagged untranscribed (segments).
func (e *Engine) decodeAll(ctx context.Context, d Decoder, mono []float32, context string) ([]domain.DecodedSegment, error) {
	seconds := float64(len(mono)) / domain.SampleRate
	opts := e.options(seconds, context)
	opts.TokenTimestamps = true // the alignment (DTW) the hole is found by
	decoded, err := d.Decode(ctx, padded(mono), opts)
	if err != nil {
		return nil, err
	}
	from, length, ok := hole(decoded, seconds)
	if !ok || length < MaxHole || from == 0 {
		// No hole, or no word before it: the same audio again would decode the same.
		return decoded, nil
	}
	before, had := splitDecoded(decoded, from)
	cut := int(from * domain.SampleRate)
	prior := []string{}
	if context != "" {
		prior = append(prior, context)
	}
	for _, s := range before {
		prior = append(prior, strings.TrimSpace(s.Text))
	}
	ropts := e.options(seconds-from, ContextTail(prior))
	ropts.TokenTimestamps = true
	again, err := d.Decode(ctx, padded(mono[cut:]), ropts)
	if err != nil {
		return nil, err
	}
	if words(again) <= had {
		return endClaims(decoded, from), nil
	}
	for _, s := range again {
		before = append(before, s.Shifted(from))
	}
	return before, nil
}

// segments converts decoded output to transcript segments on the recording's timeline
// (through the runs of a packed utterance). Every run the VAD heard that no decoded text
// covers is kept as an empty segment flagged untranscribed, so the reviewer sees the gap.
func (e *Engine) segments(u domain.Utterance, decoded []domain.DecodedSegment) []domain.Segment {
	dur := u.Seconds()
	var out []domain.Segment
	decoded = e.atTurns(u, decoded)
	for _, d := range decoded {
		seg := guard(d, e.cfg.Thresholds)
		if seg.Text == "" {
			continue // an annotation such as [BLANK_AUDIO]: no words; its run is checked below
		}
		s, en := clamp(d.Start, 0, dur), clamp(d.End, 0, dur)
		if en <= s {
			s, en = 0, dur
		}
		seg.Start, seg.End = u.OnRecording(s, false), u.OnRecording(en, true)
		e.attribute(&seg, u, s, en)
		out = append(out, seg)
	}
	for _, r := range runsOf(u) {
		if coveredBy(r.Interval, out) {
			continue
		}
		seg := domain.Segment{Start: r.Start, End: r.End, Flags: []domain.Flag{domain.FlagUntranscribed}}
		e.attribute(&seg, u, r.At, r.At+r.Duration())
		at := len(out) // in time order among the decoded segments, which keep theirs
		for i, s := range out {
			if s.Start > seg.Start {
				at = i
				break
			}
		}
		out = slices.Insert(out, at, seg)
	}
	if u.Cut {
		out[len(out)-1].Flags = append(out[len(out)-1].Flags, domain.FlagTruncated)
	}
	for i := range out {
		out[i].ID = fmt.Sprintf("u%d-%d", u.Seq, i)
	}
	return out
}

// coveredBy reports whether any segment with text overlaps iv.
func coveredBy(iv domain.Interval, segs []domain.Segment) bool {
	for _, s := range segs {
		if s.Text != "" && s.Start < iv.End && s.End > iv.Start {
			return true
		}
	}
	return false
}

// attribute gives a segment (times in u's audio) its speaker from u's speaker spans.
func (e *Engine) attribute(seg *domain.Segment, u domain.Utterance, from, to float64) {
	sp, uncertain := diarize.Decide(u.Speakers, u.OnRecording(from, false), u.OnRecording(to, true))
	seg.Speaker = sp
	if uncertain {
		seg.Flags = append(seg.Flags, domain.FlagOverlap)
	}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// alignLate is how much later than it was said DTW aligns a word, as a cut at a turn
// reads it: measured on the PriMock57 fence files in windows mixing speakers, the words
// put on the wrong speaker were 3.9 % reading the alignment as it is, 2.2 % reading it
// 0.2–0.3 s earlier, 3.1 % at 0.4 s and 6.4 % at 0.2 s later.
const alignLate = 0.25

// atTurns cuts the decoded segments of a window that holds several speakers (Packer's
// MixSpeakers) where the floor passes between its runs: each word goes with the run its
// alignment (DTW, read alignLate earlier) falls in, and a segment is cut before the
// first word of a run with another speaker, at that run's start. A window of one speaker,
// or tokens without alignment, are left as decoded.
func (e *Engine) atTurns(u domain.Utterance, decoded []domain.DecodedSegment) []domain.DecodedSegment {
	speakers := make([]domain.Speaker, len(u.Runs))
	mixed := false
	for i, r := range u.Runs {
		speakers[i], _ = diarize.Decide(u.Speakers, r.Start, r.End)
		mixed = mixed || speakers[i] != speakers[0]
	}
	if !mixed {
		return decoded
	}
	var out []domain.DecodedSegment
	for _, d := range decoded {
		if !aligned(d) {
			out = append(out, d)
			continue
		}
		cur := domain.DecodedSegment{Start: d.Start, End: d.End, NoSpeechProb: d.NoSpeechProb}
		run, cut := -1, false
		for _, t := range d.Tokens {
			if HasWord(t.Text) {
				r := u.RunAt(t.At-alignLate, false)
				if run >= 0 && speakers[r] != speakers[run] && len(cur.Tokens) > 0 {
					at := u.Runs[r].At
					cur.End = max(cur.Start+minSpan, min(d.End, at))
					out = append(out, cur)
					cur = domain.DecodedSegment{Start: cur.End, End: d.End, NoSpeechProb: d.NoSpeechProb}
					cut = true
				}
				run = r
			}
			cur.Tokens = append(cur.Tokens, t)
			cur.Text += t.Text
		}
		switch {
		case !cut:
			out = append(out, d)
		case len(cur.Tokens) > 0:
			cur.End = max(cur.End, cur.Start+minSpan)
			out = append(out, cur)
		}
	}
	return out
}
