package server

import (
	"context"
	"io"
	"testing"
	"time"

	"scribe/internal/domain"
	"scribe/internal/store"
)

// scriptedTranscriber emits its events one at a time, each when the test sends on next,
// then reads its source to the end.
type scriptedTranscriber struct {
	events []domain.LiveEvent
	next   chan struct{}
}

func (s scriptedTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	for _, ev := range s.events {
		select {
		case <-s.next:
		case <-ctx.Done():
			return ctx.Err()
		}
		emit(ev)
	}
	for {
		if _, err := src.Read(ctx); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// A line committed in pieces, as the streaming policy commits words while the speaker
// is still talking, is one stored segment that grows: the review page's live socket gets
// it under the same id with more words and a new version each time, the provisional rest
// in between. A line the clinician edits while it is growing is left as edited; the
// words after the edit become a segment of their own.
func TestLinesGrowInPiecesUnlessEdited(t *testing.T) {
	piece := func(u int, cont bool, start, end float64, text string, last bool) domain.LiveEvent {
		ev := domain.LiveEvent{Kind: domain.EventCommitted, Utterance: u, Continues: cont,
			Segment: domain.Segment{ID: "u-0", Start: start, End: end, Speaker: domain.SpeakerPatient, Text: text}}
		if last {
			ev.Audio = &domain.Utterance{Seq: u}
		}
		return ev
	}
	events := []domain.LiveEvent{
		piece(0, false, 1, 2, "I have had", false),
		{Kind: domain.EventProvisional, Utterance: 0, Segment: domain.Segment{Start: 2, End: 3, Text: "a cuff"}},
		piece(0, true, 2, 3.5, "a cough", false),
		piece(0, true, 3.5, 4.2, "for a week.", true),
		piece(1, false, 5, 6, "Any fever?", false), // the clinician edits it before the rest
		piece(1, true, 6, 7, "Or chills?", true),
	}
	tr := scriptedTranscriber{events: events, next: make(chan struct{})}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Transcriber = tr })
	a := e.user("a", store.RoleClinician)
	room := e.room("Room", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 300, 60)}, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	conn, err := c.dialWS("/api/sessions/" + s.ID + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteJSON(map[string]any{"resume": 0})
	readMsg(t, conn) // the snapshot
	next := func(want string) message {
		t.Helper()
		tr.next <- struct{}{}
		for {
			m := readMsg(t, conn)
			if m.Type == want {
				return m
			}
		}
	}
	first := next("committed").Segment
	if p := next("provisional"); p.Segment.Text != "a cuff" {
		t.Fatalf("provisional %+v", p.Segment)
	}
	second := next("committed").Segment
	third := next("committed").Segment
	if second.ID != first.ID || third.ID != first.ID || third.Text != "I have had a cough for a week." || third.Version != first.Version+2 ||
		third.Start != 1 || third.End != 4.2 {
		t.Fatalf("growing line: %+v, then %+v, then %+v", first.Segment, second.Segment, third.Segment)
	}
	q := next("committed").Segment
	var edited struct{ Segments []store.Segment }
	if st := c.do("PATCH", "/api/sessions/"+s.ID+"/segments/"+q.ID, map[string]any{"version": q.Version, "text": "Any fever at all?"}, &edited); st != 200 {
		t.Fatalf("edit: %d", st)
	}
	rest := next("committed").Segment
	if rest.ID == q.ID || rest.Text != "Or chills?" {
		t.Fatalf("words after an edit: %+v", rest.Segment)
	}
	_, segs := c.session(s.ID)
	var texts []string
	for _, g := range segs {
		texts = append(texts, g.Text)
	}
	if len(segs) != 3 || texts[0] != "I have had a cough for a week." || texts[1] != "Any fever at all?" || texts[2] != "Or chills?" {
		t.Errorf("stored transcript %q", texts)
	}
	c.do("POST", "/api/sessions/"+s.ID+"/stop", nil, nil)
	waitFor(t, 10*time.Second, "the session to stop", func() bool { v, _ := c.session(s.ID); return v.State == store.StateStopped })
}
