package store

import (
	"context"
	"errors"
	"testing"

	"scribe/internal/domain"
)

// A line the pipeline is still committing words to grows in place: its text and machine
// draft get the new words, its end moves on, and its version too, so an edit based on
// the shorter line is refused as a conflict. Once the clinician has touched the line,
// new words become a segment of their own after it and the edited line is left alone.
func TestExtendCommittedGrowsUntouchedLinesOnly(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, _ := fixture(t, s, 0)
	g, err := s.InsertCommitted(ctx, c.ID, domain.Segment{Start: 1, End: 2.5, Speaker: domain.SpeakerPatient, Text: "I have had", AvgLogProb: -0.2})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := s.ExtendCommitted(ctx, c.ID, g.ID, domain.Segment{Start: 2.5, End: 4, Speaker: domain.SpeakerPatient, Text: "a cough for a week.", AvgLogProb: -0.6,
		Flags: []domain.Flag{domain.FlagLowConfidence}})
	if err != nil {
		t.Fatal(err)
	}
	if g2.ID != g.ID || g2.Text != "I have had a cough for a week." || g2.MachineText != g2.Text || g2.Start != 1 || g2.End != 4 ||
		g2.Version != g.Version+1 || len(g2.Flags) != 1 || g2.Flags[0] != domain.FlagLowConfidence || g2.AvgLogProb > -0.449 || g2.AvgLogProb < -0.451 { // (3×−0.2 + 5×−0.6) / 8 words
		t.Fatalf("extended line %+v", g2)
	}
	if _, err := s.UpdateSegment(ctx, c.ID, g.ID, u.ID, g.Version, ptr("I have had"), nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("an edit of the shorter line: %v, want a conflict", err)
	}
	edited, err := s.UpdateSegment(ctx, c.ID, g.ID, u.ID, g2.Version, ptr("I have had a cough for a week"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g3, err := s.ExtendCommitted(ctx, c.ID, g.ID, domain.Segment{Start: 4, End: 5, Speaker: domain.SpeakerPatient, Text: "And a fever."})
	if err != nil {
		t.Fatal(err)
	}
	if g3.ID == g.ID || g3.Text != "And a fever." || g3.Pos <= edited[0].Pos {
		t.Fatalf("words after an edit: %+v", g3)
	}
	if got, _ := s.Segment(ctx, c.ID, g.ID); got.Text != "I have had a cough for a week" {
		t.Errorf("the edited line became %q", got.Text)
	}
	// A flagged line is touched as well.
	if _, err := s.AddFlag(ctx, c.ID, g3.ID, u.ID, domain.FlagWrongWords, ""); err != nil {
		t.Fatal(err)
	}
	if g4, err := s.ExtendCommitted(ctx, c.ID, g3.ID, domain.Segment{Start: 5, End: 6, Text: "Since Monday."}); err != nil || g4.ID == g3.ID {
		t.Fatalf("words after a flag: %+v, %v", g4, err)
	}
}
