// Package domain holds the types every stage of scribe shares: audio utterances,
// transcript segments, speakers and flags. It imports only the standard library so that
// every other package can depend on it without pulling in cgo or storage.
package domain

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SampleRate is the rate, in Hz, of all audio after the front end: whisper and Silero
// both work at 16 kHz.
const SampleRate = 16000

// Speaker says who spoke a segment, as the room's speaker attribution (package diarize)
// decided: from channel energy with a microphone each, from direction with an array on
// the desk, from voice clustering with one microphone; SpeakerUnknown where it could not
// tell, for the clinician to correct.
type Speaker string

const (
	SpeakerClinician Speaker = "clinician"
	SpeakerPatient   Speaker = "patient"
	SpeakerUnknown   Speaker = "unknown"
)

// ParseSpeaker accepts the three speaker names and nothing else.
func ParseSpeaker(s string) (Speaker, error) {
	switch sp := Speaker(s); sp {
	case SpeakerClinician, SpeakerPatient, SpeakerUnknown:
		return sp, nil
	}
	return "", fmt.Errorf("unknown speaker %q (want clinician, patient or unknown)", s)
}

// Flag marks a segment for the reviewing clinician. Machine flags come from the
// transcription guards; review flags are raised by clinicians and feed safety monitoring.
// A flagged segment is always kept and shown, never silently dropped.
type Flag string

const (
	// Machine flags.
	FlagNoSpeech      Flag = "no_speech"      // decoder thinks there was no speech: possible invented text
	FlagLowConfidence Flag = "low_confidence" // average token log-probability under the threshold
	FlagRepetition    Flag = "repetition"     // a repeated-token loop was cut out
	FlagFallback      Flag = "fallback"       // decoded only after temperature fallback
	FlagTruncated     Flag = "truncated"      // utterance hit the maximum length and was cut
	FlagOverlap       Flag = "overlap"        // both speakers heard, or speaker otherwise uncertain
	FlagSecondPass    Flag = "second_pass"    // re-transcribed by the larger second-pass model

	// Review flags (raised by a clinician).
	FlagWrongWords    Flag = "wrong_words"
	FlagWrongSpeaker  Flag = "wrong_speaker"
	FlagInventedText  Flag = "invented_text"
	FlagMissingSpeech Flag = "missing_speech"
)

// ReviewFlags are the flags a clinician may raise on a segment.
var ReviewFlags = []Flag{FlagWrongWords, FlagWrongSpeaker, FlagInventedText, FlagMissingSpeech}

// Interval is a span of audio in seconds from the start of the recording.
type Interval struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// Duration is the length of the interval.
func (iv Interval) Duration() float64 { return iv.End - iv.Start }

// Utterance is one stretch of speech cut by the segmenter, ready for the decoder. Audio is
// 16 kHz float32, one slice per input channel; it lives in memory only and is released
// once the utterance is transcribed.
type Utterance struct {
	Seq      int         // 0-based order within the stream
	Interval             // where it sits in the recording
	Channels [][]float32 // per-channel samples at SampleRate; Channels[0] is the mix when mono
	Final    bool        // false for an utterance still growing (Channels: its new audio only)
	Cut      bool        // true when the maximum utterance length forced the cut
	// Context is the text committed just before this utterance in the same stream (its
	// tail), given to the decoder as the preceding text, as Whisper was trained to see it.
	Context string
	// SpeechEnd is where the last speech heard in it ends (seconds on the stream's
	// timeline). In a growing utterance the audio after it is a pause that may yet end it.
	SpeechEnd float64
	// Speakers says who spoke when in the utterance (stream timeline), from the room's
	// speaker attribution; stretches no one was attributed to have no span.
	Speakers []SpeakerSpan
	// Turns are the times inside the utterance where the floor passes from one speaker
	// to the other without a pause: the decoder takes each turn on its own.
	Turns []float64
	// Runs is set on a packed utterance (file mode): several speech runs joined into one
	// decode window, Channels holding them back to back. Each run says where it starts in
	// Channels and where it was in the recording; Interval then spans the first run's
	// start to the last run's end. Empty for an utterance that is one run of the recording.
	Runs []Run
}

