package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"scribe/internal/store"
)

// Delivery is one approved note's write-back state, as an admin sees it: no note text.
type Delivery struct {
	ID         int64     `json:"id"`
	SessionID  string    `json:"session_id"`
	DocumentID string    `json:"document_id"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	Attempts   int       `json:"attempts"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// DeliveryAdmin lets an admin see the write-back queue and retry a held note once the
// cause (configuration, the patient's record) is fixed.
type DeliveryAdmin interface {
	Deliveries(ctx context.Context, state string) ([]Delivery, error)
	RetryDelivery(ctx context.Context, id int64) error
}

func (s *Server) registerDeliveryRoutes(mux *http.ServeMux) {
	if s.deps.Deliveries == nil {
		return
	}
	mux.HandleFunc("GET /api/deliveries", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		list, err := s.deps.Deliveries.Deliveries(r.Context(), r.URL.Query().Get("state"))
		if err != nil {
			return err
		}
		if list == nil {
			list = []Delivery{}
		}
		writeJSON(w, http.StatusOK, list)
		return nil
	}, store.RoleAdmin))
	mux.HandleFunc("POST /api/deliveries/{id}/retry", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return errf(http.StatusBadRequest, "delivery id %q is not a number", r.PathValue("id"))
		}
		if err := s.deps.Deliveries.RetryDelivery(r.Context(), id); err != nil {
			return errf(http.StatusConflict, "cannot retry delivery %d: %v", id, err)
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "queued"})
		return nil
	}, store.RoleAdmin))
}
