package server

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"time"

	"scribe/internal/audit"
	"scribe/internal/nhsnumber"
	"scribe/internal/store"
)

// Corrections of an approved note by its clinician (issue #15): adding or fixing the NHS
// number of a note that has not reached the record, amending a delivered note (a new
// version that replaces it) and withdrawing one (entered-in-error). Each is audited in the
// transaction that queues it, and the CSO lists amendments and withdrawals.

// ErrDelivered is returned by NoteCorrections when a change needs a note that has not
// reached the record, and the reverse.
var ErrDelivered = errors.New("note state does not allow this change")

// NoteCorrections is the write-back side of corrections (cmd/scribe implements it over
// the outbox). Each method runs inside the caller's transaction.
type NoteCorrections interface {
	// FixNHSNumber puts nhs on the session's note that has not reached the record (queued,
	// held or failed) and queues it again; ErrDelivered when it is on its way or there.
	FixNHSNumber(ctx context.Context, tx *sql.Tx, sessionID, nhs string) error
	// Amend queues a new version of the session's delivered note with text (and nhs when
	// not empty), replacing it; it returns the new document id.
	Amend(ctx context.Context, tx *sql.Tx, sessionID string, a Amendment) (string, error)
	// Withdraw queues the withdrawal (entered-in-error) of the session's delivered note.
	Withdraw(ctx context.Context, tx *sql.Tx, sessionID, reason, actor string) (string, error)
	// Versions lists the session's notes on their way to the record, newest first.
	Versions(ctx context.Context, sessionID string) ([]NoteVersion, error)
	// Corrections lists amendments and withdrawals for the CSO, newest first.
	Corrections(ctx context.Context) ([]Correction, error)
	// Wake starts delivery once the transaction has committed.
	Wake()
}

// Amendment is what the clinician changes in a delivered note.
type Amendment struct {
	Text      string
	NHSNumber string // "" keeps the number
	Reason    string
	Actor     string
	// Clinician is the amending clinician as the record shows them.
	Clinician store.User
}

// NoteVersion is one of a session's notes (the original, an amendment, a withdrawal) as
// its clinician sees it.
type NoteVersion struct {
	DocumentID        string     `json:"document_id"`
	Kind              string     `json:"kind"`
	State             string     `json:"state"`
	Reason            string     `json:"delivery_reason,omitempty"`
	RelatedDocumentID string     `json:"related_document_id,omitempty"`
	Text              string     `json:"text,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	SentAt            *time.Time `json:"sent_at,omitempty"`
}

// Correction is an amendment or withdrawal as the CSO sees it: ids, who, why and where it
// is, never the note text or NHS number.
type Correction struct {
	ID                int64      `json:"id"`
	SessionID         string     `json:"session_id"`
	DocumentID        string     `json:"document_id"`
	Kind              string     `json:"kind"`
	State             string     `json:"state"`
	DeliveryReason    string     `json:"delivery_reason,omitempty"`
	RelatedDocumentID string     `json:"related_document_id"`
	Actor             string     `json:"actor"`
	Reason            string     `json:"reason"`
	CreatedAt         time.Time  `json:"created_at"`
	SentAt            *time.Time `json:"sent_at,omitempty"`
}

// maxReason bounds a correction's reason: a line, not a letter.
const maxReason = 500

func (s *Server) correctionRoutes(mux *http.ServeMux) {
	if s.deps.Corrections == nil {
		return
	}
	mux.HandleFunc("PUT /api/sessions/{id}/nhs-number", s.handle(s.fixNHSNumber, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/amend", s.handle(s.amendNote, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/withdraw", s.handle(s.withdrawNote, store.RoleClinician))
	mux.HandleFunc("GET /api/sessions/{id}/versions", s.handle(s.noteVersions, store.RoleClinician))
	mux.HandleFunc("GET /api/safety/corrections", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		list, err := s.deps.Corrections.Corrections(r.Context())
		if err != nil {
			return err
		}
		if list == nil {
			list = []Correction{}
		}
		writeJSON(w, http.StatusOK, list)
		return nil
	}, store.RoleCSO))
}

// approvedSession is the clinician's own approved session.
func (s *Server) approvedSession(r *http.Request) (store.Consultation, error) {
	c, err := s.ownSession(r)
	if err != nil {
		return c, err
	}
	if c.State != store.StateApproved {
		return c, errf(http.StatusConflict, "the session is not approved yet: correct it on the review page")
	}
	return c, nil
}

// correct runs change and its audit event in one transaction, then wakes the write-back.
func (s *Server) correct(ctx context.Context, change func(tx *sql.Tx) (audit.Event, error)) error {
	tx, err := s.store.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ev, err := change(tx)
	if errors.Is(err, ErrDelivered) {
		return errf(http.StatusConflict, "%s", strings.TrimPrefix(err.Error(), ErrDelivered.Error()+": "))
	}
	if err != nil {
		return err
	}
	if err := s.store.AuditTx(ctx, tx, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.deps.Corrections.Wake()
	return nil
}

func validNHS(raw string) (string, error) {
	nhs, err := nhsnumber.Normalize(raw)
	if err != nil {
		return "", errf(http.StatusBadRequest, "%v", err)
	}
	return nhs, nil
}

func (s *Server) fixNHSNumber(w http.ResponseWriter, r *http.Request) error {
	c, err := s.approvedSession(r)
	if err != nil {
		return err
	}
	var req struct {
		NHSNumber string `json:"nhs_number"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	nhs, err := validNHS(req.NHSNumber)
	if err != nil {
		return err
	}
	u := userOf(r)
	err = s.correct(r.Context(), func(tx *sql.Tx) (audit.Event, error) {
		if err := s.deps.Corrections.FixNHSNumber(r.Context(), tx, c.ID, nhs); err != nil {
			return audit.Event{}, err
		}
		if err := s.store.SetNHSNumber(r.Context(), tx, c.ID, nhs); err != nil {
			return audit.Event{}, err
		}
		return audit.Event{Actor: u.Username, Action: audit.ActionNHSNumberCorrected, SessionID: c.ID,
			Details: map[string]any{"document_id": c.DocumentID, "had_number": c.NHSNumber != ""}}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "queued"})
	return nil
}

