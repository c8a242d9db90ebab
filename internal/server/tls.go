package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"scribe/internal/store"
)

// serverTLSConfig is TLS 1.2 and 1.3 with forward-secret AEAD suites only: no CBC, no
// SHA-1 MACs, no static RSA key exchange (TLS 1.3's suites are all AEAD already).
func serverTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// loadOrCreateCert returns the configured certificate, or the self-signed one in
// DataDir/tls, generating it on first run.
func (s *Server) loadOrCreateCert() (tls.Certificate, error) {
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		c, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return c, fmt.Errorf("server: TLS certificate %s / key %s: %w", s.cfg.TLSCert, s.cfg.TLSKey, err)
		}
		return c, nil
	}
	dir := filepath.Join(s.cfg.DataDir, "tls")
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("server: generated TLS certificate in %s is unreadable (delete it to make a new one): %w", dir, err)
	}
	if err := GenerateSelfSigned(certPath, keyPath); err != nil {
		return tls.Certificate{}, err
	}
	s.log.Info("generated a self-signed TLS certificate", "cert", certPath)
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return c, fmt.Errorf("server: load generated certificate: %w", err)
	}
	return c, nil
}

// GenerateSelfSigned writes an ECDSA P-256 self-signed certificate for localhost,
// 127.0.0.1, ::1 and this machine's hostname.
func GenerateSelfSigned(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server: generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return fmt.Errorf("server: certificate serial: %w", err)
	}
	names := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "scribe (self-signed)", Organization: []string{"scribe"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("server: create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("server: encode TLS key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("server: write TLS key: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("server: write TLS certificate: %w", err)
	}
	return nil
}

// DemoUsername is the clinician account --demo creates.
const DemoUsername = "demo"

// setUpDemo makes one room per demo WAV, assigned to a demo clinician. The clinician's
// password is random and printed once, when the account is created: there is no default
// password even in demo mode.
func (s *Server) setUpDemo(ctx context.Context) error {
	if len(s.cfg.DemoWAVs) == 0 {
		return errors.New("server: demo mode needs at least one WAV file (config demo_wavs)")
	}
	// The demo clinician gets a fresh random password at every demo start, printed once:
	// there is no default password even in demo mode.
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("server: demo password: %w", err)
	}
	pw := base64.RawURLEncoding.EncodeToString(b)
	u, err := s.store.UserByName(ctx, DemoUsername)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// 9999999 is a placeholder GMC number so demo notes pass write-back validation.
		u, err = s.store.CreateUser(ctx, store.NewUser{Username: DemoUsername, DisplayName: "Dr Demo", Role: store.RoleClinician, Password: pw, GMCNumber: "9999999"})
	case err == nil:
		err = s.store.SetPassword(ctx, u.ID, pw)
	}
	if err != nil {
		return fmt.Errorf("server: demo clinician: %w", err)
	}
	fmt.Fprintf(s.deps.Stdout, "demo clinician: username %q, password %q (new at every demo start)\n", DemoUsername, pw)
	for i, path := range s.cfg.DemoWAVs {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("server: demo WAV: %w", err)
		}
		name := fmt.Sprintf("Demo room %d", i+1)
		if _, err := s.store.RoomByName(ctx, name); err == nil {
			continue
		}
		cfg, _ := json.Marshal(wavConfig{Path: path})
		if _, err := s.store.CreateRoom(ctx, store.NewRoom{Name: name, SourceKind: store.SourceWAV, SourceConfig: cfg, ClinicianID: u.ID}); err != nil {
			return fmt.Errorf("server: demo room: %w", err)
		}
	}
	return nil
}
