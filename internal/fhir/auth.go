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
	"net/http"
	"net/url"
	"os"
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
	// KeyID is sent as the JWT "kid" header so the server can pick the key from our JWKS.
	KeyID  string
	Scopes []string
	// Now is the clock for assertion times (default time.Now).
	Now func() time.Time
}

// AssertionLifetime is how long a client assertion is valid; SMART caps it at five minutes.
const AssertionLifetime = 5 * time.Minute

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
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	t := now()
	claims := jwt.RegisteredClaims{
		Issuer:    c.ClientID,
		Subject:   c.ClientID,
		Audience:  jwt.ClaimStrings{c.TokenURL},
		IssuedAt:  jwt.NewNumericDate(t),
		ExpiresAt: jwt.NewNumericDate(t.Add(AssertionLifetime)),
		ID:        uuid.NewString(),
	}
	tok := jwt.NewWithClaims(method, claims)
	if c.KeyID != "" {
		tok.Header["kid"] = c.KeyID
	}
	s, err := tok.SignedString(c.Key)
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return s, nil
}

// assertionTokenSource fetches a new access token with a freshly signed assertion. It is
// wrapped in oauth2.ReuseTokenSource, which caches the token until shortly before expiry.
type assertionTokenSource struct {
	cfg    SMARTConfig
	client *http.Client
}

func (s assertionTokenSource) Token() (*oauth2.Token, error) {
	a, err := s.cfg.assertion()
	if err != nil {
		return nil, err
	}
	cc := clientcredentials.Config{
		ClientID: s.cfg.ClientID,
		TokenURL: s.cfg.TokenURL,
		Scopes:   s.cfg.Scopes,
		EndpointParams: url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {a},
		},
		AuthStyle: oauth2.AuthStyleInParams,
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.client)
	tok, err := cc.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("SMART token request: %w", err)
	}
	return tok, nil
}

// TokenSource returns a caching token source that uses client for the token endpoint.
func (c SMARTConfig) TokenSource(client *http.Client) (oauth2.TokenSource, error) {
	if _, err := c.signingMethod(); err != nil {
		return nil, err
	}
	if c.TokenURL == "" || c.ClientID == "" {
		return nil, fmt.Errorf("SMART backend services needs a token URL and a client id")
	}
	return oauth2.ReuseTokenSource(nil, assertionTokenSource{cfg: c, client: client}), nil
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