// correctionRequest is the body of an amendment or a withdrawal.
type correctionRequest struct {
	Text      string `json:"text"`
	NHSNumber string `json:"nhs_number"`
	Reason    string `json:"reason"`
}

func (s *Server) readCorrection(w http.ResponseWriter, r *http.Request) (correctionRequest, error) {
	var req correctionRequest
	if err := s.decode(w, r, &req); err != nil {
		return req, err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" {
		return req, errf(http.StatusBadRequest, "say why the note is corrected (\"reason\")")
	}
	if len(req.Reason) > maxReason {
		return req, errf(http.StatusBadRequest, "the reason is longer than %d characters", maxReason)
	}
	return req, nil
}

func (s *Server) amendNote(w http.ResponseWriter, r *http.Request) error {
	c, err := s.approvedSession(r)
	if err != nil {
		return err
	}
	req, err := s.readCorrection(w, r)
	if err != nil {
		return err
	}
	if strings.TrimSpace(req.Text) == "" {
		return errf(http.StatusBadRequest, "the amended note is empty (to retract a note, withdraw it)")
	}
	nhs := ""
	if req.NHSNumber != "" {
		if nhs, err = validNHS(req.NHSNumber); err != nil {
			return err
		}
	}
	u := userOf(r)
	return s.queueCorrection(w, r, c, audit.ActionNoteAmended, map[string]any{"patient_changed": nhs != "" && nhs != c.NHSNumber},
		func(tx *sql.Tx) (string, error) {
			return s.deps.Corrections.Amend(r.Context(), tx, c.ID, Amendment{Text: req.Text, NHSNumber: nhs, Reason: req.Reason, Actor: u.Username, Clinician: u})
		})
}

func (s *Server) withdrawNote(w http.ResponseWriter, r *http.Request) error {
	c, err := s.approvedSession(r)
	if err != nil {
		return err
	}
	req, err := s.readCorrection(w, r)
	if err != nil {
		return err
	}
	return s.queueCorrection(w, r, c, audit.ActionNoteWithdrawn, map[string]any{}, func(tx *sql.Tx) (string, error) {
		return s.deps.Corrections.Withdraw(r.Context(), tx, c.ID, req.Reason, userOf(r).Username)
	})
}

// queueCorrection runs queue (an amendment or a withdrawal) and its audit event (action,
// details and the new document id) in one transaction, and answers 201 with the id.
func (s *Server) queueCorrection(w http.ResponseWriter, r *http.Request, c store.Consultation, action audit.Action,
	details map[string]any, queue func(tx *sql.Tx) (string, error)) error {
	var docID string
	err := s.correct(r.Context(), func(tx *sql.Tx) (audit.Event, error) {
		var err error
		if docID, err = queue(tx); err != nil {
			return audit.Event{}, err
		}
		details["document_id"] = docID
		return audit.Event{Actor: userOf(r).Username, Action: action, SessionID: c.ID, Details: details}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"document_id": docID, "status": "queued"})
	return nil
}

func (s *Server) noteVersions(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	vs, err := s.deps.Corrections.Versions(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if vs == nil {
		vs = []NoteVersion{}
	}
	if err := s.auditRead(r, c.ID, "note_versions", nil); err != nil { // the versions' text
		return err
	}
	writeJSON(w, http.StatusOK, vs)
	return nil
}
