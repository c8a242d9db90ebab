package transcribe

import (
	"fmt"
	"slices"
	"strings"

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
type Packer struct {
	max int // samples per packed utterance
	seq int
	cur domain.Utterance
}

// NewPacker packs up to seconds of audio per utterance (DefaultPackSeconds when ≤ 0).
func NewPacker(seconds float64) *Packer {
	if seconds <= 0 {
		seconds = DefaultPackSeconds
	}
	return &Packer{max: int(seconds * domain.SampleRate)}
}

// Add appends a finished utterance. When u does not fit in the window being filled, that
// window is returned (ok) and u starts the next. An utterance longer than the window is
// packed alone (whisper then slides over it as it does over a long file).
func (p *Packer) Add(u domain.Utterance) (packed domain.Utterance, ok bool) {
	if len(u.Channels) == 0 || len(u.Channels[0]) == 0 {
		return domain.Utterance{}, false
	}
	if n := p.len(); n > 0 && (n+len(u.Channels[0]) > p.max || len(u.Channels) != len(p.cur.Channels)) {
		packed, ok = p.Flush()
	}
	at := float64(p.len()) / domain.SampleRate
	if p.len() == 0 {
		p.cur = domain.Utterance{Seq: p.seq, Final: true, Interval: u.Interval, Channels: make([][]float32, len(u.Channels))}
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
	// Speaker spans and turns stay on the recording's timeline, as the engine reads them.
	p.cur.Speakers = append(p.cur.Speakers, u.Speakers...)
	p.cur.Turns = append(p.cur.Turns, u.Turns...)
	p.cur.End = u.End
	// A cut in the middle of a window loses nothing: the next run follows it directly.
	p.cur.Cut = u.Cut
	return packed, ok
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

// splitRuns cuts runs at the turn cuts inside them (times in the utterance's audio), so a
// run that decodes to nothing is marked untranscribed turn by turn, each with its speaker.
func splitRuns(runs []domain.Run, cuts []float64) []domain.Run {
	if len(cuts) == 0 {
		return runs
	}
	var out []domain.Run
	for _, r := range runs {
		for _, c := range cuts {
			if c <= r.At || c >= r.At+r.Duration() {
				continue
			}
			d := c - r.At
			out = append(out, domain.Run{At: r.At, Interval: domain.Interval{Start: r.Start, End: r.Start + d}})
			r = domain.Run{At: c, Interval: domain.Interval{Start: r.Start + d, End: r.End}}
		}
		out = append(out, r)
	}
	return out
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

// turnCuts are the times in a packed utterance's audio where the floor passes from one
// speaker to the other: the turns the attribution saw inside a run, and the starts of
// runs whose speaker differs from the last run with a known speaker. Whisper's segments
// follow sentences, not turns, so a segment spanning a cut is split there (splitAt).
// An utterance with no speaker spans has none.
func turnCuts(u domain.Utterance) []float64 {
	if len(u.Runs) < 1 || len(u.Speakers) == 0 {
		return nil
	}
	var cuts []float64
	last := domain.SpeakerUnknown
	for _, r := range u.Runs {
		sp, _ := diarize.Decide(u.Speakers, r.Start, r.End)
		if sp != domain.SpeakerUnknown {
			if last != domain.SpeakerUnknown && sp != last {
				cuts = append(cuts, r.At)
			}
			last = sp
		}
		for _, t := range u.Turns {
			if t > r.Start && t < r.End {
				cuts = append(cuts, r.At+t-r.Start)
			}
		}
	}
	slices.Sort(cuts)
	return slices.Compact(cuts)
}

// splitAt cuts a decoded segment at the given times (ascending), putting each token on
// the side of a cut where its middle lies. It needs token times; without them (or with no
// cut inside the segment) the segment is returned whole.
func splitAt(d domain.DecodedSegment, cuts []float64) []domain.DecodedSegment {
	inside := false
	for _, c := range cuts {
		inside = inside || (c > d.Start && c < d.End)
	}
	timed := len(d.Tokens) > 0 && d.Tokens[len(d.Tokens)-1].End > 0
	if !inside || !timed {
		return []domain.DecodedSegment{d}
	}
	var out []domain.DecodedSegment
	var text strings.Builder
	cur := domain.DecodedSegment{Start: d.Start, NoSpeechProb: d.NoSpeechProb}
	next := 0 // the first cut after the current part's start
	for next < len(cuts) && cuts[next] <= d.Start {
		next++
	}
	flush := func(end float64) {
		if len(cur.Tokens) > 0 {
			cur.End, cur.Text = end, strings.ToValidUTF8(text.String(), "")
			out = append(out, cur)
		}
		text.Reset()
		cur = domain.DecodedSegment{Start: end, NoSpeechProb: d.NoSpeechProb}
	}
	for _, t := range d.Tokens {
		mid := (t.Start + t.End) / 2
		for next < len(cuts) && cuts[next] < d.End && mid >= cuts[next] {
			flush(cuts[next])
			next++
		}
		cur.Tokens = append(cur.Tokens, t)
		text.WriteString(t.Text)
	}
	flush(d.End)
	return out
}
