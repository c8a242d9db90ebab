package transcribe

import (
	"slices"
	"strings"
	"unicode"

	"scribe/internal/domain"
)

// MaxHole is the longest stretch of speech a decode may leave without a word before it
// is decoded again: words end every 0.2–0.6 s in speech, and a hesitation, a long word and
// the alignment's error together stay well inside it. (The live policy, internal/stream,
// holds its lines to it too.)
const MaxHole = 2.5

// HasWord reports whether text holds a letter or a digit: a word, not punctuation or a
// space.
func HasWord(text string) bool {
	return strings.IndexFunc(text, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0
}

// hole finds the longest stretch of seconds of audio in which no word of a decode ends,
// by the tokens' alignment to the audio (DTW: DecodedToken.At): from is where it begins
// (the end of the word before it, or 0) and length how long it is. ok is false when a
// word token carries no alignment (a model loaded without it): then nothing is known.
//
// This is the decoder stopping early: measured with the real tiny.en on a packed window
// of a rendered consultation (15 s of speech: the end of one speaker's question, then the
// other's answer), the decode came back as its first three words, "You missed morning.",
// in one segment whose times ran to the window's end, so the answer's 10 s counted as
// decoded and nothing was flagged.
func hole(segs []domain.DecodedSegment, seconds float64) (from, length float64, ok bool) {
	if !aligned(segs...) {
		return 0, 0, false
	}
	at := 0.0
	for _, s := range segs {
		for _, t := range s.Tokens {
			if !HasWord(t.Text) {
				continue // punctuation is aligned wherever attention rests
			}
			if t.At-at > length {
				from, length = at, t.At-at
			}
			at = max(at, t.At)
		}
	}
	if seconds-at > length {
		from, length = at, seconds-at
	}
	return from, length, true
}

// aligned reports whether every word token of segs carries its alignment to the audio
// (DTW: DecodedToken.At), as a model loaded with it gives them.
func aligned(segs ...domain.DecodedSegment) bool {
	for _, s := range segs {
		for _, t := range s.Tokens {
			if HasWord(t.Text) && t.At < 0 {
				return false
			}
		}
	}
	return true
}

// splitDecoded cuts a decode at from (seconds): the segments, or the parts of them, whose
// tokens are aligned before it, and how many word tokens are aligned after it. A token
// without alignment (punctuation) stays with the one before it.
func splitDecoded(segs []domain.DecodedSegment, from float64) (before []domain.DecodedSegment, wordsAfter int) {
	for _, s := range segs {
		keep := s
		keep.Tokens = nil
		var text strings.Builder
		after := false
		for _, t := range s.Tokens {
			if HasWord(t.Text) && t.At > from {
				after = true
			}
			if after {
				if HasWord(t.Text) {
					wordsAfter++
				}
				continue
			}
			keep.Tokens = append(keep.Tokens, t)
			text.WriteString(t.Text)
		}
		if len(keep.Tokens) == 0 {
			continue
		}
		if after || keep.End > from {
			keep.Text = text.String()
			// Never empty: segments reads an empty span as the whole utterance's.
			keep.Start = min(keep.Start, from)
			keep.End = max(keep.Start+minSpan, min(keep.End, from))
		}
		before = append(before, keep)
	}
	return before, wordsAfter
}

// minSpan is the shortest span a cut segment is given: whisper's timestamp step.
const minSpan = 0.02

// words counts the word tokens of a decode.
func words(segs []domain.DecodedSegment) int {
	n := 0
	for _, s := range segs {
		for _, t := range s.Tokens {
			if HasWord(t.Text) {
				n++
			}
		}
	}
	return n
}

// endClaims ends at from every segment whose words are all aligned before it: a decoder
// that stopped early gives its last segment the times of the audio it never decoded.
func endClaims(segs []domain.DecodedSegment, from float64) []domain.DecodedSegment {
	out := slices.Clone(segs)
	for i, s := range out {
		last := -1.0
		for _, t := range s.Tokens {
			if HasWord(t.Text) {
				last = max(last, t.At)
			}
		}
		if last >= 0 && last <= from && s.End > from && s.Start < from {
			out[i].End = from
		}
	}
	return out
}
