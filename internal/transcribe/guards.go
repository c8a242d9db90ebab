package transcribe

import (
	"regexp"
	"strings"

	"scribe/internal/domain"
)

// Thresholds of the hallucination guards. Whisper's own rule would silently skip a
// segment with no_speech_prob above NoSpeech and a mean log-probability under LogProb; we
// disable that inside the decoder and flag such segments instead, so nothing a patient
// said can vanish without the clinician seeing it.
type Thresholds struct {
	NoSpeech float64 // default 0.6
	LogProb  float64 // default -1.0
}

// DefaultThresholds are whisper's published defaults.
func DefaultThresholds() Thresholds { return Thresholds{NoSpeech: 0.6, LogProb: -1.0} }

// nonSpeech matches the annotations whisper writes for non-speech audio: [BLANK_AUDIO],
// (music), [ Silence ], ♪ … — they are not words anybody said.
var nonSpeech = regexp.MustCompile(`\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫]+`)

// cleanText removes non-speech annotations and tidies spaces.
func cleanText(s string) string {
	s = nonSpeech.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(s), " ")
}

// CutRepetition collapses a run of the same word sequence repeated back to back — the
// decoder's failure mode on noise and silence ("thank you thank you thank you …") — to one
// copy (see RepeatedRunsCut). It reports whether anything was cut.
func CutRepetition(text string) (string, bool) {
	words := strings.Fields(text)
	norm := make([]string, len(words))
	for i, w := range words {
		norm[i] = strings.ToLower(strings.Trim(w, `.,!?;:"'`))
	}
	keep, cut := RepeatedRunsCut(norm)
	if !cut {
		return text, false
	}
	kept := make([]string, len(keep))
	for i, k := range keep {
		kept[i] = words[k]
	}
	return strings.Join(kept, " "), true
}

// RepeatedRunsCut finds, in normalised words, runs of the same phrase repeated back to
// back and keeps one copy of each: a phrase of up to maxPeriod words must occur at least
// minRepeats times in a row (single words minRepeats+1, since "no, no, no" is ordinary
// speech). It returns the indices of the words kept, in order, and whether any were cut.
func RepeatedRunsCut(norm []string) (keep []int, cut bool) {
	const maxPeriod, minRepeats = 12, 3
	idx := make([]int, len(norm))
	for i := range idx {
		idx[i] = i
	}
	norm = append([]string(nil), norm...)
	for i := 0; i < len(norm); i++ {
		for p := 1; p <= maxPeriod && i+2*p <= len(norm); p++ {
			reps := 1
			for j := i + p; j+p <= len(norm) && equalWords(norm[i:i+p], norm[j:j+p]); j += p {
				reps++
			}
			need := minRepeats
			if p == 1 {
				need++
			}
			if reps >= need {
				idx = append(idx[:i+p], idx[i+reps*p:]...)
				norm = append(norm[:i+p], norm[i+reps*p:]...)
				cut = true
				break
			}
		}
	}
	return idx, cut
}

func equalWords(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// guard turns one decoded segment into a transcript segment with its flags. It never
// drops: a segment that looks invented is kept and flagged for the reviewer.
func guard(d domain.DecodedSegment, th Thresholds) domain.Segment {
	seg := domain.Segment{
		Text:         cleanText(d.Text),
		NoSpeechProb: d.NoSpeechProb,
		AvgLogProb:   d.AvgLogProb(),
	}
	if text, cut := CutRepetition(seg.Text); cut {
		seg.Text = text
		seg.Flags = append(seg.Flags, domain.FlagRepetition)
	}
	if d.NoSpeechProb > th.NoSpeech && seg.AvgLogProb < th.LogProb {
		seg.Flags = append(seg.Flags, domain.FlagNoSpeech)
	} else if len(d.Tokens) > 0 && seg.AvgLogProb < th.LogProb {
		seg.Flags = append(seg.Flags, domain.FlagLowConfidence)
	}
	return seg
}
