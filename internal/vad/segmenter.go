// Package vad turns a stream of speech probabilities into utterances for the decoder: it
// cuts at pauses, bounds utterance length, pads the edges and drops everything else, so
// silence never reaches the decoder. The probabilities come from a Scorer (Silero via
// libwhisper in production); this package itself is pure Go.
package vad

import (
	"fmt"
	"math"

	"scribe/internal/domain"
)

// Scorer scores audio for speech. Probs is called with a multiple of Window() samples and
// returns one probability per window; it keeps state between calls (Silero's LSTM).
type Scorer interface {
	Probs(samples []float32) ([]float32, error)
	Reset()
}

// Window is the number of samples the scorer rates at a time (Silero: 512 at 16 kHz).
const Window = 512

// Config holds the segmentation rules. Durations are seconds.
type Config struct {
	Threshold    float32 // a window at or above this starts or continues speech
	NegThreshold float32 // speech ends only when windows fall below this (hysteresis)
	MinSpeech    float64 // utterances with less speech than this are dropped as blips
	MinSilence   float64 // a pause this long ends an utterance
	MaxUtterance float64 // longer speech is cut here (whisper's window is 30 s)
	Padding      float64 // audio kept before and after speech
	// GrowEvery returns the new audio of the utterance in progress after this much of it
	// (0: only finished utterances are returned). See Push.
	GrowEvery float64
	// TurnMin: with two or more channels (a microphone per speaker), an utterance is also
	// cut when another channel has dominated for this long, so each utterance holds one
	// speaker's turn (0 disables).
	TurnMin float64
}

// turnDominanceDB is how much louder a channel must be in a window to own it.
const turnDominanceDB = 6

// DefaultConfig suits consultation speech: a 0.6 s pause separates utterances.
func DefaultConfig() Config {
	return Config{
		Threshold:    0.5,
		NegThreshold: 0.35,
		MinSpeech:    0.12,
		MinSilence:   0.6,
		MaxUtterance: 20,
		Padding:      0.2,
		GrowEvery:    0.1,
		TurnMin:      0.3,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Threshold <= 0 || c.Threshold >= 1:
		return fmt.Errorf("vad: threshold %.2f must be between 0 and 1", c.Threshold)
	case c.NegThreshold <= 0 || c.NegThreshold > c.Threshold:
		return fmt.Errorf("vad: negative threshold %.2f must be in (0, threshold]", c.NegThreshold)
	case c.MinSilence <= 0:
		return fmt.Errorf("vad: min silence must be positive")
	case c.MaxUtterance < 1 || c.MaxUtterance > 30:
		return fmt.Errorf("vad: max utterance %.1f s must be between 1 and 30 s", c.MaxUtterance)
	case c.Padding < 0 || c.Padding > 1:
		return fmt.Errorf("vad: padding %.2f s must be between 0 and 1 s", c.Padding)
	}
	return nil
}

func secondsToSamples(s float64) int { return int(s*domain.SampleRate + 0.5) }

// Segmenter cuts one stream into utterances. Not safe for concurrent use.
type Segmenter struct {
	cfg    Config
	scorer Scorer
	nch    int

	pending [][]float32 // per channel, samples not yet scored (< Window)
	pendMix []float32

	// Audio kept: the pre-roll ring while idle, the utterance while in speech. Index 0 of
	// each buffer is sample number bufStart of the stream.
	buf      [][]float32
	bufStart int64
	scored   int64 // samples scored so far (end of the last scored window)

	inSpeech    bool
	uttStart    int64 // first sample of the utterance (with padding)
	lastSpeech  int64 // end of the last window at or above NegThreshold
	speechCount int64 // samples of windows above threshold in this utterance
	emitted     int64 // stream sample up to which audio has been returned
	seq         int

	// Speaker turns (multi-channel only): the channel owning the utterance, and a
	// challenger that has dominated since turnStart for turnRun windows.
	owner, challenger int
	turnStart         int64
	turnRun           int
}

// New makes a segmenter for a stream of nch channels.
func New(cfg Config, scorer Scorer, nch int) (*Segmenter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nch < 1 {
		return nil, fmt.Errorf("vad: need at least one channel, got %d", nch)
	}
	scorer.Reset()
	return &Segmenter{cfg: cfg, scorer: scorer, nch: nch, pending: make([][]float32, nch), buf: make([][]float32, nch)}, nil
}

