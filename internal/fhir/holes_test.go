package fhir

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The write-back holes of issue #15 that need a misbehaving server the real test server
// cannot be: redirects, Retry-After abuse, revoked tokens. Each of these tests failed on
// the code before the fix (see the issue and the report).

// H1: a 301/302/303 on the create was followed as a GET, and the search Bundle's 200 taken
// as success: "sent" with nothing created.
func TestH1RedirectOnCreateIsHeldNotFollowed(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			var gets, posts atomic.Int32
			s := fakeSink(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/metadata") {
					writeCapability(w, true)
					return
				}
				if r.Method == http.MethodGet {
					gets.Add(1)
					w.Header().Set("Content-Type", "application/fhir+json")
					_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","entry":[]}`)
					return
				}
				posts.Add(1)
				w.Header().Set("Location", "/fhir/moved/DocumentReference")
				w.WriteHeader(code)
			}, time.Second)
			_, err := s.Deliver(context.Background(), testNote())
			if err == nil {
				t.Fatal("a redirected create was recorded as delivered")
			}
			if !IsPermanent(err) {
				t.Errorf("err = %v, want a held (permanent) error", err)
			}
			if !strings.Contains(Reason(err), "/fhir/moved/DocumentReference") {
				t.Errorf("reason %q does not name the Location", Reason(err))
			}
			if posts.Load() != 1 {
				t.Errorf("%d POSTs, want 1 (the redirect is not followed)", posts.Load())
			}
			if g := gets.Load(); g > 1 { // at most the search before create
				t.Errorf("%d searches: the redirect was followed as a GET", g)
			}
		})
	}
}

// H9: a 307/308 re-sent the bearer token and the note (with the NHS number) to the origin
// named in Location.
func TestH9NothingGoesToAnotherOrigin(t *testing.T) {
	for _, code := range []int{307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			var leaked atomic.Int32
			var leakedAuth atomic.Value
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				leaked.Add(1)
				leakedAuth.Store(r.Header.Get("Authorization"))
				w.WriteHeader(http.StatusCreated)
			}))
			defer other.Close()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/metadata") {
					writeCapability(w, true)
					return
				}
				w.Header().Set("Location", other.URL+r.URL.Path)
				w.WriteHeader(code)
			}))
			defer ts.Close()
			s, err := NewServerSink(ServerConfig{BaseURL: ts.URL + "/fhir", Config: Config{IdentifierSystem: testSystem}, BearerToken: "s3cret", Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Deliver(context.Background(), testNote())
			if err == nil || !IsPermanent(err) {
				t.Errorf("err = %v, want held", err)
			}
			if n := leaked.Load(); n != 0 {
				t.Errorf("the other origin received %d requests (Authorization %q)", n, leakedAuth.Load())
			}
		})
	}
}

// H10: Retry-After had no ceiling; a year parked the note for a year, silently.
func TestH10RetryAfterIsCappedAndShown(t *testing.T) {
	s := fakeSink(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/metadata") {
			writeCapability(w, true)
			return
		}
		w.Header().Set("Retry-After", "31536000")
		w.WriteHeader(http.StatusServiceUnavailable)
	}, time.Second)
	_, err := s.Deliver(context.Background(), testNote())
	ra, ok := RetryAfter(err)
	if !ok || ra > MaxRetryAfter {
		t.Errorf("RetryAfter = %v, %v; want at most %v", ra, ok, MaxRetryAfter)
	}
	if r := Reason(err); !strings.Contains(r, "Retry-After") || !strings.Contains(r, "8760h") {
		t.Errorf("reason %q does not show the requested wait and the cap", r)
	}
}

// smartServer is a FHIR endpoint behind a SMART token endpoint, both over TLS.
type smartServer struct {
	te      *tokenEndpoint
	ts      *httptest.Server
	mu      sync.Mutex
	revoked map[string]bool // access tokens the FHIR endpoint refuses with 401
	seen    []string
}

