// Package streamtest reads a live stream's events as the review page relies on them, for
// tests of the streaming commit policy at every level (stream, pipeline, app).
package streamtest

import (
	"fmt"

	"scribe/internal/domain"
)

// Committed is what a stream committed.
type Committed struct {
	Lines  []domain.Segment // each line (each segment a turn made of it), its pieces joined
	Pieces []string         // each committed piece's text, in order
	Later  int              // pieces that extended a line already started
}

// Read checks the committed events — a piece only extends the line in progress, never a
// complete one (a turn may start a new segment of it), lines come in order, every line is
// completed — and returns what was
// committed, or the first broken rule.
func Read(events []domain.LiveEvent) (Committed, error) {
	var c Committed
	open, last := -1, -1
	for _, ev := range events {
		if ev.Kind != domain.EventCommitted {
			continue
		}
		switch {
		case ev.Continues && ev.Utterance != open:
			return c, fmt.Errorf("a piece of line %d continues line %d", ev.Utterance, open)
		case ev.Continues:
			c.Later++
		case ev.Utterance == open:
			// A turn inside the line: the words after it are a segment of their own.
		case ev.Utterance <= last:
			return c, fmt.Errorf("line %d started after line %d", ev.Utterance, last)
		default:
			open, last = ev.Utterance, ev.Utterance
		}
		if ev.Audio != nil {
			open = -1 // complete: nothing may extend it
		}
		c.Lines = domain.AddCommitted(c.Lines, ev)
		c.Pieces = append(c.Pieces, ev.Segment.Text)
	}
	if open != -1 {
		return c, fmt.Errorf("line %d was never completed", open)
	}
	return c, nil
}
