package transcribe

import (
	"math"

	"scribe/internal/domain"
)

// Attribution maps input channels to speakers for two-party rooms: one microphone near
// the clinician, one near the patient.
type Attribution struct {
	ClinicianChannel int // usually 0 (left)
	PatientChannel   int // usually 1 (right)
	// DominanceDB is how much louder one channel must be in a window to claim it.
	DominanceDB float64
	// MinShare is the share of claimed windows the winner needs; below it the segment is
	// flagged as overlapping speech.
	MinShare float64
}

// DefaultAttribution: left = clinician, right = patient.
func DefaultAttribution() Attribution {
	return Attribution{ClinicianChannel: 0, PatientChannel: 1, DominanceDB: 3, MinShare: 0.7}
}

// Speaker decides who spoke samples [from, to) of the channels by per-window energy
// dominance. Mono input, or audio where neither channel dominates, is unknown.
func (a Attribution) Speaker(chans [][]float32, from, to int) (domain.Speaker, bool) {
	if len(chans) < 2 || a.ClinicianChannel >= len(chans) || a.PatientChannel >= len(chans) {
		return domain.SpeakerUnknown, false
	}
	c, p := chans[a.ClinicianChannel], chans[a.PatientChannel]
	to = min(to, len(c), len(p))
	from = max(from, 0)
	const win = 512
	var votesC, votesP int
	for i := from; i+win <= to || (i == from && i < to); i += win {
		j := min(i+win, to)
		ec, ep := energy(c[i:j]), energy(p[i:j])
		if ec < 1e-8 && ep < 1e-8 {
			continue
		}
		d := 10 * math.Log10((ec+1e-12)/(ep+1e-12))
		switch {
		case d >= a.DominanceDB:
			votesC++
		case d <= -a.DominanceDB:
			votesP++
		}
	}
	total := votesC + votesP
	if total == 0 {
		return domain.SpeakerUnknown, true
	}
	winner, share := domain.SpeakerClinician, float64(votesC)/float64(total)
	if votesP > votesC {
		winner, share = domain.SpeakerPatient, float64(votesP)/float64(total)
	}
	return winner, share < a.MinShare
}

func energy(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s / float64(max(len(x), 1))
}
