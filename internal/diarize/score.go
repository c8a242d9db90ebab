package diarize

import (
	"sort"

	"scribe/internal/domain"
)

// Accuracy is time-weighted speaker attribution against ground truth, over the time in
// which exactly one person speaks (overlapped speech has no single right answer).
type Accuracy struct {
	SpeechSeconds  float64 `json:"single_speaker_seconds"`
	Correct        float64 `json:"correct_seconds"`
	Wrong          float64 `json:"wrong_seconds"`
	UnknownSeconds float64 `json:"unknown_seconds"` // speech nobody was attributed to
}

// Accuracy is the share of attributed speech attributed to the right person.
func (a Accuracy) Value() float64 { return ratio(a.Correct, a.Correct+a.Wrong) }

// UnknownShare is the share of single-speaker speech left unknown.
func (a Accuracy) UnknownShare() float64 { return ratio(a.UnknownSeconds, a.SpeechSeconds) }

// Add pools another recording's figures.
func (a *Accuracy) Add(b Accuracy) {
	a.SpeechSeconds += b.SpeechSeconds
	a.Correct += b.Correct
	a.Wrong += b.Wrong
	a.UnknownSeconds += b.UnknownSeconds
}

// Score compares attributed spans (hypothesis; unknown stretches have none, or an
// unknown speaker) with the truth's utterances.
func Score(truth, hyp []domain.SpeakerSpan) Accuracy {
	var cuts []float64
	for _, s := range truth {
		cuts = append(cuts, s.Start, s.End)
	}
	for _, s := range hyp {
		cuts = append(cuts, s.Start, s.End)
	}
	sort.Float64s(cuts)
	var acc Accuracy
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := cuts[i], cuts[i+1]
		if hi-lo <= 0 {
			continue
		}
		mid := (lo + hi) / 2
		who, n := domain.SpeakerUnknown, 0
		for _, s := range truth {
			if s.Start <= mid && mid < s.End && s.Speaker != who {
				who = s.Speaker
				n++
			}
		}
		if n != 1 {
			continue
		}
		d := hi - lo
		acc.SpeechSeconds += d
		got := domain.SpeakerUnknown
		for _, s := range hyp {
			if s.Start <= mid && mid < s.End && s.Speaker != domain.SpeakerUnknown {
				got = s.Speaker
			}
		}
		switch got {
		case domain.SpeakerUnknown:
			acc.UnknownSeconds += d
		case who:
			acc.Correct += d
		default:
			acc.Wrong += d
		}
	}
	return acc
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}
