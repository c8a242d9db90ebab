package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	_ "time/tzdata" // Europe/London on a box without the zone database

	"scribe/internal/audit"
	"scribe/internal/nhsnumber"
	"scribe/internal/pdf"
	"scribe/internal/store"
)

// Copy to record (issue #15): the approved note as a GP system's free-text consultation
// entry takes it (plain text, speaker-labelled, with the approval line), and the same as
// a PDF for document-workflow import. Both are for the session's own clinician; each
// fetch is audited.

// ukTime is the zone the practice reads times in.
var ukTime = func() *time.Location {
	if l, err := time.LoadLocation("Europe/London"); err == nil {
		return l
	}
	return time.UTC
}()

// RecordNote is the approved note as it goes into a record by hand.
type RecordNote struct {
	Title string
	Lines []string
}

// Text is the note as one plain-text block (CRLF-free, UTF-8).
func (n RecordNote) Text() string { return n.Title + "\n\n" + strings.Join(n.Lines, "\n") + "\n" }

// ProfessionalID names a clinician's registration as people read it: "GMC 7654321".
func ProfessionalID(u store.User) string {
	switch {
	case u.GMCNumber != "":
		return "GMC " + u.GMCNumber
	case u.RegistrationNumber != "":
		return u.RegistrationBody + " " + u.RegistrationNumber
	case u.SDSUserID != "":
		return "SDS " + u.SDSUserID
	}
	return ""
}

// BuildRecordNote lays out an approved note: what it is, when, where, whose, the
// speaker-labelled lines, and who reviewed and approved it.
func BuildRecordNote(c store.Consultation, room store.Room, approver store.User, text string) RecordNote {
	when := func(t time.Time, layout string) string { return t.In(ukTime).Format(layout) }
	who := approver.DisplayName
	if id := ProfessionalID(approver); id != "" {
		who += " (" + id + ")"
	}
	nhs := "not recorded"
	if c.NHSNumber != "" {
		nhs = nhsnumber.Format(c.NHSNumber)
	}
	lines := []string{
		"Date: " + when(c.StartedAt, "2 Jan 2006 15:04") + "–" + when(c.StoppedAt, "15:04") + " (UK time)",
		"Room: " + room.Name,
		"NHS number: " + nhs,
		"",
	}
	lines = append(lines, strings.Split(strings.TrimRight(text, "\n"), "\n")...)
	lines = append(lines, "",
		"Reviewed and approved by "+who+" on "+when(c.ApprovedAt, "2 Jan 2006 at 15:04")+".",
		"Transcription only (scribe): what was said, not a clinical summary.")
	return RecordNote{Title: "Consultation transcript", Lines: lines}
}

func (s *Server) recordRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/sessions/{id}/record.txt", s.handle(s.recordFile(false), store.RoleClinician))
	mux.HandleFunc("GET /api/sessions/{id}/record.pdf", s.handle(s.recordFile(true), store.RoleClinician))
}

func (s *Server) recordFile(asPDF bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.approvedSession(r)
		if err != nil {
			return err
		}
		text, err := s.currentText(r, c)
		if err != nil {
			return err
		}
		room, err := s.store.Room(r.Context(), c.RoomID)
		if err != nil {
			return err
		}
		approver, err := s.store.User(r.Context(), c.ApprovedBy)
		if err != nil {
			return err
		}
		note := BuildRecordNote(c, room, approver, text)
		u := userOf(r)
		format := "text"
		if asPDF {
			format = "pdf"
		}
		if err := s.store.Audit(r.Context(), audit.Event{Actor: u.Username, Action: audit.ActionDataAccess, SessionID: c.ID,
			Details: map[string]any{"purpose": "copy_to_record", "format": format}}); err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		if !asPDF {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, err := w.Write([]byte(note.Text()))
			return err
		}
		b, err := pdf.Render(pdf.Document{Title: note.Title, Lines: note.Lines, Created: c.ApprovedAt})
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="consultation-%s.pdf"`, c.StartedAt.In(ukTime).Format("2006-01-02-1504")))
		_, err = w.Write(b)
		return err
	}
}

// currentText is the text now in force: the latest amendment's, or the approved one; a
// withdrawn note has none.
func (s *Server) currentText(r *http.Request, c store.Consultation) (string, error) {
	if s.deps.Corrections == nil {
		return c.DocumentText, nil
	}
	vs, err := s.deps.Corrections.Versions(r.Context(), c.ID)
	if err != nil {
		return "", err
	}
	for _, v := range vs { // newest first
		switch v.Kind {
		case "withdraw":
			return "", errf(http.StatusConflict, "this note was withdrawn (entered in error): there is nothing to copy")
		case "amend":
			return v.Text, nil
		}
	}
	return c.DocumentText, nil
}