// Push adds audio: the mono mix the VAD listens to, and the channels kept for the decoder
// and for speaker attribution (all the same length). It returns utterances that ended
// (Final, with all their audio) and, every GrowEvery seconds, the one in progress (Final
// false): its interval so far, with only the audio not returned before (Utterance.AudioStart).
// A finished utterance's audio may overlap audio returned with it while it grew, and its
// padding may overlap the previous utterance's.
func (s *Segmenter) Push(mix []float32, chans [][]float32) ([]domain.Utterance, error) {
	if len(chans) != s.nch {
		return nil, fmt.Errorf("vad: got %d channels, stream has %d", len(chans), s.nch)
	}
	for _, c := range chans {
		if len(c) != len(mix) {
			return nil, fmt.Errorf("vad: channel length %d differs from mix length %d", len(c), len(mix))
		}
	}
	s.pendMix = append(s.pendMix, mix...)
	for i := range chans {
		s.pending[i] = append(s.pending[i], chans[i]...)
	}
	n := len(s.pendMix) / Window * Window
	if n == 0 {
		return nil, nil
	}
	probs, err := s.scorer.Probs(s.pendMix[:n])
	if err != nil {
		return nil, fmt.Errorf("vad: scoring: %w", err)
	}
	if len(probs) != n/Window {
		return nil, fmt.Errorf("vad: scorer returned %d probabilities for %d windows", len(probs), n/Window)
	}
	for i := range s.nch {
		s.buf[i] = append(s.buf[i], s.pending[i][:n]...)
		s.pending[i] = append(s.pending[i][:0], s.pending[i][n:]...)
	}
	s.pendMix = append(s.pendMix[:0], s.pendMix[n:]...)

	var out []domain.Utterance
	for _, p := range probs {
		wStart := s.scored
		s.scored += Window
		if u, ok := s.turn(wStart); ok {
			out = append(out, u)
		}
		if u, ok := s.step(p, wStart); ok {
			out = append(out, u)
		}
	}
	if s.inSpeech && s.cfg.GrowEvery > 0 && s.scored-max(s.emitted, s.uttStart) >= int64(secondsToSamples(s.cfg.GrowEvery)) {
		out = append(out, s.growth())
	}
	if !s.inSpeech {
		s.trimToPreroll()
	}
	return out, nil
}

// step advances the state machine by one scored window.
func (s *Segmenter) step(p float32, wStart int64) (domain.Utterance, bool) {
	wEnd := wStart + Window
	pad := int64(secondsToSamples(s.cfg.Padding))
	if !s.inSpeech {
		if p < s.cfg.Threshold {
			return domain.Utterance{}, false
		}
		s.inSpeech = true
		s.uttStart = max(s.bufStart, wStart-pad)
		s.lastSpeech = wEnd
		s.speechCount = Window
		s.owner, s.challenger, s.turnRun = -1, -1, 0
		return domain.Utterance{}, false
	}
	if p >= s.cfg.Threshold {
		s.speechCount += Window
	}
	if p >= s.cfg.NegThreshold {
		s.lastSpeech = wEnd
	}
	if float64(wEnd-s.lastSpeech)/domain.SampleRate >= s.cfg.MinSilence {
		return s.finish(min(s.lastSpeech+pad, wEnd), false)
	}
	if float64(wEnd-s.uttStart)/domain.SampleRate >= s.cfg.MaxUtterance {
		u, ok := s.finish(wEnd, true)
		// Speech goes on: the next utterance starts where this one was cut.
		s.inSpeech = true
		s.uttStart = wEnd
		s.lastSpeech = wEnd
		s.speechCount = 0
		return u, ok
	}
	return domain.Utterance{}, false
}

// turn watches which channel dominates the window at wStart and, when another channel
// has taken over for
// TurnMin, cuts the utterance where the new speaker began. The new speaker's audio
// starts the next utterance.
func (s *Segmenter) turn(wStart int64) (domain.Utterance, bool) {
	if s.nch < 2 || s.cfg.TurnMin <= 0 || !s.inSpeech {
		return domain.Utterance{}, false
	}
	from := int(wStart - s.bufStart)
	if from < 0 || from+Window > len(s.buf[0]) {
		return domain.Utterance{}, false
	}
	e0, e1 := energy(s.buf[0][from:from+Window]), energy(s.buf[1][from:from+Window])
	dom := -1
	switch d := 10 * math.Log10((e0+1e-12)/(e1+1e-12)); {
	case e0+e1 < 1e-7: // both quiet: no evidence either way
	case d >= turnDominanceDB:
		dom = 0
	case d <= -turnDominanceDB:
		dom = 1
	}
	switch {
	case dom < 0:
		return domain.Utterance{}, false
	case s.owner < 0:
		s.owner = dom
	case dom == s.owner:
		s.challenger, s.turnRun = -1, 0
	case dom == s.challenger:
		s.turnRun++
	default:
		s.challenger, s.turnStart, s.turnRun = dom, wStart, 1
	}
	if s.challenger < 0 || float64(s.turnRun*Window)/domain.SampleRate < s.cfg.TurnMin || s.turnStart <= s.uttStart {
		return domain.Utterance{}, false
	}
	cutAt, newOwner := s.turnStart, s.challenger
	u, ok := s.finish(cutAt, false)
	s.inSpeech = true
	s.uttStart = cutAt
	s.lastSpeech = wStart + Window
	s.speechCount = int64(s.turnRun * Window)
	s.owner, s.challenger, s.turnRun = newOwner, -1, 0
	return u, ok
}

