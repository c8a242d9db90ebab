package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"scribe/internal/domain"
	"scribe/internal/textdiff"
)

// SessionMetrics are the monitoring figures of one approved session.
type SessionMetrics struct {
	SessionID          string    `json:"session_id"`
	ClinicianID        int64     `json:"clinician_id"`
	ClinicianName      string    `json:"clinician_name"`
	ApprovedAt         time.Time `json:"approved_at"`
	ISOWeek            string    `json:"iso_week"`
	LanguageGroup      string    `json:"language_group,omitempty"`
	DraftWords         int       `json:"draft_words"`
	Edits              int       `json:"edits"`
	WordEditRate       float64   `json:"word_edit_rate"`
	SegmentsTotal      int       `json:"segments_total"`
	SegmentsEdited     int       `json:"segments_edited"`
	SpeakerCorrections int       `json:"speaker_corrections"`
	ReviewFlags        int       `json:"review_flags"`
	MachineFlags       int       `json:"machine_flags"`
	StopToApprovalS    float64   `json:"stop_to_approval_s"`
}

// MetricsDetail is what session_metrics.detail keeps: the whole-note alignment and the
// per-segment results, as word-index operations only (see stripWords).
type MetricsDetail struct {
	Note     textdiff.EditResult    `json:"note"`
	Segments []textdiff.SegmentEdit `json:"segments"`
	Flags    map[domain.Flag]int    `json:"flags,omitempty"`
}

// ISOWeek names the ISO 8601 week of t in UTC, e.g. "2025-W07".
func ISOWeek(t time.Time) string {
	y, w := t.UTC().ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w)
}

// stripWords drops the words from an alignment: they are in the segments table already
// (where they are protected like all transcript text) and need not be copied.
func stripWords(a textdiff.Alignment) textdiff.Alignment {
	return textdiff.Alignment{Ops: a.Ops}
}

