package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"scribe/internal/cleantext"
	"scribe/internal/domain"
	"scribe/internal/nhsnumber"
	"scribe/internal/store"
	"scribe/web"
)

// CookieName is the login cookie. The __Host- prefix makes browsers insist on Secure,
// Path=/ and no Domain.
const CookieName = "__Host-scribe_session"

// apiError is an error with the HTTP status it maps to and a message for the user.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func statusOf(err error) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.msg
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, store.ErrReadOnly):
		return http.StatusLocked, "this session is approved and read-only"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrBadState), errors.Is(err, store.ErrNothingToUndo):
		return http.StatusConflict, err.Error()
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, store.ErrForbidden):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, store.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, store.ErrBadCredential):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, errShuttingDown), errors.Is(err, errLoginUnchecked):
		return http.StatusServiceUnavailable, err.Error()
	case store.StorageFailure(err):
		return http.StatusInsufficientStorage, "not saved: the server's disk is full or failing. What was saved before is kept; practice IT must free space on the data disk"
	}
	return http.StatusInternalServerError, "internal error"
}

// errLoginUnchecked answers a request whose login could not be checked before its
// context ended.
var errLoginUnchecked = errors.New("the server could not check your login just now (busy, or shutting down): try again")

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

type ctxKey int

const userKey ctxKey = 0

func userOf(r *http.Request) store.User { u, _ := r.Context().Value(userKey).(store.User); return u }

// handle wraps an API handler: JSON errors, authentication, and the roles allowed.
// roles empty means any logged-in user.
func (s *Server) handle(h func(w http.ResponseWriter, r *http.Request) error, roles ...store.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authenticate(r)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "please log in"})
			return
		case err != nil && r.Context().Err() != nil:
			// The request's context ended while the login was checked: shutting down (Run's
			// base context is cancelled), the client gone, or the connection's read deadline
			// passed on a busy server. That does not end the login.
			s.finish(w, r, errLoginUnchecked)
			return
		case err != nil:
			s.finish(w, r, fmt.Errorf("check the login: %w", err))
			return
		}
		if len(roles) > 0 {
			ok := false
			for _, role := range roles {
				ok = ok || u.Role == role
			}
			if !ok {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("a %s may not do this", u.Role)})
				return
			}
		}
		r = r.WithContext(store.WithActor(context.WithValue(r.Context(), userKey, u), u.Username)) // actor: audit trail
		s.finish(w, r, h(w, r))
	}
}

func (s *Server) finish(w http.ResponseWriter, r *http.Request, err error) {
	if s.store.Deferred() > 0 { // a login or audit entry waits for the disk (store.AuditOrDefer)
		s.live.startStorageWatch()
	}
	if err == nil {
		return
	}
	status, msg := statusOf(err)
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func (s *Server) authenticate(r *http.Request) (store.User, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return store.User{}, store.ErrNotFound
	}
	return s.store.LoginUser(r.Context(), c.Value, s.policy)
}

