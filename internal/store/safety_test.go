package store

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"scribe/internal/domain"
)

func TestNoteFlagAndTriageHistory(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, c, segs := fixture(t, s, 2)
	cso, err := s.CreateUser(ctx, NewUser{Username: "cso", DisplayName: "Ms Safe", Role: RoleCSO, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	segFlag, err := s.AddFlag(ctx, c.ID, segs[1].ID, u.ID, domain.FlagWrongWords, "said amlodipine")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddNoteFlag(ctx, c.ID, u.ID, "made_up", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown note category: %v, want ErrInvalid", err)
	}
	noteFlag, err := s.AddNoteFlag(ctx, c.ID, u.ID, FlagWrongPatient, "  started on the previous patient  ")
	if err != nil {
		t.Fatal(err)
	}
	if noteFlag.SegmentID != "" || noteFlag.Note != "started on the previous patient" || noteFlag.State != FlagStateNew {
		t.Fatalf("note flag = %+v", noteFlag)
	}
	// A note-level flag must not mark any segment.
	all, err := s.Segments(ctx, c.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(all[0].ReviewFlags) != 0 || len(all[1].ReviewFlags) != 1 {
		t.Fatalf("review flags per segment: %v / %v", all[0].ReviewFlags, all[1].ReviewFlags)
	}

	in, err := s.Incident(ctx, segFlag.ID)
	if err != nil {
		t.Fatal(err)
	}
	if in.Scope != "segment" || in.Segment == nil || in.Segment.ID != segs[1].ID || in.Segment.MachineText != segs[1].Text {
		t.Fatalf("segment incident = %+v", in)
	}
	if in.ReporterName != "Dr Who" || in.RoomName != "Room 1" || len(in.Moves) != 2 {
		t.Fatalf("incident context = %+v", in)
	}
	nin, err := s.Incident(ctx, noteFlag.ID)
	if err != nil {
		t.Fatal(err)
	}
	if nin.Scope != "note" || nin.Segment != nil {
		t.Fatalf("note incident carries a segment: %+v", nin)
	}

	// new → mitigated skips triage: refused. Closing needs a reason.
	if _, err := s.TriageFlag(ctx, segFlag.ID, cso.ID, FlagStateMitigated, ""); !errors.Is(err, ErrBadState) {
		t.Fatalf("new→mitigated: %v, want ErrBadState", err)
	}
	if _, err := s.TriageFlag(ctx, segFlag.ID, cso.ID, FlagStateClosed, " "); !errors.Is(err, ErrInvalid) {
		t.Fatalf("close without note: %v, want ErrInvalid", err)
	}
	if _, err := s.TriageFlag(ctx, segFlag.ID, cso.ID, "resolved", "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown state: %v, want ErrInvalid", err)
	}
	steps := []struct{ to, note string }{{FlagStateTriaged, "drug name misheard"}, {FlagStateMitigated, "added to vocabulary v2"}, {FlagStateClosed, "no recurrence in 4 weeks"}}
	for _, st := range steps {
		if in, err = s.TriageFlag(ctx, segFlag.ID, cso.ID, st.to, st.note); err != nil {
			t.Fatalf("→%s: %v", st.to, err)
		}
	}
	if in.State != FlagStateClosed || in.UpdatedBy != "Ms Safe" || len(in.History) != 3 {
		t.Fatalf("after triage: %+v", in)
	}
	if h := in.History[1]; h.From != FlagStateTriaged || h.To != FlagStateMitigated || h.UserName != "Ms Safe" || h.Note != "added to vocabulary v2" || h.At.IsZero() {
		t.Fatalf("history[1] = %+v", h)
	}
	open, err := s.Incidents(ctx, IncidentFilter{States: []string{FlagStateNew, FlagStateTriaged, FlagStateMitigated}})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].ID != noteFlag.ID {
		t.Fatalf("open incidents = %+v", open)
	}
	counts, err := s.FlagCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[FlagStateNew] != 1 || counts[FlagStateClosed] != 1 || counts[FlagStateTriaged] != 0 {
		t.Fatalf("counts = %v", counts)
	}
	if n, err := s.OpenFlagCount(ctx); err != nil || n != 1 {
		t.Fatalf("open flag count = %d, %v", n, err)
	}
}

// approveWithEdits builds a session whose draft and approved text are known: three
// machine lines of 4 words; the clinician changes one word in line 1, fixes line 2's
// speaker, deletes line 3 and adds a 2-word line.
func approveWithEdits(t *testing.T, s *Store) (Consultation, SessionMetrics) {
	t.Helper()
	ctx := context.Background()
	u, c, segs := fixture(t, s, 3) // texts "line a words here", "line b words here", "line c words here"
	if _, err := s.SetState(ctx, c.ID, StateStopped, 15); err != nil {
		t.Fatal(err)
	}
	text := "line a phrases here"
	if _, err := s.UpdateSegment(ctx, c.ID, segs[0].ID, u.ID, segs[0].Version, &text, nil); err != nil {
		t.Fatal(err)
	}
	sp := domain.SpeakerClinician
	if _, err := s.UpdateSegment(ctx, c.ID, segs[1].ID, u.ID, segs[1].Version, nil, &sp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteSegment(ctx, c.ID, segs[2].ID, u.ID, segs[2].Version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddSegment(ctx, c.ID, u.ID, NewLine{After: segs[1].ID, Speaker: domain.SpeakerPatient, Text: "thank you"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFlag(ctx, c.ID, segs[0].ID, u.ID, domain.FlagWrongWords, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLanguageGroup(ctx, c.ID, "group B"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // approval strictly after stop
	if _, err := s.Approve(ctx, c.ID, u.ID, nil, openItems(t, s, c.ID)...); err != nil {
		t.Fatal(err)
	}
	m, err := s.RecordSessionMetrics(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = s.Consultation(ctx, c.ID)
	return c, m
}

func TestSessionMetricsFromDraftAndApproved(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	c, m := approveWithEdits(t, s)
	// Draft: 12 words. Approved: "line a phrases here line b words here thank you".
	// Note level: 1 substitution, "line c words here" → "thank you" = 2 subs + 2 dels → 5 edits.
	if m.DraftWords != 12 || m.Edits != 5 || math.Abs(m.WordEditRate-5.0/12) > 1e-9 {
		t.Fatalf("note edit rate: draft %d edits %d rate %v; want 12, 5, %v", m.DraftWords, m.Edits, m.WordEditRate, 5.0/12)
	}
	// Segments: s1 edited, s2 speaker only, s3 removed, added line → 4 total, 3 edited.
	if m.SegmentsTotal != 4 || m.SegmentsEdited != 3 || m.SpeakerCorrections != 1 {
		t.Fatalf("segments: %+v", m)
	}
	if m.ReviewFlags != 1 || m.LanguageGroup != "group B" || m.ISOWeek != ISOWeek(c.ApprovedAt) || m.ClinicianName != "Dr Who" {
		t.Fatalf("metrics = %+v", m)
	}
	want := c.ApprovedAt.Sub(c.StoppedAt).Seconds()
	if m.StopToApprovalS <= 0 || math.Abs(m.StopToApprovalS-want) > 1e-6 {
		t.Fatalf("stop→approval %v s, want %v", m.StopToApprovalS, want)
	}
	d, err := s.SessionMetricsDetail(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The alignment is kept as operations over word indices, with no words copied.
	if len(d.Note.Alignment.Ops) != 12 || d.Note.Alignment.Ref != nil || d.Note.Alignment.Hyp != nil {
		t.Fatalf("stored alignment = %+v", d.Note.Alignment)
	}
	if len(d.Segments) != 4 {
		t.Fatalf("stored segments = %d", len(d.Segments))
	}
	if err := s.SetLanguageGroup(ctx, c.ID, "x"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("language group after approval: %v, want ErrReadOnly", err)
	}
	// Stored, listed, and recomputed identically by the backfill's path.
	list, err := s.SessionMetricsList(ctx, MetricsFilter{})
	if err != nil || len(list) != 1 || list[0].Edits != 5 || list[0].ClinicianName != "Dr Who" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if n, err := s.BackfillSessionMetrics(ctx); err != nil || n != 0 {
		t.Fatalf("backfill of a recorded session: %d, %v", n, err)
	}
}

func TestBackfillComputesMissingMetrics(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	c, _ := approveWithEdits(t, s)
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM session_metrics`); err != nil {
		t.Fatal(err)
	}
	n, err := s.BackfillSessionMetrics(ctx)
	if err != nil || n != 1 {
		t.Fatalf("backfill: %d, %v", n, err)
	}
	list, _ := s.SessionMetricsList(ctx, MetricsFilter{})
	if len(list) != 1 || list[0].SessionID != c.ID || list[0].Edits != 5 {
		t.Fatalf("after backfill: %+v", list)
	}
	if _, err := s.RecordSessionMetrics(ctx, "no-such-session"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}

func TestAggregateMetrics(t *testing.T) {
	ms := []SessionMetrics{
		{ISOWeek: "2025-W01", DraftWords: 100, Edits: 10, WordEditRate: 0.1, SegmentsTotal: 10, SegmentsEdited: 2, StopToApprovalS: 30},
		{ISOWeek: "2025-W01", DraftWords: 10, Edits: 5, WordEditRate: 0.5, SegmentsTotal: 2, SegmentsEdited: 2, StopToApprovalS: 90, ReviewFlags: 1},
		{ISOWeek: "2025-W02", DraftWords: 0, Edits: 3, WordEditRate: 3, SegmentsTotal: 1, SegmentsEdited: 1, StopToApprovalS: 10},
	}
	g := AggregateMetrics(ms, func(m SessionMetrics) string { return m.ISOWeek })
	if len(g) != 2 || g[0].Key != "2025-W01" || g[1].Key != "2025-W02" {
		t.Fatalf("groups = %+v", g)
	}
	w1 := g[0]
	if w1.Sessions != 2 || math.Abs(*w1.WordEditRate-15.0/110) > 1e-9 || math.Abs(*w1.MeanSessionEditRate-0.3) > 1e-9 ||
		math.Abs(w1.SegmentsEditedShare-4.0/12) > 1e-9 || w1.MedianStopToApprove != 60 || w1.ReviewFlags != 1 {
		t.Fatalf("week 1 = %+v", w1)
	}
	// A draft with no words has no edit rate (the dashboard said "3200 %"): the words the
	// clinician added are counted as edits.
	if g[1].WordEditRate != nil || g[1].MeanSessionEditRate != nil || g[1].Edits != 3 {
		t.Fatalf("week 2 = %+v", g[1])
	}
	if ISOWeek(time.Date(2021, 1, 3, 12, 0, 0, 0, time.UTC)) != "2020-W53" {
		t.Fatal("ISO week of 3 Jan 2021 should be 2020-W53")
	}
}

func TestVocabularyVersions(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	u, _, _ := fixture(t, s, 0)
	if _, err := s.LatestVocabulary(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no vocabulary yet: %v", err)
	}
	v1, err := s.SaveVocabulary(ctx, []string{"amlodipine", "ramipril"}, u.ID, "initial")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.SaveVocabulary(ctx, []string{"amlodipine", "ramipril", "atorvastatin"}, u.ID, "add statin")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version <= v1.Version {
		t.Fatalf("versions %d then %d", v1.Version, v2.Version)
	}
	latest, err := s.LatestVocabulary(ctx)
	if err != nil || latest.Version != v2.Version || len(latest.Terms) != 3 || latest.Terms[2] != "atorvastatin" || latest.CreatedByName != "Dr Who" {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	all, err := s.VocabularyVersions(ctx)
	if err != nil || len(all) != 2 || all[0].Version != v2.Version || all[1].Reason != "initial" {
		t.Fatalf("versions = %+v, %v", all, err)
	}
	big := make([]string, MaxVocabularyTerms+1)
	for i := range big {
		big[i] = "term"
	}
	if _, err := s.SaveVocabulary(ctx, big, u.ID, "too many"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized list: %v, want ErrInvalid", err)
	}
	if _, err := s.SaveVocabulary(ctx, []string{"two\nlines"}, u.ID, "bad"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("multi-line term: %v, want ErrInvalid", err)
	}
}
