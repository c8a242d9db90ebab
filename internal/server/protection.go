package server

// Data protection (issue 5): CSRF tokens bound to the login, the login cookie's
// rotation, "log out everywhere", the auditor's read-only audit API, and the audit
// record of a CSO reading a flagged segment's text.

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"scribe/internal/audit"
	"scribe/internal/store"
)

const (
	// CSRFCookieName holds the CSRF token where the page's script can read it (not
	// HttpOnly); the __Host- prefix keeps other (sub)domains from setting it.
	CSRFCookieName = "__Host-scribe_csrf"
	// CSRFHeader must carry the token on every state-changing API request.
	CSRFHeader = "X-CSRF-Token"
)

// csrfToken derives the CSRF token from the login token: bound to that login, so a
// token from another login (or another user) is refused, and one-way, so the readable
// CSRF cookie reveals nothing about the HttpOnly login token. No server state is needed.
func csrfToken(loginToken string) string {
	sum := sha256.Sum256([]byte("scribe csrf v1\x00" + loginToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func setCSRFCookie(w http.ResponseWriter, loginToken string, exp time.Time) {
	http.SetCookie(w, &http.Cookie{Name: CSRFCookieName, Value: csrfToken(loginToken), Path: "/", Expires: exp,
		Secure: true, SameSite: http.SameSiteStrictMode})
}

func clearCSRFCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CSRFCookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, SameSite: http.SameSiteStrictMode})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// csrfGuard refuses a state-changing request made with a login cookie unless it carries
// that login's CSRF token in the X-CSRF-Token header (double submit, bound to the login).
// Requests without a login cookie pass on: the handlers refuse them as not logged in.
// Login itself needs none: there is no login to ride on, and its JSON-only body cannot
// be sent by a cross-site form.
func (s *Server) csrfGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if safeMethod(r.Method) || r.URL.Path == "/api/login" {
			next.ServeHTTP(w, r)
			return
		}
		c, err := r.Cookie(CookieName)
		if err != nil || c.Value == "" {
			next.ServeHTTP(w, r)
			return
		}
		got := r.Header.Get(CSRFHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(c.Value))) != 1 {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or wrong CSRF token (" + CSRFHeader + "); reload the page and try again"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// protectionRoutes registers the data-protection API.
func (s *Server) protectionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/logout-everywhere", s.handle(s.logoutEverywhere))
	mux.HandleFunc("GET /api/audit", s.handle(s.listAudit, store.RoleAuditor))
	mux.HandleFunc("GET /api/audit/verify", s.handle(s.verifyAudit, store.RoleAuditor))
}

// logoutEverywhere ends every login of the caller, on every device.
func (s *Server) logoutEverywhere(w http.ResponseWriter, r *http.Request) error {
	n, err := s.store.DeleteLogins(r.Context(), userOf(r).ID)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	clearCSRFCookie(w)
	writeJSON(w, http.StatusOK, map[string]any{"status": "logged out everywhere", "logins_ended": n})
	return nil
}

// listAudit is the auditor's view of the trail: ?session=ID&after=SEQ&limit=N.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.AuditFilter{SessionID: q.Get("session")}
	var err error
	if v := q.Get("after"); v != "" {
		if f.AfterSeq, err = strconv.ParseInt(v, 10, 64); err != nil || f.AfterSeq < 0 {
			return errf(http.StatusBadRequest, "after must be a sequence number")
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 5000 {
			return errf(http.StatusBadRequest, "limit must be 1 to 5000")
		}
	}
	es, err := s.store.AuditEntries(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, es)
	return nil
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.store.VerifyAudit(r.Context())
	if err != nil {
		return err
	}
	out := map[string]any{"ok": rep.OK(), "entries": rep.Entries, "head": rep.Head}
	if rep.Problem != nil {
		out["problem"] = rep.Problem.String()
		out["seq"] = rep.Problem.Seq
		out["kind"] = rep.Problem.Kind
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Hijack lets websocket upgrades through the recorder.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot be hijacked")
	}
	if r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// accessLog logs each API request at debug level: method, path (ids only: no transcript
// text or NHS number is ever in a path), status and duration. Never bodies or queries.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") || !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		s.log.Debug("api request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "ms", time.Since(start).Milliseconds())
	})
}

// auditRead records that the caller is about to be sent patient text: the handler that
// writes a response carrying transcript text or flag notes calls it first, so no route,
// spelling or middleware order lets such a response out unrecorded. purpose names the
// view ("review", "incident_review", …); details add ids, never text. A full disk does
// not stop the read: the entry waits in memory for it (store.AuditOrDefer). Any other
// failure to record refuses the read.
func (s *Server) auditRead(r *http.Request, sessionID, purpose string, details map[string]any) error {
	u := userOf(r)
	d := map[string]any{"purpose": purpose, "role": string(u.Role)}
	for k, v := range details {
		d[k] = v
	}
	if err := s.store.AuditOrDefer(r.Context(), audit.Event{Actor: u.Username, Action: audit.ActionDataAccess, SessionID: sessionID, Details: d}); err != nil {
		return fmt.Errorf("record the read in the audit trail: %w", err)
	}
	return nil
}