func energy(x []float32) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return e / float64(max(len(x), 1))
}

// finish closes the utterance at sample end; blips shorter than MinSpeech are dropped.
func (s *Segmenter) finish(end int64, cut bool) (domain.Utterance, bool) {
	s.inSpeech = false
	if float64(s.speechCount)/domain.SampleRate < s.cfg.MinSpeech && !cut {
		return domain.Utterance{}, false
	}
	u := s.snapshot(end, cut)
	s.seq++
	// Release the utterance's audio: only the pre-roll from end onwards stays.
	s.dropBefore(end)
	return u, true
}

// snapshot copies the finished utterance's audio from uttStart to end.
func (s *Segmenter) snapshot(end int64, cut bool) domain.Utterance {
	s.emitted = max(s.emitted, end)
	u := s.audio(s.uttStart, end)
	u.Final, u.Cut = true, cut
	u.SpeechEnd = float64(min(s.lastSpeech, end)) / domain.SampleRate
	return u
}

// growth returns the utterance in progress with the audio scored since the last return.
func (s *Segmenter) growth() domain.Utterance {
	from := max(s.emitted, s.uttStart)
	s.emitted = s.scored
	u := s.audio(from, s.scored)
	u.Start = float64(s.uttStart) / domain.SampleRate
	u.SpeechEnd = float64(s.lastSpeech) / domain.SampleRate
	return u
}

// audio copies samples [from, to) of every channel as an utterance over that interval.
func (s *Segmenter) audio(from, to int64) domain.Utterance {
	i, j := int(from-s.bufStart), int(to-s.bufStart)
	chans := make([][]float32, s.nch)
	for c := range s.nch {
		chans[c] = append([]float32(nil), s.buf[c][i:j]...)
	}
	return domain.Utterance{
		Seq:      s.seq,
		Interval: domain.Interval{Start: float64(from) / domain.SampleRate, End: float64(to) / domain.SampleRate},
		Channels: chans,
	}
}

func (s *Segmenter) dropBefore(sample int64) {
	k := int(sample - s.bufStart)
	if k <= 0 {
		return
	}
	for i := range s.nch {
		k = min(k, len(s.buf[i]))
		s.buf[i] = append(s.buf[i][:0], s.buf[i][k:]...)
	}
	s.bufStart += int64(k)
}

// trimToPreroll keeps only the padding's worth of audio while nobody speaks.
func (s *Segmenter) trimToPreroll() {
	pad := int64(secondsToSamples(s.cfg.Padding))
	s.dropBefore(s.scored - pad)
}

// Flush ends the stream: a pending utterance is closed (its last partial window included).
func (s *Segmenter) Flush() ([]domain.Utterance, error) {
	if !s.inSpeech {
		return nil, nil
	}
	// The partial window was never scored; keep it since speech was still going on.
	for i := range s.nch {
		s.buf[i] = append(s.buf[i], s.pending[i]...)
		s.pending[i] = s.pending[i][:0]
	}
	end := s.scored + int64(len(s.pendMix))
	s.pendMix = s.pendMix[:0]
	s.lastSpeech = end
	u, ok := s.finish(end, false)
	if !ok {
		return nil, nil
	}
	return []domain.Utterance{u}, nil
}

// Channels is the number of channels the stream has.
func (s *Segmenter) Channels() int { return s.nch }

// Buffered reports how many samples per channel the segmenter holds: bounded by the
// padding while idle and by MaxUtterance while in speech.
func (s *Segmenter) Buffered() int { return len(s.buf[0]) + len(s.pending[0]) }

// Speech runs a whole recording through a segmenter and returns its speech intervals
// (padding excluded is not attempted: these are the utterance spans as cut).
func Speech(cfg Config, scorer Scorer, mono []float32) ([]domain.Interval, error) {
	cfg.GrowEvery = 0
	seg, err := New(cfg, scorer, 1)
	if err != nil {
		return nil, err
	}
	var out []domain.Interval
	const chunk = 16 * Window
	for i := 0; i < len(mono); i += chunk {
		j := min(i+chunk, len(mono))
		us, err := seg.Push(mono[i:j], [][]float32{mono[i:j]})
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			out = append(out, u.Interval)
		}
	}
	us, err := seg.Flush()
	if err != nil {
		return nil, err
	}
	for _, u := range us {
		out = append(out, u.Interval)
	}
	return out, nil
}
