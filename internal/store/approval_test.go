package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"scribe/internal/domain"
)

// The pre-approval check: every line without text, every open flag (on a live line or
// the whole note) and a missing NHS number must be confirmed one by one, each confirmation
// audited; an empty note cannot be approved at all; the approved note keeps a marker for
// each line without text.
func TestApprovalCheckItemsAndConfirmations(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, _ := fixture(t, s, 0)
	for i, text := range []string{"first words", "", "third words", "fourth words"} {
		if _, err := s.InsertCommitted(ctx, c.ID, domain.Segment{Start: float64(5 * i), End: float64(5*i + 4), Speaker: domain.SpeakerClinician, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetState(ctx, c.ID, StateStopped, 20); err != nil {
		t.Fatal(err)
	}
	onLine, err := s.AddFlag(ctx, c.ID, "s3", u.ID, domain.FlagMissingSpeech, "")
	if err != nil {
		t.Fatal(err)
	}
	onDeleted, err := s.AddFlag(ctx, c.ID, "s4", u.ID, domain.FlagWrongWords, "")
	if err != nil {
		t.Fatal(err)
	}
	onNote, err := s.AddNoteFlag(ctx, c.ID, u.ID, domain.FlagWrongSpeaker, "")
	if err != nil {
		t.Fatal(err)
	}
	g4, _ := s.Segment(ctx, c.ID, "s4")
	if _, err := s.DeleteSegment(ctx, c.ID, "s4", u.ID, g4.Version); err != nil {
		t.Fatal(err)
	}
	ids := openItems(t, s, c.ID)
	want := []string{"untranscribed:s2", "flag:" + strconv.FormatInt(onLine.ID, 10), "flag:" + strconv.FormatInt(onNote.ID, 10)}
	if !slices.Equal(ids, want) {
		t.Fatalf("check items %v, want %v (the flag on the deleted line %d is gone)", ids, want, onDeleted.ID)
	}
	// Every item must be confirmed: leaving one out refuses, naming it.
	for i := range want {
		some := slices.Delete(slices.Clone(want), i, i+1)
		_, err := s.Approve(ctx, c.ID, u.ID, nil, some...)
		var open *ApprovalCheckError
		if !errors.As(err, &open) || !errors.Is(err, ErrApprovalCheck) || len(open.Open) != 1 || open.Open[0].ID != want[i] {
			t.Fatalf("approval without confirming %s: %v", want[i], err)
		}
	}
	got, err := s.Approve(ctx, c.ID, u.ID, nil, append(want, "flag:999", "empty")...) // unknown ids are ignored
	if err != nil {
		t.Fatal(err)
	}
	wantDoc := "[00:00:00] Clinician: first words\n[00:00:05] Clinician: " + UntranscribedMarker + "\n[00:00:10] Clinician: third words\n"
	if got.DocumentText != wantDoc {
		t.Fatalf("approved note %q, want %q", got.DocumentText, wantDoc)
	}
	var audited []string
	es, _ := s.AuditEntries(ctx, AuditFilter{SessionID: c.ID})
	for _, e := range es {
		if e.Action == "approval_confirm" {
			audited = append(audited, string(e.Details))
		}
	}
	if len(audited) != 3 || !strings.Contains(audited[0], `"item":"untranscribed:s2"`) || !strings.Contains(audited[1], `"category":"missing_speech"`) {
		t.Fatalf("audited confirmations: %v", audited)
	}

	// No NHS number is an item too; an empty note blocks whatever is confirmed.
	r, _ := s.CreateRoom(ctx, NewRoom{Name: "Room 2", SourceKind: SourceBrowser, ClinicianID: u.ID})
	empty, err := s.StartConsultation(ctx, NewConsultation{RoomID: r.ID, ClinicianID: u.ID, Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(ctx, empty.ID, StateStopped, 0); err != nil {
		t.Fatal(err)
	}
	if ids := openItems(t, s, empty.ID); !slices.Equal(ids, []string{ItemEmpty, ItemNHSNumber}) {
		t.Fatalf("empty note items %v", ids)
	}
	if _, err := s.Approve(ctx, empty.ID, u.ID, nil, ItemEmpty, ItemNHSNumber); !errors.Is(err, ErrApprovalCheck) || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("approving an empty note: %v", err)
	}
}

// Discard closes a stopped, empty consultation and nothing else; afterwards it takes no
// edits and keeps none of the lines the clinician deleted.
func TestDiscardOnlyEmptyStoppedConsultations(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, segs := fixture(t, s, 1)
	if err := s.Discard(ctx, c.ID, u.ID); !errors.Is(err, ErrBadState) {
		t.Fatalf("discarding a recording session: %v", err)
	}
	if _, err := s.SetState(ctx, c.ID, StateStopped, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Discard(ctx, c.ID, u.ID); !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), "1 lines") {
		t.Fatalf("discarding a note with a line: %v", err)
	}
	if _, err := s.DeleteSegment(ctx, c.ID, segs[0].ID, u.ID, segs[0].Version); err != nil {
		t.Fatal(err)
	}
	if err := s.Discard(ctx, c.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Discarded(ctx, c.ID); err != nil || !d {
		t.Fatalf("Discarded = %v, %v", d, err)
	}
	if all, _ := s.Segments(ctx, c.ID, true); len(all) != 0 {
		t.Fatalf("%d lines kept after discard", len(all))
	}
	if _, err := s.AddSegment(ctx, c.ID, u.ID, NewLine{Speaker: domain.SpeakerClinician, Text: "late"}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("adding a line to a discarded session: %v", err)
	}
	if _, err := s.Approve(ctx, c.ID, u.ID, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("approving a discarded session: %v", err)
	}
	if got := actions(t, s, c.ID); got[len(got)-1] != "session_discard" {
		t.Fatalf("session audit %v does not end with session_discard", got)
	}
}

// A split carrying the text typed into the line splits that text, as one undoable edit.
func TestSplitTypedText(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, segs := fixture(t, s, 1)
	typed := "alpha beta  gamma delta"
	out, err := s.SplitSegment(ctx, c.ID, segs[0].ID, u.ID, segs[0].Version, len("alpha beta "), &typed)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Text != "alpha beta" || out[1].Text != "gamma delta" {
		t.Fatalf("split: %+v", out)
	}
	if _, err := s.Undo(ctx, c.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	live, _ := s.Segments(ctx, c.ID, false)
	if len(live) != 1 || live[0].Text != segs[0].Text {
		t.Fatalf("after undo: %+v", live)
	}
	if _, err := s.SplitSegment(ctx, c.ID, segs[0].ID, u.ID, live[0].Version, 40, &typed); !errors.Is(err, ErrInvalid) {
		t.Fatalf("split past the typed text: %v", err)
	}
}
