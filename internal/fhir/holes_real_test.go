package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"scribe/internal/fhir"
	"scribe/internal/fhir/fhirtest"
)

// faultyEPR is the real FHIR test server behind a proxy that misbehaves the ways real EPRs
// do and the test server will not: it may not honour If-None-Exist (an optional R4
// capability), may say so in its CapabilityStatement, and may cut the connection after
// the create reached the server (the reply is lost: an ambiguous failure).
type faultyEPR struct {
	*httptest.Server
	ignoreIfNoneExist bool
	// dropReplies is how many create replies to lose after forwarding the request.
	dropReplies atomic.Int32
	// replyStatus, when set, replaces the status of forwarded creates (e.g. 502 after the
	// server created the resource).
	replyStatus atomic.Int32
	creates     atomic.Int32
}

func newFaultyEPR(t *testing.T, srv *fhirtest.Server, ignoreIfNoneExist bool) *faultyEPR {
	t.Helper()
	target, err := url.Parse(srv.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyEPR{ignoreIfNoneExist: ignoreIfNoneExist}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/metadata") {
			w.Header().Set("Content-Type", "application/fhir+json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
				"format": []string{"json"},
				"rest": []any{map[string]any{"mode": "server", "resource": []any{map[string]any{
					"type": "DocumentReference", "conditionalCreate": !f.ignoreIfNoneExist,
				}}}},
			})
			return
		}
		if r.Method != http.MethodPost {
			rp.ServeHTTP(w, r)
			return
		}
		f.creates.Add(1)
		if f.ignoreIfNoneExist {
			r.Header.Del("If-None-Exist")
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		if f.dropReplies.Load() > 0 {
			f.dropReplies.Add(-1)
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				_ = c.Close()
			}
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		status := rec.Code
		if s := f.replyStatus.Load(); s != 0 {
			status = int(s)
		}
		w.WriteHeader(status)
		_, _ = io.Copy(w, bytes.NewReader(rec.Body.Bytes()))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *faultyEPR) sink(t *testing.T, cfg fhir.Config) *fhir.ServerSink {
	t.Helper()
	if cfg.IdentifierSystem == "" {
		cfg.IdentifierSystem = testSystem
	}
	s, err := fhir.NewServerSink(fhir.ServerConfig{BaseURL: f.URL + "/fhir/R4", Config: cfg, LookupPatient: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// H2: with a server that does not honour If-None-Exist, delivering again made a second copy.
func TestH2NoConditionalCreateSearchesFirst(t *testing.T) {
	srv := fhirtest.Shared(t)
	epr := newFaultyEPR(t, srv, true)
	n, _ := realNote(t, srv)
	s := epr.sink(t, fhir.Config{})
	for i := 0; i < 2; i++ {
		if _, err := s.Deliver(context.Background(), n); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if got := srv.Search(t, "DocumentReference", identifierQuery(n.DocumentID)); len(got) != 1 {
		t.Errorf("the EPR holds %d copies after two deliveries, want 1", len(got))
	}
}

// H2: after an ambiguous failure (the create reached the server, the reply was lost or was
// a 5xx) the next attempt must find the document rather than post it again.
func TestH2AmbiguousFailureSearchesBeforeRepost(t *testing.T) {
	srv := fhirtest.Shared(t)
	for _, tc := range []struct {
		name  string
		fault func(*faultyEPR)
	}{
		{"connection dropped", func(f *faultyEPR) { f.dropReplies.Store(1) }},
		{"502 after create", func(f *faultyEPR) { f.replyStatus.Store(http.StatusBadGateway) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			epr := newFaultyEPR(t, srv, true)
			n, _ := realNote(t, srv)
			s := epr.sink(t, fhir.Config{})
			tc.fault(epr)
			_, err := s.Deliver(context.Background(), n)
			if err == nil || fhir.IsPermanent(err) {
				t.Fatalf("first delivery: err = %v, want retryable", err)
			}
			epr.replyStatus.Store(0)
			if _, err := s.Deliver(context.Background(), n); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := srv.Search(t, "DocumentReference", identifierQuery(n.DocumentID)); len(got) != 1 {
				t.Errorf("the EPR holds %d copies, want 1", len(got))
			}
			if c := epr.creates.Load(); c != 1 {
				t.Errorf("%d creates posted, want 1 (the retry finds the first)", c)
			}
		})
	}
}

// H3: If-None-Exist was not URL-encoded, so an identifier system with + or & never matched
// and every retry made a copy.
func TestH3IfNoneExistIsURLEncoded(t *testing.T) {
	srv := fhirtest.Shared(t)
	cfg := fhir.Config{IdentifierSystem: "https://gp.example/Id/scribe+notes&v=2"}
	n, _ := realNote(t, srv)
	s := newRealSink(t, srv, cfg)
	for i := 0; i < 2; i++ {
		if _, err := s.Deliver(context.Background(), n); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	got := srv.Search(t, "DocumentReference", url.Values{"identifier": {cfg.IdentifierSystem + "|" + n.DocumentID}})
	if len(got) != 1 {
		t.Errorf("the EPR holds %d copies after two deliveries, want 1", len(got))
	}
}

// H5: a 200 on conditional create (the identifier already exists) was taken as success
// without looking at what exists: possibly another patient's or an older text.
func TestH5ExistingDocumentIsCompared(t *testing.T) {
	srv := fhirtest.Shared(t)
	n, _ := realNote(t, srv)
	// The EPR already holds a document with this identifier, on another patient.
	other, _ := realNote(t, srv)
	other.DocumentID = n.DocumentID
	s := newRealSink(t, srv, fhir.Config{})
	if _, err := s.Deliver(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	_, err := s.Deliver(context.Background(), n)
	if err == nil || !fhir.IsPermanent(err) {
		t.Fatalf("err = %v: a document on another patient was taken as this note delivered", err)
	}
	if !strings.Contains(fhir.Reason(err), "different patient") {
		t.Errorf("reason %q does not say what differs", fhir.Reason(err))
	}
	// Same patient, different text (an older version): also held.
	older := n
	older.DocumentID = uuid.NewString()
	if _, err := s.Deliver(context.Background(), older); err != nil {
		t.Fatal(err)
	}
	newer := older
	newer.Text += " Addendum."
	_, err = s.Deliver(context.Background(), newer)
	if err == nil || !strings.Contains(fhir.Reason(err), "different text") {
		t.Errorf("err = %v, want held naming the different text", err)
	}
}
