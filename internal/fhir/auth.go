package fhir

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// SMARTConfig configures SMART Backend Services authorisation: an OAuth 2.0
// client_credentials grant authenticated by a private_key_jwt client assertion.
type SMARTConfig struct {
	TokenURL string
	ClientID string
	// Key signs the assertion: an RSA key signs RS384, a P-384 ECDSA key ES384.
	Key crypto.Signer
	// KeyID is sent as the JWT "kid" header so the server can pick the key from our JWKS;
	// required.
	KeyID string
	// Scopes are SMART v2 system scopes, e.g. system/DocumentReference.c
	// system/Patient.rs; at least one is required.
	Scopes []string
	// Now is the clock for assertion times and token expiry (default time.Now).
	Now func() time.Time
}

// AssertionLifetime is how long a client assertion is valid: SMART caps it at five
// minutes; four leaves room for clock skew between scribe and the token endpoint.
const AssertionLifetime = 4 * time.Minute

// DefaultTokenLifetime bounds an access token whose response had no expires_in.
const DefaultTokenLifetime = 5 * time.Minute

// tokenEarlyRefresh renews a token this long before it expires.
const tokenEarlyRefresh = 10 * time.Second

// smartV2Scope is a SMART v2 system scope: a resource type (or *) and permissions from
// c, r, u, d, s in that order. v1 names (.read, .write, .*) are refused.
var smartV2Scope = regexp.MustCompile(`^system/(\*|[A-Z][A-Za-z]+)\.(c?r?u?d?s?)$`)

func (c SMARTConfig) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// check names the first setting a production SMART client cannot work (or must not work)
// without.
func (c SMARTConfig) check() error {
	if _, err := c.signingMethod(); err != nil {
		return err
	}
	if c.TokenURL == "" || c.ClientID == "" {
		return fmt.Errorf("SMART backend services needs a token URL and a client id")
	}
	if err := requireHTTPS("SMART token URL", c.TokenURL); err != nil {
		return err
	}
	if c.KeyID == "" {
		return fmt.Errorf("SMART backend services needs key_id: the \"kid\" of scribe's key in the JWKS registered with the EPR")
	}
	if len(c.Scopes) == 0 {
		return fmt.Errorf("SMART backend services needs scopes, e.g. system/DocumentReference.c system/Patient.rs")
	}
	for _, s := range c.Scopes {
		if m := smartV2Scope.FindStringSubmatch(s); m == nil || m[2] == "" {
			return fmt.Errorf("SMART scope %q is not a SMART v2 system scope (e.g. system/DocumentReference.c, system/Patient.rs)", s)
		}
	}
	return nil
}

// requireHTTPS refuses any URL that would carry credentials in the clear.
func requireHTTPS(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%s %q must be an https URL: credentials are never sent in the clear", what, raw)
	}
	return nil
}

func (c SMARTConfig) signingMethod() (jwt.SigningMethod, error) {
	switch k := c.Key.(type) {
	case *rsa.PrivateKey:
		return jwt.SigningMethodRS384, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("SMART backend key: ES384 needs a P-384 key, got %s", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES384, nil
	case nil:
		return nil, fmt.Errorf("SMART backend key is not set")
	default:
		return nil, fmt.Errorf("SMART backend key: unsupported key type %T (want RSA or P-384 ECDSA)", c.Key)
	}
}

// assertion mints a fresh signed client assertion; each carries a new jti, as servers
// reject replays.
func (c SMARTConfig) assertion() (string, error) {
	method, err := c.signingMethod()
	if err != nil {
		return "", err
	}
	t := c.now()
	// aud is a single string, as SMART servers expect (some refuse an array).
	tok := jwt.NewWithClaims(method, jwt.MapClaims{
		"iss": c.ClientID, "sub": c.ClientID, "aud": c.TokenURL,
		"iat": t.Unix(), "exp": t.Add(AssertionLifetime).Unix(), "jti": uuid.NewString(),
	})
	tok.Header["kid"] = c.KeyID
	s, err := tok.SignedString(c.Key)
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return s, nil
}

// tokenCache fetches access tokens with freshly signed assertions and keeps one until
// shortly before it expires, or until the FHIR server refuses it (evict).
type tokenCache struct {
	cfg    SMARTConfig
	client *http.Client

	mu      sync.Mutex
	tok     *oauth2.Token
	expires time.Time
}

func (tc *tokenCache) token(ctx context.Context) (*oauth2.Token, error) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.tok != nil && tc.cfg.now().Before(tc.expires.Add(-tokenEarlyRefresh)) {
		return tc.tok, nil
	}
	a, err := tc.cfg.assertion()
	if err != nil {
		return nil, err
	}
	cc := clientcredentials.Config{
		ClientID: tc.cfg.ClientID,
		TokenURL: tc.cfg.TokenURL,
		Scopes:   tc.cfg.Scopes,
		EndpointParams: url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {a},
		},
		AuthStyle: oauth2.AuthStyleInParams,
	}
	issued := tc.cfg.now()
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, tc.client))
	if err != nil {
		return nil, fmt.Errorf("SMART token request: %w", err)
	}
	// oauth2 computes Expiry from expires_in with the wall clock; take the lifetime from
	// it and apply it to our clock, bounded when the server gave none.
	life := DefaultTokenLifetime
	if !tok.Expiry.IsZero() {
		life = min(time.Until(tok.Expiry), 24*time.Hour)
	}
	tc.tok, tc.expires = tok, issued.Add(life)
	return tok, nil
}

// evict drops tok if it is still the cached token, so the next request fetches a new one.
func (tc *tokenCache) evict(tok *oauth2.Token) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.tok == tok {
		tc.tok = nil
	}
}

// smartTransport authorises each request with the cached token; on a 401 it evicts the
// token and tries once more with a fresh one (the EPR may have revoked it or restarted).
type smartTransport struct {
	cache *tokenCache
	base  http.RoundTripper
}

func (st smartTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := st.cache.token(r.Context())
	if err != nil {
		return nil, err
	}
	resp, err := st.base.RoundTrip(withBearer(r, tok.AccessToken))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if r.Body != nil && r.GetBody == nil {
		return resp, nil // cannot replay the body
	}
	st.cache.evict(tok)
	tok, err = st.cache.token(r.Context())
	if err != nil {
		return resp, nil // keep the 401: the credentials problem is reported as such
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	_ = resp.Body.Close()
	retry := r.Clone(r.Context())
	if r.GetBody != nil {
		if retry.Body, err = r.GetBody(); err != nil {
			return nil, err
		}
	}
	return st.base.RoundTrip(withBearer(retry, tok.AccessToken))
}

func withBearer(r *http.Request, token string) *http.Request {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// LoadPrivateKey reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) for SMART.
func LoadPrivateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("private key %s: no PEM block", path)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("private key %s: unsupported type %T", path, k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("private key %s: not PKCS#8, PKCS#1 or SEC1", path)
}

// MutualTLSConfig builds a client TLS configuration from PEM files: our certificate and
// key, and (optionally) the CA bundle that signed the server's certificate.
func MutualTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("CA bundle %s has no certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
