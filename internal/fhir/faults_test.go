package fhir

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// These fakes produce faults the real test server cannot: overload, rate limiting, hangs
// and dropped connections. Everything else is tested against the real server.

// testSystem is the identifier system the tests configure (a FHIR sink refuses the
// placeholder).
const testSystem = "https://gp.example/Id/scribe-document"

// withMetadata answers /metadata with a CapabilityStatement declaring conditional create
// and passes everything else to h.
func withMetadata(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/metadata") {
			writeCapability(w, true)
			return
		}
		h(w, r)
	}
}

func fakeSink(t *testing.T, h http.HandlerFunc, timeout time.Duration) *ServerSink {
	t.Helper()
	ts := httptest.NewServer(withMetadata(h))
	t.Cleanup(ts.Close)
	s, err := NewServerSink(ServerConfig{BaseURL: ts.URL + "/fhir", Config: Config{IdentifierSystem: testSystem}, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServerSinkFaultClassification(t *testing.T) {
	cases := []struct {
		name       string
		handler    http.HandlerFunc
		permanent  bool
		retryAfter time.Duration
		reason     string
	}{
		{"503", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, false, 0, "HTTP 503"},
		{"429 with Retry-After", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
		}, false, 7 * time.Second, "busy"},
		{"dropped connection", func(w http.ResponseWriter, _ *http.Request) {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = c.Close()
			}
		}, false, 0, "could not be reached"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, false, 0, "could not be reached"},
		{"400 OperationOutcome", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Unknown code 'xyz'","expression":["DocumentReference.type"]}]}`)
		}, true, 0, "Unknown code 'xyz' at DocumentReference.type"},
		{"401", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(401) }, true, 0, "credentials"},
		{"412 several matches", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(412) }, true, 0, "several documents"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var posts atomic.Int32
			s := fakeSink(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					posts.Add(1)
				}
				tc.handler(w, r)
			}, 300*time.Millisecond)
			_, err := s.Deliver(context.Background(), testNote())
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", IsPermanent(err), tc.permanent, err)
			}
			ra, _ := RetryAfter(err)
			if ra != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", ra, tc.retryAfter)
			}
			if !strings.Contains(Reason(err), tc.reason) {
				t.Errorf("reason %q does not mention %q", Reason(err), tc.reason)
			}
			if posts.Load() != 1 {
				t.Errorf("%d POSTs, want exactly 1 per Deliver", posts.Load())
			}
		})
	}
}

func TestServerSinkSendsConditionalCreate(t *testing.T) {
	n := testNote()
	var got *http.Request
	var auth string
	ts := httptest.NewServer(withMetadata(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		auth = r.Header.Get("Authorization")
		w.Header().Set("Location", "DocumentReference/abc/_history/1")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, `{"resourceType":"DocumentReference","id":"abc"}`)
	}))
	defer ts.Close()
	s, err := NewServerSink(ServerConfig{BaseURL: ts.URL + "/fhir/R4/", Config: Config{IdentifierSystem: testSystem}, BearerToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Deliver(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL.Path != "/fhir/R4/DocumentReference" || got.Method != http.MethodPost {
		t.Errorf("request = %s %s", got.Method, got.URL.Path)
	}
	if h := got.Header.Get("If-None-Exist"); h != "identifier="+url.QueryEscape(testSystem+"|"+n.DocumentID) {
		t.Errorf("If-None-Exist = %q", h)
	}
	if auth != "Bearer s3cret" {
		t.Errorf("Authorization = %q", auth)
	}
	if !strings.HasPrefix(got.Header.Get("Content-Type"), "application/fhir+json") {
		t.Errorf("Content-Type = %q", got.Header.Get("Content-Type"))
	}
	if rc.Location != ts.URL+"/fhir/R4/DocumentReference/abc" || !rc.Created {
		t.Errorf("receipt = %+v", rc)
	}
}

func TestServerSinkRejectsBadConfig(t *testing.T) {
	for _, cfg := range []ServerConfig{
		{BaseURL: "ftp://x"},
		{BaseURL: "not a url"},
		{BaseURL: "http://x", Config: Config{IdentifierSystem: testSystem}, BearerToken: "a", SMART: &SMARTConfig{}},
		{BaseURL: "http://x"}, // no identifier system
		{BaseURL: "http://x", Config: Config{IdentifierSystem: DefaultIdentifierSystem}},
		{BaseURL: "http://epr.example", Config: Config{IdentifierSystem: testSystem}, BearerToken: "a"}, // token in the clear
	} {
		if _, err := NewServerSink(cfg); err == nil {
			t.Errorf("NewServerSink(%+v) accepted", cfg)
		}
	}
}

func TestCancelledDeliveryIsRetryable(t *testing.T) {
	s := fakeSink(t, func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Deliver(ctx, testNote())
	if err == nil || IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want retryable wrapping the deadline", err)
	}
}
