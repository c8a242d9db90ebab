package stream

import (
	"sort"

	"scribe/internal/domain"
)

// buffer is the audio the decoder is given: the VAD's speech (with its padding and the
// pauses it has not yet called the end of an utterance), packed back to back across the
// silences it dropped, as the mono mix. spans say where each stretch sits on the stream's
// timeline, so decoded times can be put back there.
type buffer struct {
	nch   int
	mix   []float32
	spans []span
}

// span is a stretch of the buffer that is continuous on the stream's timeline.
type span struct {
	at   int   // index of its first sample in the buffer
	from int64 // its first sample's number on the stream's timeline
	n    int
}

func newBuffer(nch int) *buffer { return &buffer{nch: nch} }

func (b *buffer) len() int { return len(b.mix) }

// end is the stream sample just after the buffer's last one (0 when empty).
func (b *buffer) end() int64 {
	if len(b.spans) == 0 {
		return 0
	}
	l := b.spans[len(b.spans)-1]
	return l.from + int64(l.n)
}

// add appends audio that starts at stream sample from; whatever part of it the buffer
// already holds (an utterance's padding overlapping the previous one's tail) is skipped.
func (b *buffer) add(from int64, chans [][]float32) {
	if len(chans) == 0 || len(chans) != b.nch {
		return
	}
	n := len(chans[0])
	if len(b.spans) > 0 {
		if skip := b.end() - from; skip > 0 {
			if skip >= int64(n) {
				return
			}
			rest := make([][]float32, len(chans))
			for i := range chans {
				rest[i] = chans[i][skip:]
			}
			chans, from, n = rest, from+skip, n-int(skip)
		}
	}
	if n == 0 {
		return
	}
	if k := len(b.spans) - 1; k >= 0 && b.spans[k].from+int64(b.spans[k].n) == from {
		b.spans[k].n += n
	} else {
		b.spans = append(b.spans, span{at: len(b.mix), from: from, n: n})
	}
	b.mix = append(b.mix, domain.MixDown(chans)...)
}

// streamTime maps a time in the buffer (seconds from its first sample) to the stream's
// timeline. Times past the end run on from the last span.
func (b *buffer) streamTime(t float64) float64 {
	if len(b.spans) == 0 {
		return t
	}
	i := int(t * domain.SampleRate)
	k := sort.Search(len(b.spans), func(k int) bool { return b.spans[k].at > i }) - 1
	k = max(k, 0)
	s := b.spans[k]
	return (float64(s.from) + t*domain.SampleRate - float64(s.at)) / domain.SampleRate
}

// index maps a stream time to a buffer index: inside a span, the sample there; in a gap
// between spans (a dropped silence), the next span's first sample.
func (b *buffer) index(t float64) int {
	smp := int64(t*domain.SampleRate + 0.5)
	for _, s := range b.spans {
		if smp < s.from {
			return s.at
		}
		if smp < s.from+int64(s.n) {
			return s.at + int(smp-s.from)
		}
	}
	return len(b.mix)
}

// startTime is the stream time of the buffer's first sample.
func (b *buffer) startTime() float64 {
	if len(b.spans) == 0 {
		return 0
	}
	return float64(b.spans[0].from) / domain.SampleRate
}

// endTime is the stream time just after the buffer's last sample.
func (b *buffer) endTime() float64 { return float64(b.end()) / domain.SampleRate }

// dropBefore removes the first k samples.
func (b *buffer) dropBefore(k int) {
	k = min(max(k, 0), len(b.mix))
	if k == 0 {
		return
	}
	b.spans = b.spansFrom(k)
	b.mix = append(b.mix[:0], b.mix[k:]...)
}

// spansFrom is the spans of the buffer's audio from sample k on, indexed from there.
func (b *buffer) spansFrom(k int) []span {
	var spans []span
	for _, s := range b.spans {
		if s.at+s.n <= k {
			continue
		}
		if s.at < k {
			d := k - s.at
			s.from += int64(d)
			s.n -= d
			s.at = k
		}
		s.at -= k
		spans = append(spans, s)
	}
	return spans
}