// RecordSessionMetrics computes and stores the monitoring figures of an approved session
// from the machine draft (what the pipeline committed, kept unchanged in machine_text)
// and the approved segments. Running it again recomputes the same figures.
func (s *Store) RecordSessionMetrics(ctx context.Context, sessionID string) (SessionMetrics, error) {
	c, err := s.Consultation(ctx, sessionID)
	if err != nil {
		return SessionMetrics{}, err
	}
	if c.State != StateApproved {
		return SessionMetrics{}, fmt.Errorf("%w: session metrics are computed at approval", ErrBadState)
	}
	segs, err := s.Segments(ctx, sessionID, true)
	if err != nil {
		return SessionMetrics{}, err
	}
	var draft, approved []domain.Segment
	reviewFlags := 0
	for _, g := range segs {
		if g.Origin == OriginMachine {
			draft = append(draft, domain.Segment{ID: g.ID, Start: g.Start, End: g.End, Speaker: g.MachineSpeaker, Text: g.MachineText})
		}
		if !g.Deleted {
			flags := append(append([]domain.Flag{}, g.Flags...), g.ReviewFlags...)
			approved = append(approved, domain.Segment{ID: g.ID, Start: g.Start, End: g.End, Speaker: g.Speaker, Text: g.Text, Flags: flags})
		}
	}
	flags, err := s.Flags(ctx, sessionID)
	if err != nil {
		return SessionMetrics{}, err
	}
	reviewFlags = len(flags)
	sum := textdiff.SummariseSession(draft, approved, c.StoppedAt, c.ApprovedAt)
	// The whole note's text: blind to how the clinician split or merged lines, which
	// SummariseSession (matching by id) is not.
	note := textdiff.EditRate(domain.Text(draft), domain.Text(approved))
	machineFlags := 0
	for _, g := range approved {
		for _, f := range g.Flags {
			if !isReviewFlag(f) {
				machineFlags++
			}
		}
	}
	group, err := s.LanguageGroup(ctx, sessionID)
	if err != nil {
		return SessionMetrics{}, err
	}
	m := SessionMetrics{
		SessionID: sessionID, ClinicianID: c.ClinicianID, ApprovedAt: c.ApprovedAt, ISOWeek: ISOWeek(c.ApprovedAt),
		LanguageGroup: group, DraftWords: note.DraftWords, Edits: note.Edits, WordEditRate: note.Rate,
		SegmentsTotal: sum.SegmentsTotal, SegmentsEdited: sum.SegmentsEdited, SpeakerCorrections: sum.SpeakerCorrections,
		ReviewFlags: reviewFlags, MachineFlags: machineFlags, StopToApprovalS: sum.StopToApprovalSeconds,
	}
	note.Alignment = stripWords(note.Alignment)
	for i := range sum.Segments {
		sum.Segments[i].Alignment = stripWords(sum.Segments[i].Alignment)
	}
	detail, err := json.Marshal(MetricsDetail{Note: note, Segments: sum.Segments, Flags: sum.Flags})
	if err != nil {
		return SessionMetrics{}, fmt.Errorf("session metrics: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT OR REPLACE INTO session_metrics(session_id, clinician_id, approved_at, iso_week, language_group,
		draft_words, edits, word_edit_rate, segments_total, segments_edited, speaker_corrections, review_flags, machine_flags, stop_to_approval_s, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.SessionID, m.ClinicianID, ms(m.ApprovedAt), m.ISOWeek, m.LanguageGroup, m.DraftWords, m.Edits, m.WordEditRate,
		m.SegmentsTotal, m.SegmentsEdited, m.SpeakerCorrections, m.ReviewFlags, m.MachineFlags, m.StopToApprovalS, string(detail))
	if err != nil {
		return SessionMetrics{}, fmt.Errorf("session metrics: %w", err)
	}
	m.ClinicianName = s.userName(ctx, m.ClinicianID)
	return m, nil
}

func isReviewFlag(f domain.Flag) bool {
	for _, r := range NoteFlagCategories {
		if f == r {
			return true
		}
	}
	return false
}

// BackfillSessionMetrics computes metrics for approved sessions that have none (approved
// before monitoring existed, or while the server stopped between approval and recording).
func (s *Store) BackfillSessionMetrics(ctx context.Context) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT c.id FROM consultations c LEFT JOIN session_metrics m ON m.session_id = c.id
		WHERE c.state = 'approved' AND m.session_id IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("backfill metrics: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("backfill metrics: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("backfill metrics: %w", err)
	}
	for _, id := range ids {
		if _, err := s.RecordSessionMetrics(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// MetricsFilter selects approved sessions by approval time; zero bounds are open.
type MetricsFilter struct {
	From, To    time.Time
	ClinicianID int64
}

// SessionMetricsList returns stored session metrics, oldest approval first.
func (s *Store) SessionMetricsList(ctx context.Context, f MetricsFilter) ([]SessionMetrics, error) {
	q := `SELECT m.session_id, m.clinician_id, COALESCE(u.display_name, ''), m.approved_at, m.iso_week, m.language_group, m.draft_words, m.edits,
		m.word_edit_rate, m.segments_total, m.segments_edited, m.speaker_corrections, m.review_flags, m.machine_flags, m.stop_to_approval_s
		FROM session_metrics m LEFT JOIN users u ON u.id = m.clinician_id WHERE 1 = 1`
	var args []any
	if !f.From.IsZero() {
		q += ` AND m.approved_at >= ?`
		args = append(args, ms(f.From))
	}
	if !f.To.IsZero() {
		q += ` AND m.approved_at < ?`
		args = append(args, ms(f.To))
	}
	if f.ClinicianID != 0 {
		q += ` AND m.clinician_id = ?`
		args = append(args, f.ClinicianID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY m.approved_at, m.session_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list session metrics: %w", err)
	}
	defer rows.Close()
	out := []SessionMetrics{}
	for rows.Next() {
		var m SessionMetrics
		var at int64
		if err := rows.Scan(&m.SessionID, &m.ClinicianID, &m.ClinicianName, &at, &m.ISOWeek, &m.LanguageGroup, &m.DraftWords, &m.Edits,
			&m.WordEditRate, &m.SegmentsTotal, &m.SegmentsEdited, &m.SpeakerCorrections, &m.ReviewFlags, &m.MachineFlags, &m.StopToApprovalS); err != nil {
			return nil, fmt.Errorf("list session metrics: %w", err)
		}
		m.ApprovedAt = fromMS(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// SessionMetricsDetail returns the stored per-segment results and alignment of a session.
func (s *Store) SessionMetricsDetail(ctx context.Context, sessionID string) (MetricsDetail, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT detail FROM session_metrics WHERE session_id = ?`, sessionID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return MetricsDetail{}, fmt.Errorf("metrics of session %q: %w", sessionID, ErrNotFound)
	}
	if err != nil {
		return MetricsDetail{}, fmt.Errorf("metrics of session %q: %w", sessionID, err)
	}
	var d MetricsDetail
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return MetricsDetail{}, fmt.Errorf("metrics of session %q: %w", sessionID, err)
	}
	return d, nil
}

// MetricsGroup aggregates the sessions sharing a key (a week, a clinician, a group).
type MetricsGroup struct {
	Key      string `json:"key"`
	Sessions int    `json:"sessions"`
	// WordEditRate pools all edits over all draft words; MeanSessionEditRate averages the
	// sessions' own rates, so one long consultation does not hide many bad short ones.
	// A rate needs draft words: with none (the machine wrote nothing, the clinician typed
	// it all) it is undefined (null), not "3200 %"; Edits still counts the words added.
	// The mean is over the sessions whose draft had words.
	WordEditRate        *float64 `json:"word_edit_rate"`
	MeanSessionEditRate *float64 `json:"mean_session_edit_rate"`
	DraftWords          int      `json:"draft_words"`
	Edits               int      `json:"edits"`
	SegmentsEditedShare float64  `json:"segments_edited_share"`
	SpeakerCorrections  int      `json:"speaker_corrections"`
	ReviewFlags         int      `json:"review_flags"`
	MedianStopToApprove float64  `json:"median_stop_to_approval_s"`
}

// AggregateMetrics groups session metrics by key, in key order.
func AggregateMetrics(ms []SessionMetrics, key func(SessionMetrics) string) []MetricsGroup {
	type acc struct {
		g       MetricsGroup
		rates   float64
		rated   int // sessions whose draft had words
		segs    int
		edited  int
		waiting []float64
	}
	byKey := map[string]*acc{}
	for _, m := range ms {
		k := key(m)
		a := byKey[k]
		if a == nil {
			a = &acc{g: MetricsGroup{Key: k}}
			byKey[k] = a
		}
		a.g.Sessions++
		a.g.DraftWords += m.DraftWords
		a.g.Edits += m.Edits
		a.g.SpeakerCorrections += m.SpeakerCorrections
		a.g.ReviewFlags += m.ReviewFlags
		if m.DraftWords > 0 {
			a.rates += m.WordEditRate
			a.rated++
		}
		a.segs += m.SegmentsTotal
		a.edited += m.SegmentsEdited
		a.waiting = append(a.waiting, m.StopToApprovalS)
	}
	out := make([]MetricsGroup, 0, len(byKey))
	for _, a := range byKey {
		g := a.g
		if g.DraftWords > 0 {
			g.WordEditRate = new(float64(g.Edits) / float64(g.DraftWords))
		}
		if a.rated > 0 {
			g.MeanSessionEditRate = new(a.rates / float64(a.rated))
		}
		if a.segs > 0 {
			g.SegmentsEditedShare = float64(a.edited) / float64(a.segs)
		}
		sort.Float64s(a.waiting)
		n := len(a.waiting)
		if n%2 == 1 {
			g.MedianStopToApprove = a.waiting[n/2]
		} else {
			g.MedianStopToApprove = (a.waiting[n/2-1] + a.waiting[n/2]) / 2
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Vocabulary bounds: a hint list longer than this would be cut by the prompt limit anyway.
const (
	MaxVocabularyTerms = 300
	MaxVocabularyBytes = 16 << 10
)

// VocabularyVersion is one saved version of the admin-managed vocabulary hint list.
type VocabularyVersion struct {
	Version       int64     `json:"version"`
	Terms         []string  `json:"terms,omitempty"`
	TermCount     int       `json:"term_count"`
	CreatedBy     int64     `json:"created_by"`
	CreatedByName string    `json:"created_by_name"`
	CreatedAt     time.Time `json:"created_at"`
	Reason        string    `json:"reason"`
}

// SaveVocabulary stores a new version of the term list (already validated by the caller
// with transcribe.ParseVocabulary) and returns it. The term count and size are bounded.
func (s *Store) SaveVocabulary(ctx context.Context, terms []string, userID int64, reason string) (VocabularyVersion, error) {
	if len(terms) > MaxVocabularyTerms {
		return VocabularyVersion{}, fmt.Errorf("%w: %d terms; the vocabulary holds at most %d", ErrInvalid, len(terms), MaxVocabularyTerms)
	}
	body := strings.Join(terms, "\n")
	if len(body) > MaxVocabularyBytes {
		return VocabularyVersion{}, fmt.Errorf("%w: the vocabulary is %d bytes; at most %d", ErrInvalid, len(body), MaxVocabularyBytes)
	}
	for _, t := range terms {
		if strings.ContainsAny(t, "\r\n") || strings.TrimSpace(t) == "" {
			return VocabularyVersion{}, fmt.Errorf("%w: vocabulary term %q is not one line of text", ErrInvalid, t)
		}
	}
	reason, err := checkNote("reason", reason, 500)
	if err != nil {
		return VocabularyVersion{}, err
	}
	now := ms(s.now())
	res, err := s.db.ExecContext(ctx, `INSERT INTO vocabulary_versions(terms, term_count, created_by, created_at, reason) VALUES (?, ?, ?, ?, ?)`,
		body, len(terms), userID, now, reason)
	if err != nil {
		return VocabularyVersion{}, fmt.Errorf("save vocabulary: %w", err)
	}
	v, _ := res.LastInsertId()
	return VocabularyVersion{Version: v, Terms: terms, TermCount: len(terms), CreatedBy: userID, CreatedByName: s.userName(ctx, userID),
		CreatedAt: fromMS(now), Reason: reason}, nil
}

// LatestVocabulary returns the newest saved term list, or ErrNotFound when an admin has
// never saved one (the configured file or built-in list is then in use).
func (s *Store) LatestVocabulary(ctx context.Context) (VocabularyVersion, error) {
	vs, err := s.vocabulary(ctx, `ORDER BY version DESC LIMIT 1`, true)
	if err != nil {
		return VocabularyVersion{}, err
	}
	if len(vs) == 0 {
		return VocabularyVersion{}, fmt.Errorf("vocabulary: %w", ErrNotFound)
	}
	return vs[0], nil
}

// VocabularyVersions lists all saved versions, newest first, without their terms.
func (s *Store) VocabularyVersions(ctx context.Context) ([]VocabularyVersion, error) {
	return s.vocabulary(ctx, `ORDER BY version DESC`, false)
}

func (s *Store) vocabulary(ctx context.Context, tail string, withTerms bool) ([]VocabularyVersion, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT v.version, v.terms, v.term_count, v.created_by, COALESCE(u.display_name, ''), v.created_at, v.reason
		FROM vocabulary_versions v LEFT JOIN users u ON u.id = v.created_by `+tail)
	if err != nil {
		return nil, fmt.Errorf("vocabulary: %w", err)
	}
	defer rows.Close()
	out := []VocabularyVersion{}
	for rows.Next() {
		var v VocabularyVersion
		var body string
		var at int64
		if err := rows.Scan(&v.Version, &body, &v.TermCount, &v.CreatedBy, &v.CreatedByName, &at, &v.Reason); err != nil {
			return nil, fmt.Errorf("vocabulary: %w", err)
		}
		v.CreatedAt = fromMS(at)
		if withTerms && body != "" {
			v.Terms = strings.Split(body, "\n")
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
