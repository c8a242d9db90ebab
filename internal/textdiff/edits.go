package textdiff

import (
	"time"

	"scribe/internal/domain"
)

// EditResult is how much a clinician changed a machine draft before approving it.
type EditResult struct {
	DraftWords    int       `json:"draft_words"`
	ApprovedWords int       `json:"approved_words"`
	Edits         int       `json:"edits"` // substitutions + deletions + insertions
	Substitutions int       `json:"substitutions"`
	Deletions     int       `json:"deletions"`
	Insertions    int       `json:"insertions"`
	Rate          float64   `json:"rate"` // Edits / max(1, DraftWords)
	Alignment     Alignment `json:"alignment"`
}

// EditRate compares the machine draft with the clinician-approved text, both normalised
// with DefaultOptions, so spelling variants, number formats and fillers are not counted
// as corrections. The rate is relative to the draft length.
func EditRate(draft, approved string) EditResult {
	r := WER(draft, approved)
	return EditResult{
		DraftWords: r.RefWords, ApprovedWords: r.HypWords,
		Edits:         r.Errors(),
		Substitutions: r.Substitutions, Deletions: r.Deletions, Insertions: r.Insertions,
		Rate:      r.WER,
		Alignment: r.Alignment,
	}
}

// SegmentEdit is the edit result for one segment, matched by segment id.
type SegmentEdit struct {
	ID             string `json:"id"`
	Added          bool   `json:"added,omitempty"`   // in the approved note only
	Removed        bool   `json:"removed,omitempty"` // in the draft only
	SpeakerChanged bool   `json:"speaker_changed,omitempty"`
	EditResult
}

// SessionEdits is the monitoring summary of one session's review.
type SessionEdits struct {
	// WordEditRate pools edits over all segments and divides by all draft words.
	WordEditRate float64 `json:"word_edit_rate"`
	Edits        int     `json:"edits"`
	DraftWords   int     `json:"draft_words"`
	// SegmentsEdited counts segments whose words changed, plus segments the clinician
	// added or removed; SegmentsTotal counts distinct segment ids on either side.
	SegmentsEdited int `json:"segments_edited"`
	SegmentsTotal  int `json:"segments_total"`
	// SpeakerCorrections counts segments present on both sides whose speaker changed.
	SpeakerCorrections int `json:"speaker_corrections"`
	// Flags counts every flag (machine and review) on the approved segments.
	Flags map[domain.Flag]int `json:"flags,omitempty"`
	// StopToApproval is the time from Stop to approval; 0 when either is unknown or
	// approval precedes stop (a clock problem, which is itself a hazard to report).
	StopToApproval        time.Duration `json:"-"`
	StopToApprovalSeconds float64       `json:"stop_to_approval_s"`
	Segments              []SegmentEdit `json:"segments"`
}

// SummariseSession compares draft and approved segments by id. Segments keep the order
// of the draft, with added segments after in approved order.
func SummariseSession(draft, approved []domain.Segment, stopped, approvedAt time.Time) SessionEdits {
	var s SessionEdits
	byID := make(map[string]domain.Segment, len(approved))
	for _, seg := range approved {
		byID[seg.ID] = seg
		for _, f := range seg.Flags {
			if s.Flags == nil {
				s.Flags = make(map[domain.Flag]int)
			}
			s.Flags[f]++
		}
	}
	seen := make(map[string]bool, len(draft))
	add := func(se SegmentEdit) {
		s.Segments = append(s.Segments, se)
		s.SegmentsTotal++
		s.Edits += se.Edits
		s.DraftWords += se.DraftWords
		if se.Edits > 0 || se.Added || se.Removed {
			s.SegmentsEdited++
		}
		if se.SpeakerChanged {
			s.SpeakerCorrections++
		}
	}
	for _, d := range draft {
		if seen[d.ID] {
			continue
		}
		seen[d.ID] = true
		a, ok := byID[d.ID]
		se := SegmentEdit{ID: d.ID}
		if ok {
			se.EditResult = EditRate(d.Text, a.Text)
			se.SpeakerChanged = a.Speaker != d.Speaker
		} else {
			se.Removed = true
			se.EditResult = EditRate(d.Text, "")
		}
		add(se)
	}
	for _, a := range approved {
		if seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		add(SegmentEdit{ID: a.ID, Added: true, EditResult: EditRate("", a.Text)})
	}
	if s.SegmentsTotal > 0 {
		s.WordEditRate = rate(s.Edits, s.DraftWords)
	}
	if !stopped.IsZero() && !approvedAt.IsZero() && approvedAt.After(stopped) {
		s.StopToApproval = approvedAt.Sub(stopped)
		s.StopToApprovalSeconds = s.StopToApproval.Seconds()
	}
	return s
}
