package diarize

import (
	"math"

	"scribe/internal/domain"
)

// pairWindow is the energy comparison window (32 ms).
const pairWindow = 512

// pairDominanceDB is how much louder one channel must be in a window to claim it.
const pairDominanceDB = 3

// pair attributes a room with a microphone per person: in each window the channel at
// least pairDominanceDB louder than the other claims it.
type pair struct {
	clinician int // channel of the clinician's microphone; -1: named by the opening
	open      opening[int]
}

func newPair(s Setup) *pair {
	switch s.Clinician {
	case ClinicianRight:
		return &pair{clinician: 1}
	case ClinicianFirst:
		return &pair{clinician: -1}
	}
	return &pair{clinician: 0}
}

func (a *pair) attribute(u domain.Utterance, commit bool) []domain.SpeakerSpan {
	if len(u.Channels) != 2 {
		return nil
	}
	c0, c1 := u.Channels[0], u.Channels[1]
	n := min(len(c0), len(c1))
	claims := make([]int, 0, n/pairWindow+1) // per window: 0, 1 or -1 (neither)
	for i := 0; i < n; i += pairWindow {
		j := min(i+pairWindow, n)
		e0, e1 := energy(c0[i:j]), energy(c1[i:j])
		claim := -1
		if e0 >= 1e-8 || e1 >= 1e-8 {
			switch d := 10 * math.Log10((e0+1e-12)/(e1+1e-12)); {
			case d >= pairDominanceDB:
				claim = 0
			case d <= -pairDominanceDB:
				claim = 1
			}
		}
		if claim >= 0 && commit {
			a.open.add(u.Start+float64(i)/domain.SampleRate, claim)
		}
		claims = append(claims, claim)
	}
	clin := a.clinician
	if clin < 0 {
		// Calibrated by the opening: the channel that claimed most of it.
		if len(a.open.pts) == 0 {
			return nil
		}
		var votes [2]float64
		for _, c := range a.open.pts {
			votes[c]++
		}
		clin = clinicianOf(votes, a.open.pts[0])
	}
	b := spanner{start: u.Start}
	for w, claim := range claims {
		sp := domain.SpeakerUnknown
		switch claim {
		case clin:
			sp = domain.SpeakerClinician
		case 1 - clin:
			sp = domain.SpeakerPatient
		}
		b.add(w*pairWindow, min((w+1)*pairWindow, n), sp)
	}
	return b.out
}

func energy(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s / float64(max(len(x), 1))
}
