package server

// Clinical safety and monitoring (issue 6): whole-note flags, the Clinical Safety
// Officer's triage queue, per-session accuracy monitoring with a CSV export, the optional
// consented language/accent group, the admin-managed vocabulary, and /metrics.

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"scribe/internal/audit"
	"scribe/internal/cleantext"
	"scribe/internal/domain"
	"scribe/internal/metrics"
	"scribe/internal/store"
	"scribe/internal/transcribe"
)

// SafetyOptions configure the safety and monitoring features; all are optional.
type SafetyOptions struct {
	// Metrics, when set, is served at /metrics and told about each decoded utterance by
	// transcribers that read RoomName from their context.
	Metrics *metrics.Metrics
	// MetricsToken lets a remote scraper read /metrics with "Authorization: Bearer
	// <token>". Without it only loopback clients may (see package metrics).
	MetricsToken string
	// LanguageGroups are the coarse patient language/accent groups a clinician may record,
	// with the patient's consent, at the start of a session. Empty: the feature is off.
	LanguageGroups []string
	// SetVocabulary gives the transcription engine a new vocabulary hint list; it is
	// called at start with the newest saved version and whenever an admin saves one.
	SetVocabulary func(terms []string)
}

type roomCtxKey struct{}

// withRoom marks a pipeline run's context with its room name.
func withRoom(ctx context.Context, room string) context.Context {
	return context.WithValue(ctx, roomCtxKey{}, room)
}

// RoomName is the name of the room a Transcribe call is working for ("" when unknown),
// so a transcriber can label its metrics per room.
func RoomName(ctx context.Context) string {
	r, _ := ctx.Value(roomCtxKey{}).(string)
	return r
}

// safetyRoutes registers the safety and monitoring API and prepares what it needs.
func (s *Server) safetyRoutes(mux *http.ServeMux) {
	ctx := context.Background()
	if err := audit.EnsureSchema(ctx, s.store.DB()); err != nil {
		s.log.Error("audit log unavailable", "err", err)
	}
	s.applySavedVocabulary(ctx)
	if n, err := s.store.BackfillSessionMetrics(ctx); err != nil {
		s.log.Error("monitoring backfill failed", "err", err)
	} else if n > 0 {
		s.log.Info("monitoring figures computed for sessions approved earlier", "sessions", n)
	}

	mux.HandleFunc("POST /api/sessions/{id}/flags", s.handle(s.flagNote, store.RoleClinician))
	mux.HandleFunc("GET /api/language-groups", s.handle(s.languageGroups))
	mux.HandleFunc("PUT /api/sessions/{id}/language-group", s.handle(s.setLanguageGroup, store.RoleClinician))
	mux.HandleFunc("GET /api/safety/flags", s.handle(s.listIncidents, store.RoleCSO))
	mux.HandleFunc("GET /api/safety/flags/{flag}", s.handle(s.getIncident, store.RoleCSO))
	mux.HandleFunc("POST /api/safety/flags/{flag}/triage", s.handle(s.triageIncident, store.RoleCSO))
	mux.HandleFunc("GET /api/monitoring", s.handle(s.monitoring, store.RoleCSO))
	mux.HandleFunc("GET /api/monitoring.csv", s.handle(s.monitoringCSV, store.RoleCSO))
	mux.HandleFunc("GET /api/monitoring/sessions/{id}", s.handle(s.monitoringDetail, store.RoleCSO))
	mux.HandleFunc("GET /api/vocabulary", s.handle(s.getVocabulary, store.RoleAdmin, store.RoleCSO))
	mux.HandleFunc("PUT /api/vocabulary", s.handle(s.putVocabulary, store.RoleAdmin))
	if m := s.deps.Safety.Metrics; m != nil {
		mux.Handle("GET /metrics", m.Handler(s.deps.Safety.MetricsToken))
	}
}

// recordApproval computes the monitoring figures of a session just approved. A failure
// is logged, not returned: the approval itself has happened, and the backfill at the
// next start computes what is missing.
func (s *Server) recordApproval(ctx context.Context, c store.Consultation) {
	if _, err := s.store.RecordSessionMetrics(ctx, c.ID); err != nil {
		s.log.Error("monitoring figures not recorded", "session", c.ID, "err", err)
	}
}

