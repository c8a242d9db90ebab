package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"scribe/internal/app"
	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/store"
	"scribe/internal/transcribe"
)

// gatedIdler holds second-pass refinements back until open is closed, then runs them at
// the real live engine's lowest priority: the test decides when the box is "idle".
type gatedIdler struct {
	e    *transcribe.Engine
	open chan struct{}
}

func (g *gatedIdler) WhenIdle(ctx context.Context, quiet time.Duration, fn func(context.Context) error) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.e.WhenIdle(ctx, quiet, fn)
}

// The second pass on real libwhisper: tiny.en live, base.en refining. A consultation is
// replayed and stopped while every refinement is held back; the queue holds only its
// bound; the clinician edits the first segment; then the refinements run (after the
// session stopped). Unedited segments are replaced in place by second-pass ones, announced
// over the websocket; the edited one is left alone; utterances the full queue refused
// keep their first-pass text. (The two queued utterances are refined packed, in one
// window.)
func TestSecondPassReplacesOnlyUneditedSegments(t *testing.T) {
	base := config.SharedTestModel("for-tests-ggml-base.en.bin")
	if base == "" {
		t.Skip("../shared/models/for-tests-ggml-base.en.bin not available")
	}
	r := rendered(t, "day1_consultation01", 60)
	rt := realRuntime(t, 1, 2)
	rt.Config.Transcription.SecondPassModel = base
	rt.Config.Transcription.SecondPassQueue = 2
	gate := &gatedIdler{e: rt.Engine, open: make(chan struct{})}
	sp, err := rt.NewSecondPass(rt.Pipeline, app.SecondPassOptions{Idler: gate, Quiet: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = 4; d.Transcriber = sp })
	t.Cleanup(sp.Close) // runs before the server and its store close
	doc := e.user("gp", store.RoleClinician)
	cl := e.login("gp")
	room := e.room("Room 1", store.SourceWAV, map[string]string{"path": r.StereoPath}, doc.ID)
	id := startWAV(t, e, cl, room.ID).ID
	conn, err := cl.dialWS("/api/sessions/" + id + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteJSON(map[string]any{"resume": 0}); err != nil {
		t.Fatal(err)
	}
	// Read all along, as the review page does: a client that stops reading stops
	// answering the server's pings and is cut off while the refinements wait.
	msgs := make(chan message, 1024)
	go func() {
		defer close(msgs)
		for {
			var m message
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			msgs <- m
		}
	}()
	waitFor(t, 3*time.Minute, "the session to stop", func() bool { v, _ := cl.session(id); return v.State == store.StateStopped })
	_, first := cl.session(id)
	if len(first) < 5 {
		t.Fatalf("%d segments: too few utterances to test the queue bound", len(first))
	}
	// One refinement is held at the gate by the worker, two wait in the queue, the rest
	// were refused rather than held in memory.
	st := sp.Stats()
	if st.Queued != 2 || st.Dropped != len(first)-3 || st.Refined != 0 {
		t.Fatalf("with %d utterances and a queue of 2: %+v", len(first), st)
	}
	// The clinician corrects the first segment before the second pass reaches it.
	var edited struct {
		Segments []store.Segment `json:"segments"`
	}
	if code := cl.do("PATCH", "/api/sessions/"+id+"/segments/"+first[0].ID, map[string]any{"version": first[0].Version, "text": "Corrected by the clinician."}, &edited); code != 200 {
		t.Fatalf("edit: %d", code)
	}
	close(gate.open)
	waitFor(t, 3*time.Minute, "the refinements", func() bool { s := sp.Stats(); return s.Refined+s.Failed == 3 && s.Queued == 0 })
	if s := sp.Stats(); s.Failed != 0 {
		t.Fatalf("second pass failed: %+v", s)
	}

	_, after := cl.session(id)
	byID := map[string]store.Segment{}
	for _, g := range after {
		byID[g.ID] = g
	}
	if g, ok := byID[first[0].ID]; !ok || g.Text != "Corrected by the clinician." || slices.Contains(g.Flags, domain.FlagSecondPass) {
		t.Errorf("the edited segment was touched: %+v", g)
	}
	for _, old := range first[1:3] {
		if _, ok := byID[old.ID]; ok {
			t.Errorf("unedited segment %s (queued for the second pass) was not replaced", old.ID)
		}
		var found bool
		for _, g := range after {
			if g.Start == old.Start && g.End == old.End && slices.Contains(g.Flags, domain.FlagSecondPass) && g.Origin == store.OriginMachine {
				found = true
			}
		}
		if !found {
			t.Errorf("no second-pass segment in place of %s %+v", old.ID, old)
		}
	}
	for _, old := range first[3:] {
		if g, ok := byID[old.ID]; !ok || slices.Contains(g.Flags, domain.FlagSecondPass) {
			t.Errorf("segment %s, refused by the full queue, changed: %+v", old.ID, g)
		}
	}
	if len(after) != len(first) {
		t.Errorf("%d segments after the second pass, %d before", len(after), len(first))
	}
	for i := 1; i < len(after); i++ {
		if after[i].Start < after[i-1].Start {
			t.Errorf("second-pass segments out of place: %v at %d after %v", after[i].Start, i, after[i-1].Start)
		}
	}
	// The websocket client was told: "refined" messages, each naming what it replaces —
	// the two queued utterances were refined in one packed window, so one message for
	// both when a second-pass segment runs across them, else one each.
	var replaced []string
	for len(replaced) < 2 {
		var m message
		select {
		case got, ok := <-msgs:
			if !ok {
				t.Fatalf("websocket closed after refined messages replacing %v", replaced)
			}
			m = got
		case <-time.After(30 * time.Second):
			t.Fatalf("no refined message after those replacing %v", replaced)
		}
		if m.Type == "refined" {
			if len(m.Segments) == 0 || !slices.Contains(m.Segments[0].Flags, domain.FlagSecondPass) {
				t.Errorf("refined message without second-pass segments: %+v", m)
			}
			replaced = append(replaced, m.Replaces...)
		}
	}
	if !slices.Equal(replaced, []string{first[1].ID, first[2].ID}) {
		t.Errorf("refined messages replace %v, want %s then %s", replaced, first[1].ID, first[2].ID)
	}
}