// AudioStart is where the utterance's samples begin on the stream's timeline: its start,
// or for a growing utterance (Final false) the first sample not returned before, since it
// carries only its new audio.
func (u Utterance) AudioStart() float64 {
	if len(u.Channels) == 0 {
		return u.End
	}
	return u.End - float64(len(u.Channels[0]))/SampleRate
}

// SpeakerSpan is a stretch of audio attributed to one speaker.
type SpeakerSpan struct {
	Interval
	Speaker Speaker
}

// Run is one stretch of a packed utterance: At seconds into its audio, Interval on the
// recording's timeline (the same length).
type Run struct {
	At float64 `json:"at"`
	Interval
}

// Seconds is the length of the utterance's audio.
func (u Utterance) Seconds() float64 {
	if len(u.Runs) == 0 || len(u.Channels) == 0 {
		return u.Duration()
	}
	return float64(len(u.Channels[0])) / SampleRate
}

// Speech is the stretches of the recording the utterance holds: its runs, or itself.
func (u Utterance) Speech() []Interval {
	if len(u.Runs) == 0 {
		return []Interval{u.Interval}
	}
	out := make([]Interval, len(u.Runs))
	for i, r := range u.Runs {
		out[i] = r.Interval
	}
	return out
}

// OnRecording maps t seconds into the utterance's audio to the recording's timeline. In
// a packed utterance a time on the boundary of two runs belongs to the later run when it
// starts a span (end false) and to the earlier when it ends one (end true).
func (u Utterance) OnRecording(t float64, end bool) float64 {
	if len(u.Runs) == 0 {
		return u.Start + t
	}
	r := u.Runs[u.RunAt(t, end)]
	return r.Start + min(max(t-r.At, 0), r.Duration())
}

// RunAt is the index of the run of a packed utterance that t seconds into its audio
// falls in (0 when it has none); on the boundary of two runs, the later one unless end.
func (u Utterance) RunAt(t float64, end bool) int {
	i := 0
	for j, r := range u.Runs {
		if r.At < t || (!end && r.At == t) {
			i = j
		}
	}
	return i
}

// Mono returns the utterance as one channel (the average of all channels).
func (u Utterance) Mono() []float32 { return MixDown(u.Channels) }

// MixDown averages channels into one. A single channel is returned as is.
func MixDown(chans [][]float32) []float32 {
	switch len(chans) {
	case 0:
		return nil
	case 1:
		return chans[0]
	}
	n := len(chans[0])
	for _, c := range chans[1:] {
		n = min(n, len(c))
	}
	out := make([]float32, n)
	scale := 1 / float32(len(chans))
	for _, c := range chans {
		for i := range n {
			out[i] += c[i] * scale
		}
	}
	return out
}

// Segment is a piece of transcript with its timing, speaker and flags.
type Segment struct {
	ID      string  `json:"id"`
	Start   float64 `json:"start"`
	End     float64 `json:"end"`
	Speaker Speaker `json:"speaker"`
	Text    string  `json:"text"`
	Flags   []Flag  `json:"flags,omitempty"`
	// NoSpeechProb and AvgLogProb are the decoder's own confidence figures, kept so
	// monitoring can relate edits to them.
	NoSpeechProb float64 `json:"no_speech_prob,omitempty"`
	AvgLogProb   float64 `json:"avg_logprob,omitempty"`
}

// Extend appends a committed piece of the same line (LiveEvent.Continues): its words
// follow the line's, its end and speaker (attributed over more of the line) replace the
// line's, flags are joined, and the confidence figures are averaged by words.
func (s *Segment) Extend(piece Segment) {
	n, m := len(strings.Fields(s.Text)), len(strings.Fields(piece.Text))
	if n+m > 0 {
		s.AvgLogProb = (s.AvgLogProb*float64(n) + piece.AvgLogProb*float64(m)) / float64(n+m)
	}
	s.NoSpeechProb = max(s.NoSpeechProb, piece.NoSpeechProb)
	switch {
	case s.Text == "":
		s.Text = piece.Text
	case piece.Text != "":
		s.Text += " " + piece.Text
	}
	s.End = max(s.End, piece.End)
	if piece.Speaker != "" {
		s.Speaker = piece.Speaker
	}
	for _, f := range piece.Flags {
		if !s.HasFlag(f) {
			s.Flags = append(s.Flags, f)
		}
	}
}