func newSMARTServer(t *testing.T, expiresIn int) (*smartServer, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ss := &smartServer{revoked: map[string]bool{}}
	ss.te = &tokenEndpoint{t: t, pub: &key.PublicKey, alg: "ES384", clientID: "scribe-a81001", expiresIn: expiresIn, jtis: map[string]bool{}}
	mux := http.NewServeMux()
	mux.Handle("/token", ss.te)
	mux.HandleFunc("/fhir/metadata", func(w http.ResponseWriter, r *http.Request) { writeCapability(w, true) })
	mux.HandleFunc("/fhir/DocumentReference", func(w http.ResponseWriter, r *http.Request) {
		auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		ss.mu.Lock()
		ss.seen = append(ss.seen, auth)
		bad := ss.revoked[auth]
		ss.mu.Unlock()
		if bad {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","entry":[]}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"resourceType":"DocumentReference","id":"d1"}`)
	})
	ss.ts = httptest.NewTLSServer(mux)
	t.Cleanup(ss.ts.Close)
	ss.te.url = ss.ts.URL + "/token"
	return ss, key
}

func (ss *smartServer) sink(t *testing.T, key *ecdsa.PrivateKey, now func() time.Time) *ServerSink {
	t.Helper()
	s, err := NewServerSink(ServerConfig{
		BaseURL:   ss.ts.URL + "/fhir",
		Config:    Config{IdentifierSystem: testSystem},
		Transport: ss.ts.Client().Transport,
		SMART: &SMARTConfig{TokenURL: ss.te.url, ClientID: ss.te.clientID, Key: key, KeyID: "key-1",
			Scopes: []string{"system/DocumentReference.c", "system/Patient.rs"}, Now: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// H7: a 401 with a cached token held every note until restart.
func TestH7RevokedTokenIsEvictedAndRetriedOnce(t *testing.T) {
	ss, key := newSMARTServer(t, 3600)
	s := ss.sink(t, key, nil)
	if _, err := s.Deliver(context.Background(), testNote()); err != nil {
		t.Fatal(err)
	}
	ss.mu.Lock()
	ss.revoked["token-1"] = true // the EPR revoked it (key rotation, server restart)
	ss.mu.Unlock()
	if _, err := s.Deliver(context.Background(), testNote()); err != nil {
		t.Fatalf("delivery after the token was revoked: %v", err)
	}
	ss.te.mu.Lock()
	issued := len(ss.te.issued)
	ss.te.mu.Unlock()
	if issued != 2 {
		t.Errorf("%d tokens issued, want 2 (the revoked one replaced once)", issued)
	}
	// A server that refuses every token is a credentials problem: held, after one retry.
	ss.mu.Lock()
	ss.revoked["token-2"], ss.revoked["token-3"] = true, true
	ss.mu.Unlock()
	_, err := s.Deliver(context.Background(), testNote())
	if !IsPermanent(err) {
		t.Errorf("err = %v, want held when a fresh token is refused too", err)
	}
}

// H7: a token response without expires_in was cached for ever.
func TestH7TokenWithoutExpiryHasBoundedLifetime(t *testing.T) {
	ss, key := newSMARTServer(t, 0) // 0: expires_in omitted
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := ss.sink(t, key, clock)
	if _, err := s.Deliver(context.Background(), testNote()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(DefaultTokenLifetime + time.Second)
	mu.Unlock()
	if _, err := s.Deliver(context.Background(), testNote()); err != nil {
		t.Fatal(err)
	}
	ss.te.mu.Lock()
	defer ss.te.mu.Unlock()
	if len(ss.te.issued) != 2 {
		t.Errorf("%d tokens issued, want 2: a token without expires_in must not live for ever", len(ss.te.issued))
	}
}

// H8: production SMART must send scopes and a kid, aud as a string, exp at most 4 minutes
// ahead, and talk https only.
func TestH8SMARTAssertionAndConfigRules(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	c := SMARTConfig{TokenURL: "https://epr.example/token", ClientID: "c", Key: key, KeyID: "k1", Scopes: []string{"system/DocumentReference.c"}}
	a, err := c.assertion()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(a, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if _, ok := claims["aud"].(string); !ok {
		t.Errorf("aud = %#v, want a string", claims["aud"])
	}
	exp, _ := claims["exp"].(float64)
	iat, _ := claims["iat"].(float64)
	if exp-iat > 240 || exp <= iat {
		t.Errorf("exp - iat = %v s, want (0, 240]", exp-iat)
	}

	bad := map[string]SMARTConfig{
		"no kid":                {TokenURL: "https://epr.example/token", ClientID: "c", Key: key, Scopes: []string{"system/DocumentReference.c"}},
		"no scopes":             {TokenURL: "https://epr.example/token", ClientID: "c", Key: key, KeyID: "k1"},
		"v1 scope name":         {TokenURL: "https://epr.example/token", ClientID: "c", Key: key, KeyID: "k1", Scopes: []string{"system/*.*"}},
		"http token URL":        {TokenURL: "http://epr.example/token", ClientID: "c", Key: key, KeyID: "k1", Scopes: []string{"system/DocumentReference.c"}},
		"token URL on loopback": {TokenURL: "http://127.0.0.1:9/token", ClientID: "c", Key: key, KeyID: "k1", Scopes: []string{"system/DocumentReference.c"}},
	}
	for name, sc := range bad {
		sc := sc
		if _, err := NewServerSink(ServerConfig{BaseURL: "https://epr.example/fhir", Config: Config{IdentifierSystem: testSystem}, SMART: &sc}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	good := c
	if _, err := NewServerSink(ServerConfig{BaseURL: "http://epr.example/fhir", Config: Config{IdentifierSystem: testSystem}, SMART: &good}); err == nil {
		t.Errorf("SMART with an http FHIR base URL: accepted")
	}
	if _, err := NewServerSink(ServerConfig{BaseURL: "https://epr.example/fhir", Config: Config{IdentifierSystem: testSystem}, SMART: &good}); err != nil {
		t.Errorf("a good SMART configuration was refused: %v", err)
	}
}

// writeCapability answers /metadata with a CapabilityStatement that does or does not
// declare conditional create for DocumentReference.
func writeCapability(w http.ResponseWriter, conditionalCreate bool) {
	w.Header().Set("Content-Type", "application/fhir+json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
		"format": []string{"json"},
		"rest": []any{map[string]any{"mode": "server", "resource": []any{map[string]any{
			"type": "DocumentReference", "conditionalCreate": conditionalCreate,
		}}}},
	})
}
