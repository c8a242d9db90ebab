package server

// Tests for the red-team hardening of issue 14.

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"scribe/internal/domain"
	"scribe/internal/store"
)

// dirty holds the characters the red team put into edits and notes: NUL, BEL, ESC, a
// right-to-left override and a zero-width space.
const dirty = "dose\x00 5\x07 mg \x1b[31m\u202Edaily\u200B"

// invisible reports the first control or format character in s, if any.
func invisible(s string) (rune, bool) {
	for _, r := range s {
		if unicode.Is(unicode.Cc, r) && r != '\n' || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return r, true
		}
	}
	return 0, false
}

func TestControlAndBidiCharactersNeverReachTheRecord(t *testing.T) {
	var mu sync.Mutex
	var filed string
	e := newEnv(t, func(c *Config, d *Deps) {
		d.Transcriber = dirtyTranscriber{}
		d.OnApproved = func(_ context.Context, _ *sql.Tx, n ApprovedNote) error {
			mu.Lock()
			defer mu.Unlock()
			filed = n.Text
			return nil
		}
	})
	a := e.user("a", store.RoleClinician)
	e.user("cso", store.RoleCSO)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 440, 3)}, a.ID)
	c := e.login("a")
	s := startWAV(t, e, c, room.ID)
	waitFor(t, 20*time.Second, "session to stop", func() bool { v, _ := c.session(s.ID); return v.State == store.StateStopped })
	_, segs := c.session(s.ID)
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	path := "/api/sessions/" + s.ID
	if st, msg := c.errorOf("PATCH", path+"/segments/"+segs[0].ID, map[string]any{"version": segs[0].Version, "text": dirty}); st != 200 {
		t.Fatalf("edit: %d %s", st, msg)
	}
	if st, msg := c.errorOf("POST", path+"/segments", map[string]any{"after": segs[0].ID, "speaker": "patient", "text": dirty}); st != 200 {
		t.Fatalf("add line: %d %s", st, msg)
	}
	var f store.ReviewFlag
	if st := c.do("POST", path+"/segments/"+segs[0].ID+"/flags", map[string]any{"category": "wrong_words", "note": dirty}, &f); st != 201 {
		t.Fatalf("flag: %d", st)
	}
	var nf store.ReviewFlag
	if st := c.do("POST", path+"/flags", map[string]any{"category": "other", "note": dirty}, &nf); st != 201 {
		t.Fatalf("note flag: %d", st)
	}
	cso := e.login("cso")
	var in store.Incident
	if st := cso.do("POST", "/api/safety/flags/"+itoa(f.ID)+"/triage", map[string]any{"state": "triaged", "note": dirty}, &in); st != 200 {
		t.Fatalf("triage: %d", st)
	}
	check := func(what, s string) {
		t.Helper()
		if r, bad := invisible(s); bad {
			t.Errorf("%s keeps the invisible character %U: %q", what, r, s)
		}
	}
	_, segs = c.session(s.ID)
	for _, g := range segs {
		check("segment "+g.ID, g.Text)
	}
	flags, _ := e.srv.Store().Flags(context.Background(), s.ID)
	for _, fl := range flags {
		check("flag note", fl.Note)
	}
	got, _ := e.srv.Store().Incident(context.Background(), f.ID)
	for _, h := range got.History {
		check("triage note", h.Note)
	}
	if st, msg := c.errorOf("POST", path+"/approve", map[string]any{"reviewed": true}); st != 200 {
		t.Fatalf("approve: %d %s", st, msg)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(filed, "daily") {
		t.Fatalf("the record lost the words around the removed characters: %q", filed)
	}
	check("the text filed in the record", filed)
	v, _ := c.session(s.ID)
	check("the approved document", v.DocumentText)
}

// dirtyTranscriber commits machine text carrying control and bidi characters, as a
// misbehaving model could: the record must still be clean.
type dirtyTranscriber struct{}

func (dirtyTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	if err := (fakeTranscriber{segSeconds: 1}).Transcribe(ctx, src, offset, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventCommitted {
			ev.Segment.Text += " \u202Enoitacidem\x1b\u2066"
		}
		emit(ev)
	}); err != nil {
		return err
	}
	return nil
}