// Text is the text of segs in order, one space between segments, empty ones skipped.
func Text(segs []Segment) string {
	parts := make([]string, 0, len(segs))
	for _, s := range segs {
		if s.Text != "" {
			parts = append(parts, s.Text)
		}
	}
	return strings.Join(parts, " ")
}

// HasFlag reports whether f is among the segment's flags.
func (s Segment) HasFlag(f Flag) bool {
	for _, g := range s.Flags {
		if g == f {
			return true
		}
	}
	return false
}

// Timings records where the time of a transcription went.
type Timings struct {
	Load     time.Duration `json:"-"`
	Frontend time.Duration `json:"-"` // clean-up, VAD and segmentation

	Decode     time.Duration `json:"-"`
	Total      time.Duration `json:"-"`
	LoadMS     float64       `json:"load_ms"`
	FrontendMS float64       `json:"frontend_ms"`
	DecodeMS   float64       `json:"decode_ms"`
	TotalMS    float64       `json:"total_ms"`
}

// Fill sets the millisecond fields from the durations, for JSON output.
func (t *Timings) Fill() {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	t.LoadMS, t.FrontendMS, t.DecodeMS, t.TotalMS = ms(t.Load), ms(t.Frontend), ms(t.Decode), ms(t.Total)
}

// Transcript is the result of transcribing a whole file or session.
type Transcript struct {
	AudioSeconds float64    `json:"audio_seconds"`
	Channels     int        `json:"channels"`
	Speech       []Interval `json:"speech"`
	Segments     []Segment  `json:"segments"`
	// Speakers is who spoke when, as the speaker attribution found it (for scoring).
	Speakers []SpeakerSpan `json:"-"`
	Timings  Timings       `json:"timings"`
	Model    string        `json:"model"`
}

// AudioSource yields audio at SampleRate, one slice per channel per chunk. Live sources
// (a microphone, a browser, a WAV file replayed at real-time pace) block until audio is
// there. Read returns io.EOF once the source has ended (Stop, end of file); Close releases
// it and makes a blocked Read return.
type AudioSource interface {
	Channels() int
	Read(ctx context.Context) ([][]float32, error)
	Close() error
}

// LiveEventKind tells a provisional transcript (may still change) from a committed one.
type LiveEventKind string

const (
	EventProvisional LiveEventKind = "provisional"
	EventCommitted   LiveEventKind = "committed"
	// EventRefined replaces an utterance's committed segments (Replaces) with a second,
	// larger model's (Refined), unless the clinician has edited them meanwhile.
	EventRefined LiveEventKind = "refined"
)

// LiveEvent is what a live pipeline emits. A committed event for an utterance replaces
// every provisional event with the same Utterance number; provisional events may be
// dropped under load, committed ones never are.
type LiveEvent struct {
	Kind      LiveEventKind `json:"kind"`
	Utterance int           `json:"utterance"`
	Segment   Segment       `json:"segment"`
	// Continues marks a committed event that extends the line committed before under the
	// same Utterance: words committed while the speaker was still talking. Its Segment
	// holds only the new words; the line is the pieces joined (Segment.Extend).
	Continues bool `json:"continues,omitempty"`
	// Audio is the utterance's audio, on the last committed event of each utterance, for
	// a second pass to keep in memory (never on disk); nil otherwise.
	Audio *Utterance `json:"-"`
	// Replaces and Refined belong to EventRefined.
	Replaces []Segment `json:"replaces,omitempty"`
	Refined  []Segment `json:"refined,omitempty"`
}