// decode reads a JSON body of bounded size into v, refusing unknown fields.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		// Also a CSRF guard: a cross-site form cannot send application/json.
		return errf(http.StatusUnsupportedMediaType, "send the request body as application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errf(http.StatusRequestTimeout, "the request body did not arrive within %v", s.cfg.BodyReadTimeout)
		}
		return errf(http.StatusBadRequest, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return errf(http.StatusBadRequest, "malformed JSON body: more than one value")
	}
	return nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(web.Static, "static")
	files := http.FileServerFS(static)
	mux.Handle("GET /", files)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.store.DB().PingContext(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /api/login", func(w http.ResponseWriter, r *http.Request) { s.finish(w, r, s.login(w, r)) })
	mux.HandleFunc("POST /api/logout", s.logout)
	s.registerDeliveryRoutes(mux)
	s.correctionRoutes(mux) // corrections.go: NHS number fix, amend, withdraw
	s.recordRoutes(mux)     // record.go: copy to record (text, PDF)
	mux.HandleFunc("GET /api/me", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, userOf(r))
		return nil
	}))
	mux.HandleFunc("GET /api/users", s.handle(s.listUsers, store.RoleAdmin))
	mux.HandleFunc("POST /api/users", s.handle(s.createUser, store.RoleAdmin))
	mux.HandleFunc("GET /api/rooms", s.handle(s.listRooms))
	mux.HandleFunc("POST /api/rooms", s.handle(s.createRoom, store.RoleAdmin))
	mux.HandleFunc("PUT /api/rooms/{room}/clinician", s.handle(s.assignRoom, store.RoleAdmin))
	mux.HandleFunc("POST /api/rooms/{room}/clinician/accept", s.handle(s.confirmRoom, store.RoleClinician))
	mux.HandleFunc("POST /api/rooms/{room}/clinician/approve", s.handle(s.confirmRoom, store.RoleAdmin))
	mux.HandleFunc("POST /api/rooms/{room}/sessions", s.handle(s.startSession, store.RoleClinician))
	mux.HandleFunc("GET /api/sessions", s.handle(s.listSessions, store.RoleClinician))
	mux.HandleFunc("GET /api/sessions/{id}", s.handle(s.getSession, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/pause", s.handle(s.action("pause"), store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/resume", s.handle(s.action("resume"), store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/stop", s.handle(s.action("stop"), store.RoleClinician))
	mux.HandleFunc("PATCH /api/sessions/{id}/segments/{seg}", s.handle(s.editSegment, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/segments/{seg}/split", s.handle(s.splitSegment, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/segments/{seg}/merge", s.handle(s.mergeSegment, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/segments/{seg}/delete", s.handle(s.deleteSegment, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/segments/{seg}/flags", s.handle(s.flagSegment, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/segments", s.handle(s.addSegment, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/undo", s.handle(s.undo, store.RoleClinician))
	mux.HandleFunc("GET /api/sessions/{id}/edits", s.handle(s.listEdits, store.RoleClinician))
	mux.HandleFunc("POST /api/sessions/{id}/approve", s.handle(s.approve, store.RoleClinician))
	mux.HandleFunc("GET /api/sessions/{id}/live", s.handle(s.liveSocket, store.RoleClinician))
	mux.HandleFunc("GET /api/sessions/{id}/audio", s.handle(s.audioRoute, store.RoleClinician)) // retention.go: mic websocket or re-listen
	mux.HandleFunc("POST /api/sessions/{id}/discard-audio", s.handle(s.discardAudio, store.RoleClinician))
	s.safetyRoutes(mux) // safety.go
	// protection.go: audit API, logout everywhere, CSRF guard, audited reads.
	s.protectionRoutes(mux)
	s.agentRoutes(mux) // agents.go: room agents
	// review.go: pre-approval check, discard, worklist.
	s.reviewRoutes(mux)
	return securityHeaders(s.accessLog(s.bodyDeadline(s.csrfGuard(mux))))
}

// bodyDeadline gives every request that is not a websocket upgrade BodyReadTimeout to
// deliver its body: a client trickling a body in a byte at a time is cut off instead of
// holding a connection and a handler for as long as it likes.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only a request with a body gets the deadline. net/http reads the connection
		// behind a running handler once the request's body is in (at once for a request
		// without one), clearing the deadline as it starts; a deadline set after that fails
		// the read, and a failed read cancels the request's context: a Stop still waiting
		// on its pipeline after BodyReadTimeout lost its context that way.
		if r.Body != http.NoBody && !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Everything the page needs is served from here: no CDN, no external fonts.
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	source := s.clientSource(r) // throttle.go
	if wait := s.throttle.wait(source); wait > 0 {
		return throttled(w, wait)
	}
	u, err := s.store.Authenticate(r.Context(), req.Username, req.Password, source)
	if err != nil {
		if errors.Is(err, store.ErrBadCredential) {
			if backoff := s.throttle.failed(source); backoff > 0 {
				s.log.Warn("login failed; source throttled", "source", source, "wait", backoff)
			} else {
				s.log.Info("login failed") // no username: it may be a mistyped password
			}
			return errf(http.StatusUnauthorized, "wrong username or password")
		}
		return err
	}
	if old, err := r.Cookie(CookieName); err == nil && old.Value != "" {
		s.store.DeleteLogin(r.Context(), old.Value) // a fresh token at every login: no session fixation
	}
	token, exp, err := s.store.CreateLogin(r.Context(), u.ID, s.policy)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", Expires: exp, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	setCSRFCookie(w, token, exp) // protection.go
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		s.store.DeleteLogin(r.Context(), c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	clearCSRFCookie(w)
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := s.store.Users(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, us)
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Username    string `json:"username"`
		DisplayName string `json:"display_name"`
		Role        string `json:"role"`
		Password    string `json:"password"`
		GMCNumber   string `json:"gmc_number"`
		SDSUserID   string `json:"sds_user_id"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	role, err := store.ParseRole(req.Role)
	if err != nil {
		return err
	}
	u, err := s.store.CreateUser(r.Context(), store.NewUser{Username: req.Username, DisplayName: cleantext.Line(req.DisplayName), Role: role,
		Password: req.Password, GMCNumber: req.GMCNumber, SDSUserID: req.SDSUserID})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// roomView is a room with its current (recording or paused) session, if any.
type roomView struct {
	store.Room
	ClinicianName string       `json:"clinician_name,omitempty"`
	Active        *sessionView `json:"active,omitempty"`
	Offered       bool         `json:"offered,omitempty"` // an admin asks the caller to take this room
}

func (s *Server) listRooms(w http.ResponseWriter, r *http.Request) error {
	u := userOf(r)
	var filter int64
	if u.Role == store.RoleClinician {
		filter = u.ID
	}
	rooms, err := s.store.Rooms(r.Context(), filter)
	if err != nil {
		return err
	}
	out := []roomView{}
	for _, room := range rooms {
		rv := roomView{Room: room}
		if u.Role != store.RoleAdmin {
			rv.SourceConfig = nil // device numbers and file paths are the admin's business
		}
		if u.Role == store.RoleClinician && room.ClinicianID != u.ID {
			// Offered to the caller, not theirs yet: nothing about its sessions.
			rv.Offered = true
			out = append(out, rv)
			continue
		}
		if room.ClinicianID != 0 {
			if cu, err := s.store.User(r.Context(), room.ClinicianID); err == nil {
				rv.ClinicianName = cu.DisplayName
			}
		}
		active, err := s.store.Consultations(r.Context(), store.ConsultationFilter{RoomID: room.ID, States: []string{store.StateRecording, store.StatePaused}, Limit: 1})
		if err != nil {
			return err
		}
		if len(active) == 1 {
			v, err := s.viewOf(r.Context(), active[0])
			if err != nil {
				return err
			}
			if u.Role != store.RoleClinician || active[0].ClinicianID != u.ID {
				v = sessionView{Consultation: store.Consultation{State: v.State, RoomID: v.RoomID}} // admins see that a room is busy, nothing more
			}
			rv.Active = &v
		}
		out = append(out, rv)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createRoom(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name         string          `json:"name"`
		SourceKind   string          `json:"source_kind"`
		SourceConfig json.RawMessage `json:"source_config"`
		ClinicianID  int64           `json:"clinician_id"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	room, err := s.store.CreateRoom(r.Context(), store.NewRoom{Name: cleantext.Line(req.Name), SourceKind: req.SourceKind, SourceConfig: req.SourceConfig, ClinicianID: req.ClinicianID})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, room)
	return nil
}

// pathID reads a numeric id from the path strictly: decimal digits only, no sign, no
// leading zero, no spaces or other spellings of the same number (anything else is 400).
// One spelling per id keeps every check keyed on the id (audit, ownership) in step with
// the handler that reads it.
func pathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	ok := v != "" && len(v) <= 18 && v[0] != '0'
	for i := 0; ok && i < len(v); i++ {
		ok = v[i] >= '0' && v[i] <= '9'
	}
	if !ok {
		return 0, errf(http.StatusBadRequest, "%s id %q is not a number like 12", name, v)
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, errf(http.StatusBadRequest, "%s id %q is not a number like 12", name, v)
	}
	return id, nil
}

func (s *Server) assignRoom(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "room")
	if err != nil {
		return err
	}
	var req struct {
		ClinicianID *int64 `json:"clinician_id"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.ClinicianID == nil {
		return errf(http.StatusBadRequest, `give "clinician_id": the clinician to move the room to, or 0 to take it from its clinician`)
	}
	room, err := s.store.AssignRoom(r.Context(), id, *req.ClinicianID, userOf(r).ID)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if room.PendingClinicianID != 0 {
		status = http.StatusAccepted // waits for the clinician's acceptance or a second admin
	}
	writeJSON(w, status, room)
	return nil
}

// confirmRoom is the receiving clinician accepting a room an admin asked to move to them,
// or a second admin approving the move.
func (s *Server) confirmRoom(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "room")
	if err != nil {
		return err
	}
	room, err := s.store.ConfirmRoomAssignment(r.Context(), id, userOf(r).ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, room)
	return nil
}

// sessionView is a consultation as the API shows it.
type sessionView struct {
	store.Consultation
	RoomName       string `json:"room_name,omitempty"`
	RoomSource     string `json:"room_source,omitempty"`
	ClinicianName  string `json:"clinician_name,omitempty"`
	DeliveryState  string `json:"delivery_state,omitempty"`
	DeliveryReason string `json:"delivery_reason,omitempty"`
	AudioHeld      bool   `json:"audio_held"` // audio can be re-listened to (retention.go)
	ConsentByName  string `json:"consent_by_name,omitempty"`
	Discarded      bool   `json:"discarded,omitempty"` // closed with an empty note, nothing filed
	// Notice explains a state the database could not record yet (storage.go); Unsaved is
	// how many committed segments wait in memory for the disk.
	Notice  string `json:"notice,omitempty"`
	Unsaved int    `json:"unsaved,omitempty"`
}

func (s *Server) viewOf(ctx context.Context, c store.Consultation) (sessionView, error) {
	v := sessionView{Consultation: c}
	room, err := s.store.Room(ctx, c.RoomID)
	if err != nil {
		return v, err
	}
	v.RoomName, v.RoomSource = room.Name, room.SourceKind
	if u, err := s.store.User(ctx, c.ClinicianID); err == nil {
		v.ClinicianName = u.DisplayName
	}
	v.ConsentByName = v.ClinicianName
	if c.ConsentBy != c.ClinicianID {
		if u, err := s.store.User(ctx, c.ConsentBy); err == nil {
			v.ConsentByName = u.DisplayName
		}
	}
	if c.State == store.StateStopped {
		if v.Discarded, err = s.store.Discarded(ctx, c.ID); err != nil {
			return v, err
		}
	}
	v.AudioHeld = s.audioHeld(c.ID)
	if held := s.live.storageViewOf(c.ID); held != nil && c.State != store.StateApproved {
		v.State, v.Notice, v.Unsaved = held.state, StorageFailingReason, held.unsaved // storage.go
	}
	if c.State == store.StateApproved && s.deps.DeliveryState != nil {
		v.DeliveryState, v.DeliveryReason = s.deps.DeliveryState(ctx, c.ID)
	}
	return v, nil
}

func (s *Server) sessionView(ctx context.Context, id string) (sessionView, error) {
	c, err := s.store.Consultation(ctx, id)
	if err != nil {
		return sessionView{}, err
	}
	return s.viewOf(ctx, c)
}

// ownSession loads the session in the path and checks it is the caller's. Another
// clinician's session is reported as not found, so ids cannot be probed.
func (s *Server) ownSession(r *http.Request) (store.Consultation, error) {
	id := r.PathValue("id")
	c, err := s.store.Consultation(r.Context(), id)
	if err != nil || c.ClinicianID != userOf(r).ID {
		return store.Consultation{}, errf(http.StatusNotFound, "session %q not found", id)
	}
	return c, nil
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request) error {
	roomID, err := pathID(r, "room")
	if err != nil {
		return err
	}
	var req struct {
		Consent   bool   `json:"consent"`
		NHSNumber string `json:"nhs_number"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	u := userOf(r)
	room, err := s.store.Room(r.Context(), roomID)
	if err != nil || room.ClinicianID != u.ID {
		return errf(http.StatusNotFound, "room %d not found among your rooms", roomID)
	}
	if !req.Consent {
		return errf(http.StatusBadRequest, "confirm that the patient consented to recording before starting")
	}
	if err := s.roomForRecording(); err != nil { // storage.go: free-space floor, failing disk
		return err
	}
	nhs := ""
	if strings.TrimSpace(req.NHSNumber) != "" {
		nhs, err = nhsnumber.Normalize(req.NHSNumber)
		if err != nil {
			return errf(http.StatusBadRequest, "NHS number: %v", err)
		}
	}
	c, err := s.store.StartConsultation(r.Context(), store.NewConsultation{RoomID: roomID, ClinicianID: u.ID, Consent: true, NHSNumber: nhs})
	if err != nil {
		return err
	}
	if err := s.live.start(r.Context(), c); err != nil {
		return err
	}
	s.changes.notify() // worklists (review.go)
	v, err := s.sessionView(r.Context(), c.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.store.Consultations(r.Context(), store.ConsultationFilter{ClinicianID: userOf(r).ID, Limit: 100})
	if err != nil {
		return err
	}
	out := []sessionView{}
	for _, c := range cs {
		c.DocumentText = ""
		v, err := s.viewOf(r.Context(), c)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	v, err := s.viewOf(r.Context(), c)
	if err != nil {
		return err
	}
	segs, err := s.store.Segments(r.Context(), c.ID, false)
	if err != nil {
		return err
	}
	flags, err := s.store.Flags(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if err := s.auditRead(r, c.ID, "review", nil); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": v, "segments": segs, "flags": flags})
	return nil
}

func (s *Server) action(name string) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.ownSession(r)
		if err != nil {
			return err
		}
		c, err = s.live.transition(r.Context(), c.ID, name)
		if err != nil {
			return err
		}
		v, err := s.viewOf(r.Context(), c)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}

// editResult publishes the segments an edit touched to the session's viewers and
// answers with them.
func (s *Server) applyEdit(w http.ResponseWriter, r *http.Request, c store.Consultation, fn func() ([]store.Segment, error)) error {
	var segs []store.Segment
	err := s.live.session(c.ID).hub.mutate(func() (message, error) {
		var err error
		segs, err = fn()
		if err != nil {
			return message{}, err
		}
		return message{Type: "segments", Segments: segs}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"segments": segs})
	return nil
}

func (s *Server) editSegment(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var req struct {
		Version int64   `json:"version"`
		Text    *string `json:"text"`
		Speaker *string `json:"speaker"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Text != nil {
		t := cleantext.Line(*req.Text)
		req.Text = &t
	}
	var sp *domain.Speaker
	if req.Speaker != nil {
		p, err := domain.ParseSpeaker(*req.Speaker)
		if err != nil {
			return errf(http.StatusBadRequest, "%v", err)
		}
		sp = &p
	}
	u := userOf(r)
	return s.applyEdit(w, r, c, func() ([]store.Segment, error) {
		return s.store.UpdateSegment(r.Context(), c.ID, r.PathValue("seg"), u.ID, req.Version, req.Text, sp)
	})
}

func (s *Server) splitSegment(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var req struct {
		Version int64   `json:"version"`
		Offset  int     `json:"offset"`
		Text    *string `json:"text"` // typed into the line and not saved yet: split this
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	u := userOf(r)
	return s.applyEdit(w, r, c, func() ([]store.Segment, error) {
		return s.store.SplitSegment(r.Context(), c.ID, r.PathValue("seg"), u.ID, req.Version, req.Offset, req.Text)
	})
}

func (s *Server) mergeSegment(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var req struct {
		Version     int64 `json:"version"`
		NextVersion int64 `json:"next_version"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	u := userOf(r)
	return s.applyEdit(w, r, c, func() ([]store.Segment, error) {
		return s.store.MergeWithNext(r.Context(), c.ID, r.PathValue("seg"), u.ID, req.Version, req.NextVersion)
	})
}

func (s *Server) deleteSegment(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var req struct {
		Version int64 `json:"version"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	u := userOf(r)
	return s.applyEdit(w, r, c, func() ([]store.Segment, error) {
		return s.store.DeleteSegment(r.Context(), c.ID, r.PathValue("seg"), u.ID, req.Version)
	})
}

func (s *Server) addSegment(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var req struct {
		After   string   `json:"after"`
		Speaker string   `json:"speaker"`
		Text    string   `json:"text"`
		Start   *float64 `json:"start"`
		End     *float64 `json:"end"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	u := userOf(r)
	return s.applyEdit(w, r, c, func() ([]store.Segment, error) {
		return s.store.AddSegment(r.Context(), c.ID, u.ID, store.NewLine{After: req.After, Speaker: domain.Speaker(req.Speaker), Text: cleantext.Line(req.Text), Start: req.Start, End: req.End})
	})
}

func (s *Server) undo(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	u := userOf(r)
	return s.applyEdit(w, r, c, func() ([]store.Segment, error) { return s.store.Undo(r.Context(), c.ID, u.ID) })
}

func (s *Server) listEdits(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	eds, err := s.store.Edits(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if err := s.auditRead(r, c.ID, "edit_history", nil); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, eds)
	return nil
}

func (s *Server) flagSegment(w http.ResponseWriter, r *http.Request) error {
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
	u := userOf(r)
	var f store.ReviewFlag
	segID := r.PathValue("seg")
	err = s.live.session(c.ID).hub.mutate(func() (message, error) {
		var err error
		f, err = s.store.AddFlag(r.Context(), c.ID, segID, u.ID, domain.Flag(req.Category), cleantext.Text(req.Note))
		if err != nil {
			return message{}, err
		}
		g, err := s.store.Segment(r.Context(), c.ID, segID)
		if err != nil {
			return message{}, err
		}
		return message{Type: "segments", Segments: []store.Segment{g}, Flag: &f}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, f)
	return nil
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownSession(r)
	if err != nil {
		return err
	}
	var req struct {
		Reviewed bool     `json:"reviewed"`
		Confirm  []string `json:"confirm"` // ids of the pre-approval items the clinician confirmed
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if !req.Reviewed {
		return errf(http.StatusBadRequest, "confirm that you have reviewed the whole transcript (\"reviewed\": true) before approving")
	}
	u := userOf(r)
	room, err := s.store.Room(r.Context(), c.RoomID)
	if err != nil {
		return err
	}
	var approved store.Consultation
	err = s.live.session(c.ID).hub.mutate(func() (message, error) {
		var err error
		approved, err = s.store.Approve(r.Context(), c.ID, u.ID, func(tx *sql.Tx, ac store.Consultation) error {
			if s.deps.OnApproved == nil {
				return nil
			}
			return s.deps.OnApproved(r.Context(), tx, ApprovedNote{
				SessionID: ac.ID, DocumentID: ac.DocumentID, NHSNumber: ac.NHSNumber,
				ClinicianID: u.ID, ClinicianName: u.DisplayName, ClinicianGMC: u.GMCNumber, ClinicianSDSUserID: u.SDSUserID,
				ClinicianRegistrationBody: u.RegistrationBody, ClinicianRegistrationNumber: u.RegistrationNumber,
				RoomID: room.ID, RoomName: room.Name,
				ConsultationStart: ac.StartedAt, ConsultationStop: ac.StoppedAt, ApprovedAt: ac.ApprovedAt,
				Text: ac.DocumentText,
			})
		}, req.Confirm...)
		if err != nil {
			return message{}, err
		}
		// Approval ends the need to re-listen: the held audio goes now (retention.go).
		if _, err := s.deleteAudio(r.Context(), c.ID, AudioDeletedApproved); err != nil {
			s.log.Error("audio not deleted at approval", "session", c.ID, "err", err)
		}
		view, err := s.viewOf(r.Context(), approved)
		if err != nil {
			return message{}, err
		}
		return message{Type: "state", Session: &view, Reason: "approved"}, nil
	})
	var open *store.ApprovalCheckError
	if errors.As(err, &open) {
		// Answered with the items still open, so the page can list them.
		writeJSON(w, http.StatusConflict, map[string]any{"error": open.Error(), "check": open.Open})
		return nil
	}
	if err != nil {
		return err
	}
	s.recordApproval(r.Context(), approved) // safety.go: monitoring figures
	v, err := s.viewOf(r.Context(), approved)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
