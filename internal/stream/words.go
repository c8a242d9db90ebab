package stream

import (
	"strings"

	"scribe/internal/domain"
	"scribe/internal/transcribe"
)

// Word is one decoded word placed on the stream's timeline.
//
// Its times come from the decoder's cross-attention, aligned to the audio by dynamic time
// warping (libwhisper's DTW token timestamps): End is where the word's last token is
// aligned, Start where the word before it ends. libwhisper's other token timestamps (from
// the timestamp tokens' probabilities) were measured unusable here: when the audio ends
// mid-speech, as a growing buffer does, every word near the end gets the same time.
type Word struct {
	Text       string  // as decoded, punctuation attached, no leading space
	Start, End float64 // seconds on the stream's timeline
	LogProb    float64 // mean log-probability of its tokens
	NoSpeech   float64 // no_speech_prob of the decoded segment it came from
	norm       string
}

// Norm is the word as compared between hypotheses: lower case, without the punctuation
// around it.
func (w Word) Norm() string { return w.norm }

// mid is the middle of the word on the stream's timeline: which side of a turn it is on.
func (w Word) mid() float64 { return (w.Start + w.End) / 2 }

func normWord(s string) string {
	return strings.ToLower(strings.Trim(s, ` .,!?;:"'…-`))
}

// decodedWords joins a decode's tokens into words, times in seconds from the start of the
// samples decoded. A token that begins with a space begins a word; others (the rest of a
// word, punctuation) join the word before. Non-speech annotations ([BLANK_AUDIO], (music),
// ♪) are dropped, and a repeated-phrase loop is cut to one copy (cut reports it).
func decodedWords(segs []domain.DecodedSegment) (words []Word, cut bool) {
	type acc struct {
		w      Word
		lp     float64
		tokens int
	}
	var out []acc
	for _, s := range segs {
		fresh := true // a new segment starts a new word
		for _, t := range s.Tokens {
			if t.Text == "" {
				continue
			}
			if fresh || strings.HasPrefix(t.Text, " ") || len(out) == 0 {
				start := t.Start
				if len(out) > 0 {
					start = out[len(out)-1].w.End
				}
				out = append(out, acc{w: Word{Start: start, NoSpeech: s.NoSpeechProb}})
				fresh = false
			}
			a := &out[len(out)-1]
			a.w.Text += t.Text
			end := t.At
			if end < 0 { // no alignment heads for this model: the timestamp tokens' guess
				end = t.End
			}
			if transcribe.HasWord(t.Text) || a.w.End == 0 {
				// A punctuation mark is aligned wherever attention rests, often in the
				// silence after the sentence: it does not move the word's end.
				a.w.End = max(a.w.Start, end, a.w.End)
			}
			a.lp += float64(t.LogProb)
			a.tokens++
		}
	}
	words = make([]Word, 0, len(out))
	depth := 0 // inside a bracketed annotation
	for _, a := range out {
		w := a.w
		w.Text = strings.TrimSpace(w.Text)
		if a.tokens > 0 {
			w.LogProb = a.lp / float64(a.tokens)
		}
		opens := strings.ContainsAny(w.Text, "[(*")
		closes := strings.ContainsAny(w.Text, "])*")
		if depth > 0 || opens {
			if opens {
				depth++
			}
			if closes {
				depth = max(0, depth-1)
				if strings.Count(w.Text, "*") >= 2 {
					depth = 0
				}
			}
			continue
		}
		if strings.Trim(w.Text, "♪♫ ") == "" {
			continue
		}
		w.norm = normWord(w.Text)
		if w.norm == "" {
			// Punctuation on its own (after a dropped annotation): attach it to the word
			// before, if any.
			if len(words) > 0 {
				words[len(words)-1].Text += w.Text
			}
			continue
		}
		words = append(words, w)
	}
	norms := make([]string, len(words))
	for i, w := range words {
		norms[i] = w.norm
	}
	keep, cut := transcribe.RepeatedRunsCut(norms)
	if !cut {
		return words, false
	}
	kept := words[:0]
	for _, i := range keep {
		kept = append(kept, words[i])
	}
	return kept, true
}

// joinWords is the text of words, separated by spaces.
func joinWords(ws []Word) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.Text
	}
	return strings.Join(parts, " ")
}