// AddCommitted adds a committed event to the segments committed so far, in order: a
// piece that continues a line extends the line's segment (the last one).
func AddCommitted(segs []Segment, ev LiveEvent) []Segment {
	if ev.Continues && len(segs) > 0 {
		segs[len(segs)-1].Extend(ev.Segment)
		return segs
	}
	return append(segs, ev.Segment)
}

// FlagUntranscribed marks an utterance in which the VAD heard speech but the decoder
// produced no text: it is kept as an empty segment so the clinician sees the gap.
const FlagUntranscribed Flag = "untranscribed"

// DecodeOptions are what a speech decoder is asked to do for one utterance.
type DecodeOptions struct {
	Language string
	Threads  int
	// AudioCtx shrinks the encoder's window for short audio (0 = the full 30 s).
	AudioCtx int
	// BeamSize > 1 selects beam search, otherwise greedy.
	BeamSize int
	// Temperature fallback: TemperatureInc 0 disables it.
	Temperature    float32
	TemperatureInc float32
	EntropyThold   float32
	LogprobThold   float32
	NoSpeechThold  float32
	// Prompt is the vocabulary hint, built only from the admin-managed word list.
	Prompt            string
	SuppressNonSpeech bool
	// MaxTokens caps the text tokens decoded (0 = the model's limit): speech rarely
	// exceeds ~7 tokens a second, so a longer output is a runaway decode.
	MaxTokens int
	// TokenTimestamps asks for each token's start and end (DecodedToken.Start, End): the
	// streaming commit policy places words on the timeline with them.
	TokenTimestamps bool
	// OneWindow keeps the words after the decoder's last timestamp in audio of at most
	// 30 s instead of decoding the audio from that timestamp again (a second pass of the
	// encoder): the live policy decodes its buffer again a step later anyway.
	OneWindow bool
}

// DecodedToken is one text token with its probability and, when asked for
// (DecodeOptions.TokenTimestamps), its place in the audio: seconds from the start of the
// samples decoded. At is the moment the decoder's attention puts the token at (DTW
// alignment, when the model was loaded with it), or -1.
type DecodedToken struct {
	ID      int     `json:"id"`
	Text    string  `json:"text"`
	P       float32 `json:"p"`
	LogProb float32 `json:"logprob"`
	// Start and End are seconds from the start of the samples, when token timestamps
	// were asked for (DecodeOptions.TokenTimestamps); 0 otherwise.
	Start float64 `json:"start,omitempty"`
	End   float64 `json:"end,omitempty"`
	At    float64 `json:"at,omitempty"`
}

// DecodedSegment is a decoder's raw output; times are seconds from the start of the
// samples it was given.
type DecodedSegment struct {
	Start, End   float64
	Text         string
	NoSpeechProb float64
	Tokens       []DecodedToken
}

// Shifted is s with its times and its tokens' d seconds later: the decode of audio that
// began d seconds into the audio the caller places it in.
func (s DecodedSegment) Shifted(d float64) DecodedSegment {
	s.Start, s.End = s.Start+d, s.End+d
	s.Tokens = slices.Clone(s.Tokens)
	for k := range s.Tokens {
		s.Tokens[k].Start += d
		s.Tokens[k].End += d
		if s.Tokens[k].At >= 0 {
			s.Tokens[k].At += d
		}
	}
	return s
}

// AvgLogProb is the mean log-probability of the segment's tokens (0 when none).
func (s DecodedSegment) AvgLogProb() float64 {
	if len(s.Tokens) == 0 {
		return 0
	}
	var sum float64
	for _, t := range s.Tokens {
		sum += float64(t.LogProb)
	}
	return sum / float64(len(s.Tokens))
}

// OverlapSeconds is the time two sets of intervals share (each set non-overlapping).
func OverlapSeconds(a, b []Interval) float64 {
	var s float64
	for _, x := range a {
		for _, y := range b {
			if lo, hi := max(x.Start, y.Start), min(x.End, y.End); hi > lo {
				s += hi - lo
			}
		}
	}
	return s
}

// TotalSeconds is the summed length of the intervals.
func TotalSeconds(a []Interval) float64 {
	var s float64
	for _, x := range a {
		s += x.Duration()
	}
	return s
}
