package server

import (
	"fmt"
	"net/http"

	"scribe/internal/record"
	"scribe/internal/store"
)

// Copy to record (issue #15): the approved note as a GP system's free-text consultation
// entry takes it (plain text, speaker-labelled, with the approval line), and the same as
// a PDF for document-workflow import. Both are for the session's own clinician; each
// fetch is audited.

// recordNote lays out the session's approved (or latest amended) note.
func recordNote(c store.Consultation, room store.Room, approver store.User, text string) record.Note {
	return record.Note{NHSNumber: c.NHSNumber, Room: room.Name, Start: c.StartedAt, Stop: c.StoppedAt, ApprovedAt: c.ApprovedAt,
		Approver: record.Who(approver.DisplayName, approver.GMCNumber, approver.RegistrationBody, approver.RegistrationNumber, approver.SDSUserID),
		Text:     text}
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
		note := recordNote(c, room, approver, text)
		format := "text"
		if asPDF {
			format = "pdf"
		}
		if err := s.auditRead(r, c.ID, "copy_to_record", map[string]any{"format": format}); err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		if !asPDF {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, err := w.Write([]byte(record.Text(note)))
			return err
		}
		b, err := record.PDF(note)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="consultation-%s.pdf"`, record.FileTime(c.StartedAt)))
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
