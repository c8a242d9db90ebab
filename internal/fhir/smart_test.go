package fhir

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// tokenEndpoint is a SMART Backend Services authorisation server for tests: it verifies
// each client assertion as a real one must, and issues tokens with a chosen lifetime.
type tokenEndpoint struct {
	t         *testing.T
	pub       crypto.PublicKey
	alg       string
	clientID  string
	url       string
	expiresIn int

	mu      sync.Mutex
	issued  []string
	jtis    map[string]bool
	refused string // when set, every request fails with this OAuth error
}

func (te *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(format string, args ...any) {
		te.t.Errorf("token endpoint: "+format, args...)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprint(w, `{"error":"invalid_client"}`)
	}
	if te.refused != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, `{"error":%q}`, te.refused)
		return
	}
	if err := r.ParseForm(); err != nil {
		fail("form: %v", err)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		fail("grant_type = %q", g)
		return
	}
	if a := r.PostForm.Get("client_assertion_type"); a != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		fail("client_assertion_type = %q", a)
		return
	}
	if s := r.PostForm.Get("scope"); s != "system/DocumentReference.c system/Patient.rs" {
		fail("scope = %q", s)
		return
	}
	var claims jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(r.PostForm.Get("client_assertion"), &claims,
		func(*jwt.Token) (any, error) { return te.pub, nil },
		jwt.WithValidMethods([]string{te.alg}),
		jwt.WithAudience(te.url),
		jwt.WithIssuer(te.clientID),
		jwt.WithSubject(te.clientID),
		jwt.WithExpirationRequired(),
	)
	if err != nil {
		fail("assertion: %v", err)
		return
	}
	if kid := tok.Header["kid"]; kid != "key-1" {
		fail("kid = %v", kid)
	}
	if claims.IssuedAt == nil {
		fail("assertion without iat")
		return
	}
	if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life > AssertionLifetime || life <= 0 {
		fail("assertion lifetime %v, want (0, %v]", life, AssertionLifetime)
	}
	te.mu.Lock()
	defer te.mu.Unlock()
	if claims.ID == "" || te.jtis[claims.ID] {
		fail("jti %q missing or reused", claims.ID)
		return
	}
	te.jtis[claims.ID] = true
	access := fmt.Sprintf("token-%d", len(te.issued)+1)
	te.issued = append(te.issued, access)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "bearer", "expires_in": te.expiresIn, "scope": r.PostForm.Get("scope")})
}

func TestSMARTBackendServices(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg  string
		key  crypto.Signer
		pub  crypto.PublicKey
		life int
		// wantTokens is how many tokens the CapabilityStatement read and three deliveries
		// need: one while the token is valid, one per request when each expires within
		// the ten-second early-refresh margin.
		wantTokens int
	}{
		{"RS384", rsaKey, &rsaKey.PublicKey, 300, 1},
		{"ES384", ecKey, &ecKey.PublicKey, 300, 1},
		{"ES384", ecKey, &ecKey.PublicKey, 5, 4},
	} {
		t.Run(fmt.Sprintf("%s_expires_%ds", tc.alg, tc.life), func(t *testing.T) {
			te := &tokenEndpoint{t: t, pub: tc.pub, alg: tc.alg, clientID: "scribe-gp-a81001", expiresIn: tc.life, jtis: map[string]bool{}}
			mux := http.NewServeMux()
			mux.Handle("/token", te)
			var mu sync.Mutex
			var seen []string
			mux.HandleFunc("/fhir/DocumentReference", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = append(seen, r.Header.Get("Authorization"))
				mu.Unlock()
				w.WriteHeader(http.StatusCreated)
				_, _ = fmt.Fprint(w, `{"resourceType":"DocumentReference","id":"d1"}`)
			})
			mux.HandleFunc("/fhir/metadata", func(w http.ResponseWriter, r *http.Request) { writeCapability(w, true) })
			ts := httptest.NewTLSServer(mux)
			defer ts.Close()
			te.url = ts.URL + "/token"

			s, err := NewServerSink(ServerConfig{BaseURL: ts.URL + "/fhir", Config: Config{IdentifierSystem: testSystem}, Transport: ts.Client().Transport, SMART: &SMARTConfig{
				TokenURL: te.url, ClientID: te.clientID, Key: tc.key, KeyID: "key-1",
				Scopes: []string{"system/DocumentReference.c", "system/Patient.rs"},
			}})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if _, err := s.Deliver(context.Background(), testNote()); err != nil {
					t.Fatalf("delivery %d: %v", i, err)
				}
			}
			te.mu.Lock()
			issued := append([]string(nil), te.issued...)
			te.mu.Unlock()
			if len(issued) != tc.wantTokens {
				t.Errorf("token endpoint issued %d tokens for 3 deliveries, want %d", len(issued), tc.wantTokens)
			}
			for i, h := range seen {
				want := "Bearer " + issued[max(0, i+len(issued)-len(seen))]
				if h != want {
					t.Errorf("delivery %d Authorization = %q, want %q", i, h, want)
				}
			}
		})
	}
}

func TestSMARTRefusedCredentialsAreHeld(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	te := &tokenEndpoint{t: t, refused: "invalid_client", jtis: map[string]bool{}}
	ts := httptest.NewTLSServer(te)
	defer ts.Close()
	s, err := NewServerSink(ServerConfig{BaseURL: ts.URL + "/fhir", Config: Config{IdentifierSystem: testSystem}, Transport: ts.Client().Transport,
		SMART: &SMARTConfig{TokenURL: ts.URL + "/token", ClientID: "c", Key: key, KeyID: "k", Scopes: []string{"system/DocumentReference.c"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Deliver(context.Background(), testNote())
	if !IsPermanent(err) || !strings.Contains(Reason(err), "refused scribe's credentials") {
		t.Errorf("err = %v, want permanent credentials error", err)
	}
}

func TestSMARTRejectsUnsupportedKeys(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, k := range []crypto.Signer{nil, p256} {
		if err := (SMARTConfig{TokenURL: "https://x/token", ClientID: "c", Key: k, KeyID: "k", Scopes: []string{"system/DocumentReference.c"}}).check(); err == nil {
			t.Errorf("key %T accepted", k)
		}
	}
}