func (s *Server) flagNote(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var req struct {
		Category string `json:"category"`
		Note     string `json:"note"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	f, err := s.store.AddNoteFlag(r.Context(), c.ID, userOf(r).ID, domain.Flag(req.Category), cleantext.Text(req.Note))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, f)
	return nil
}

func (s *Server) languageGroups(w http.ResponseWriter, r *http.Request) error {
	groups := s.deps.Safety.LanguageGroups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"enabled": len(groups) > 0, "groups": groups})
	return nil
}

func (s *Server) setLanguageGroup(w http.ResponseWriter, r *http.Request) error {
	if len(s.deps.Safety.LanguageGroups) == 0 {
		return errf(http.StatusNotFound, "language/accent group recording is not enabled at this practice")
	}
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var req struct {
		Group   string `json:"group"`
		Consent bool   `json:"consent"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Group != "" {
		if !req.Consent {
			return errf(http.StatusBadRequest, "record a language/accent group only with the patient's consent (\"consent\": true)")
		}
		if !slices.Contains(s.deps.Safety.LanguageGroups, req.Group) {
			return errf(http.StatusBadRequest, "unknown language/accent group %q (want one of %v)", req.Group, s.deps.Safety.LanguageGroups)
		}
	}
	if err := s.store.SetLanguageGroup(r.Context(), c.ID, req.Group); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"group": req.Group})
	return nil
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request) error {
	var states []string
	if q := r.URL.Query().Get("state"); q != "" {
		states = strings.Split(q, ",")
	}
	in, err := s.store.Incidents(r.Context(), store.IncidentFilter{States: states})
	if err != nil {
		return err
	}
	counts, err := s.store.FlagCounts(r.Context())
	if err != nil {
		return err
	}
	if len(in) > 0 { // segment text and notes: audited like the single view
		ids := make([]int64, len(in))
		for i, f := range in {
			ids[i] = f.ID
		}
		if err := s.auditRead(r, "", "incident_queue", map[string]any{"flag_ids": ids}); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"flags": in, "counts": counts})
	return nil
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "flag")
	if err != nil {
		return err
	}
	in, err := s.store.Incident(r.Context(), id)
	if err != nil {
		return err
	}
	if err := s.auditRead(r, in.SessionID, "incident_review", map[string]any{"flag_id": id}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

func (s *Server) triageIncident(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "flag")
	if err != nil {
		return err
	}
	var req struct {
		State string `json:"state"`
		Note  string `json:"note"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	in, err := s.store.TriageFlag(r.Context(), id, userOf(r).ID, req.State, cleantext.Text(req.Note))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

// monitoringRange reads ?from=YYYY-MM-DD&to=YYYY-MM-DD (to exclusive).
func monitoringRange(r *http.Request) (store.MetricsFilter, error) {
	var f store.MetricsFilter
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := r.URL.Query().Get(name); v != "" {
			t, err := time.Parse(time.DateOnly, v)
			if err != nil {
				return f, errf(http.StatusBadRequest, "%s must be a date like 2025-01-31", name)
			}
			*dst = t
		}
	}
	return f, nil
}

func (s *Server) monitoring(w http.ResponseWriter, r *http.Request) error {
	f, err := monitoringRange(r)
	if err != nil {
		return err
	}
	ms, err := s.store.SessionMetricsList(r.Context(), f)
	if err != nil {
		return err
	}
	clinician := func(m store.SessionMetrics) string {
		if m.ClinicianName != "" {
			return m.ClinicianName
		}
		return "clinician " + strconv.FormatInt(m.ClinicianID, 10)
	}
	group := func(m store.SessionMetrics) string {
		if m.LanguageGroup == "" {
			return "not recorded"
		}
		return m.LanguageGroup
	}
	counts, err := s.store.FlagCounts(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sessions":     ms,
		"by_week":      store.AggregateMetrics(ms, func(m store.SessionMetrics) string { return m.ISOWeek }),
		"by_clinician": store.AggregateMetrics(ms, clinician),
		"by_group":     store.AggregateMetrics(ms, group),
		"flag_counts":  counts,
	})
	return nil
}

// MonitoringCSVHeader is the first row of GET /api/monitoring.csv.
var MonitoringCSVHeader = []string{"session_id", "approved_at", "iso_week", "clinician_id", "clinician", "language_group",
	"draft_words", "edits", "word_edit_rate", "segments_total", "segments_edited", "speaker_corrections", "review_flags",
	"machine_flags", "stop_to_approval_s"}

func (s *Server) monitoringCSV(w http.ResponseWriter, r *http.Request) error {
	f, err := monitoringRange(r)
	if err != nil {
		return err
	}
	ms, err := s.store.SessionMetricsList(r.Context(), f)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="scribe-monitoring.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	cw.Write(MonitoringCSVHeader)
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	rate := func(m store.SessionMetrics) string { // undefined without draft words
		if m.DraftWords == 0 {
			return ""
		}
		return num(m.WordEditRate)
	}
	for _, m := range ms {
		cw.Write([]string{m.SessionID, m.ApprovedAt.Format(time.RFC3339), m.ISOWeek, strconv.FormatInt(m.ClinicianID, 10),
			csvSafe(m.ClinicianName), csvSafe(m.LanguageGroup), strconv.Itoa(m.DraftWords), strconv.Itoa(m.Edits), rate(m),
			strconv.Itoa(m.SegmentsTotal), strconv.Itoa(m.SegmentsEdited), strconv.Itoa(m.SpeakerCorrections),
			strconv.Itoa(m.ReviewFlags), strconv.Itoa(m.MachineFlags), num(m.StopToApprovalS)})
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe stops a spreadsheet from reading a name as a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func (s *Server) monitoringDetail(w http.ResponseWriter, r *http.Request) error {
	d, err := s.store.SessionMetricsDetail(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// applySavedVocabulary hands the newest saved vocabulary to the engine at start.
func (s *Server) applySavedVocabulary(ctx context.Context) {
	v, err := s.store.LatestVocabulary(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		s.log.Error("saved vocabulary not loaded", "err", err)
		return
	}
	if s.deps.Safety.SetVocabulary != nil {
		s.deps.Safety.SetVocabulary(v.Terms)
	}
	if m := s.deps.Safety.Metrics; m != nil {
		m.SetVocabularyVersion(v.Version)
	}
}

func (s *Server) getVocabulary(w http.ResponseWriter, r *http.Request) error {
	versions, err := s.store.VocabularyVersions(r.Context())
	if err != nil {
		return err
	}
	out := map[string]any{"versions": versions, "max_terms": store.MaxVocabularyTerms, "max_prompt_chars": transcribe.MaxPromptChars}
	v, err := s.store.LatestVocabulary(r.Context())
	switch {
	case err == nil:
		out["current"] = v
		out["prompt"] = transcribe.BuildPrompt(v.Terms)
	case errors.Is(err, store.ErrNotFound):
		// Never saved: show the built-in list as version 0 so an admin can start from it.
		terms, perr := transcribe.ParseVocabulary(strings.NewReader(transcribe.DefaultVocabulary))
		if perr != nil {
			return perr
		}
		out["current"] = store.VocabularyVersion{Version: 0, Terms: terms, TermCount: len(terms), Reason: "built-in list (or the configured file)"}
		out["prompt"] = transcribe.BuildPrompt(terms)
	default:
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) putVocabulary(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Terms  string `json:"terms"` // one term per line, # comments allowed
		Reason string `json:"reason"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	terms, err := transcribe.ParseVocabulary(strings.NewReader(req.Terms))
	if err != nil {
		return errf(http.StatusBadRequest, "%v", err)
	}
	if len(terms) == 0 {
		return errf(http.StatusBadRequest, "the vocabulary needs at least one term")
	}
	if strings.TrimSpace(req.Reason) == "" {
		return errf(http.StatusBadRequest, "say why the vocabulary changes (reason)")
	}
	u := userOf(r)
	v, err := s.store.SaveVocabulary(r.Context(), terms, u.ID, cleantext.Line(req.Reason))
	if err != nil {
		return err
	}
	if err := audit.New(s.store.DB()).Append(r.Context(), audit.Event{Actor: u.Username, Action: audit.ActionConfigChange,
		Details: map[string]any{"setting": "vocabulary", "version": v.Version, "terms": v.TermCount}}); err != nil {
		s.log.Error("vocabulary change not audited", "version", v.Version, "err", err)
	}
	if s.deps.Safety.SetVocabulary != nil {
		s.deps.Safety.SetVocabulary(v.Terms)
	}
	if m := s.deps.Safety.Metrics; m != nil {
		m.SetVocabularyVersion(v.Version)
	}
	s.log.Info("vocabulary replaced", "version", v.Version, "terms", v.TermCount, "by", u.Username)
	writeJSON(w, http.StatusOK, map[string]any{"current": v, "prompt": transcribe.BuildPrompt(v.Terms)})
	return nil
}
