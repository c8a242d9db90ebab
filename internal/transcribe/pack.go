package transcribe

import (
	"fmt"

	"scribe/internal/diarize"
	"scribe/internal/domain"
)

// DefaultPackSeconds is the longest packed utterance: whisper's own 30 s window.
const DefaultPackSeconds = 30

// Packer joins a stream's finished utterances, in order, into packed utterances of at most
// a window's length for file transcription. Whisper was trained on 30 s windows of
// running speech; decoding each VAD utterance alone gives it two seconds and no context,
// and it loses words at the edges ("And so my fellow Americans" came out "And so am I
// fellow American" on jfk.wav's first 2 s). Packing keeps what the VAD gains — silence
// never reaches the decoder — and gives the decoder whisper's whole window.
//
// The runs are joined back to back: each utterance already carries the segmenter's
// padding, so two runs meet with a short pause of real audio (twice the padding) between
// them. Each run's place in the recording is kept in the packed utterance's Runs, so
// the engine maps decoded times back and marks a run that decoded to nothing.
//
// A window holds one speaker (as the room's attribution says: clinician, patient or
// unknown): a change of speaker starts a new window, and an utterance in which the floor
// passed without a pause is cut at its turns first. Whisper's segments follow sentences,
// not turns, and its token times are too loose to cut them at a turn afterwards:
// measured on rendered consultations with a microphone pair, windows mixing speakers put
// a third to two thirds of the words on the wrong speaker (WDER 0.33–0.62, against
// 0.00–0.05 decoding turn by turn). The text before each window still reaches the
// decoder as context, so a short answer is not decoded blind.
type Packer struct {
	// MixSpeakers lets a window hold several speakers' runs, and the turns are then cut
	// by the words' alignment (Engine.atTurns): transcription.file_mix_speakers.
	MixSpeakers bool
	max         int // samples per packed utterance
	seq         int
	cur         domain.Utterance
	speaker     domain.Speaker // the window's speaker
}

// NewPacker packs up to seconds of audio per utterance (DefaultPackSeconds when ≤ 0).
func NewPacker(seconds float64) *Packer {
	if seconds <= 0 {
		seconds = DefaultPackSeconds
	}
	return &Packer{max: int(seconds * domain.SampleRate)}
}

// Add appends a finished utterance and returns the windows it completed, in order: none
// while the window being filled has room and the same speaker. An utterance with turns
// inside is added turn by turn. An utterance longer than the window is packed alone
// (whisper then slides over it as it does over a long file).
func (p *Packer) Add(u domain.Utterance) []domain.Utterance {
	if len(u.Channels) == 0 || len(u.Channels[0]) == 0 {
		return nil
	}
	var done []domain.Utterance
	for _, part := range splitTurns(u) {
		if w, ok := p.add(part); ok {
			done = append(done, w)
		}
	}
	return done
}

func (p *Packer) add(u domain.Utterance) (packed domain.Utterance, ok bool) {
	sp := speakerOf(u)
	if n := p.len(); n > 0 && (n+len(u.Channels[0]) > p.max || len(u.Channels) != len(p.cur.Channels) || (sp != p.speaker && !p.MixSpeakers)) {
		packed, ok = p.Flush()
	}
	at := float64(p.len()) / domain.SampleRate
	if p.len() == 0 {
		p.cur = domain.Utterance{Seq: p.seq, Final: true, Interval: u.Interval, Channels: make([][]float32, len(u.Channels))}
		p.speaker = sp
		p.seq++
	}
	for i, c := range u.Channels {
		p.cur.Channels[i] = append(p.cur.Channels[i], c...)
	}
	if len(u.Runs) == 0 {
		p.cur.Runs = append(p.cur.Runs, domain.Run{At: at, Interval: u.Interval})
	}
	for _, r := range u.Runs {
		p.cur.Runs = append(p.cur.Runs, domain.Run{At: at + r.At, Interval: r.Interval})
	}
	// Speaker spans stay on the recording's timeline, as the engine reads them.
	p.cur.Speakers = append(p.cur.Speakers, u.Speakers...)
	p.cur.End = u.End
	// A cut in the middle of a window loses nothing: the next run follows it directly.
	p.cur.Cut = u.Cut
	return packed, ok
}

// speakerOf is who the attribution says spoke u: one speaker, or unknown (no spans, or
// no clear majority).
func speakerOf(u domain.Utterance) domain.Speaker {
	sp, uncertain := diarize.Decide(u.Speakers, u.Start, u.End)
	if uncertain {
		return domain.SpeakerUnknown
	}
	return sp
}

// Joinable reports whether b may follow a in one decode window: the same channels, no
// turn inside either, and the same speaker (see Packer).
func Joinable(a, b domain.Utterance) bool {
	return len(a.Channels) == len(b.Channels) && len(a.Turns) == 0 && len(b.Turns) == 0 && speakerOf(a) == speakerOf(b)
}

// Flush returns the window being filled, if it holds anything.
func (p *Packer) Flush() (domain.Utterance, bool) {
	if p.len() == 0 {
		return domain.Utterance{}, false
	}
	u := p.cur
	p.cur = domain.Utterance{}
	return u, true
}

func (p *Packer) len() int {
	if len(p.cur.Channels) == 0 {
		return 0
	}
	return len(p.cur.Channels[0])
}

// runsOf is u's runs: those of a packed utterance, or u itself.
func runsOf(u domain.Utterance) []domain.Run {
	if len(u.Runs) > 0 {
		return u.Runs
	}
	return []domain.Run{{Interval: u.Interval}}
}

// Untranscribed is what an utterance whose decode failed leaves for the reviewer: each
// of its runs as an empty segment flagged untranscribed (the speech is real).
func Untranscribed(u domain.Utterance) []domain.Segment {
	var out []domain.Segment
	for i, r := range runsOf(u) {
		out = append(out, domain.Segment{ID: fmt.Sprintf("u%d-%d", u.Seq, i), Start: r.Start, End: r.End,
			Speaker: domain.SpeakerUnknown, Flags: []domain.Flag{domain.FlagUntranscribed}})
	}
	return out
}
