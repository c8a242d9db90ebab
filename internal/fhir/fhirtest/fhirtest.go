// Package fhirtest runs the repository's real FHIR test server (testdata/fhir-server:
// Medplum's FHIR router on Node, in memory) for tests. Only tests import it.
package fhirtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running FHIR test server.
type Server struct {
	// BaseURL is the FHIR base, http://127.0.0.1:PORT/fhir/R4.
	BaseURL string
	client  *http.Client
}

// Dir returns testdata/fhir-server, found by walking up from the working directory to the
// module root.
func Dir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "testdata", "fhir-server"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

var listeningLine = regexp.MustCompile(`^listening on (\d+)$`)

// Start launches a server of the test's own on a free port and stops it when the test
// ends. It skips the test, saying why, when node or the server's npm packages are missing
// (`make test` runs `npm ci` in testdata/fhir-server first).
func Start(t testing.TB) *Server {
	t.Helper()
	srv, stop, skip, err := launch()
	if skip != "" {
		t.Skip(skip)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return srv
}

var shared struct {
	sync.Mutex
	srv  *Server
	stop func()
	skip string
	err  error
	done bool
}

// Shared returns one server for the whole test binary, started on first use: each start
// costs seconds of definition loading. Tests sharing it must use their own identifiers
// and NHS numbers. A package using it stops it from TestMain with StopShared.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.done {
		shared.srv, shared.stop, shared.skip, shared.err = launch()
		shared.done = true
	}
	if shared.skip != "" {
		t.Skip(shared.skip)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// StopShared stops the shared server, if one was started.
func StopShared() {
	shared.Lock()
	defer shared.Unlock()
	if shared.stop != nil {
		shared.stop()
		shared.stop = nil
	}
}

// launch starts node server.js and waits for its "listening on PORT" line.
func launch() (srv *Server, stop func(), skip string, err error) {
	dir, err := Dir()
	if err != nil {
		return nil, nil, "", fmt.Errorf("fhirtest: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@medplum", "fhir-router")); err != nil {
		return nil, nil, fmt.Sprintf("fhirtest: FHIR test server not installed (run `npm ci` in %s; `make test` does it)", dir), nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, nil, "fhirtest: node is not installed; the real FHIR server tests need it", nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "server.js", "0")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, nil, "", fmt.Errorf("fhirtest: %w", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, "", fmt.Errorf("fhirtest: start node: %w", err)
	}
	stop = func() {
		cancel()
		_ = cmd.Wait()
	}
	portCh := make(chan string, 1)
	go func() {
		// Ends when the process's stdout closes, i.e. when stop kills it.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listeningLine.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
				portCh <- m[1]
				break
			}
		}
		close(portCh)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case port, ok := <-portCh:
		if !ok {
			stop()
			return nil, nil, "", fmt.Errorf("fhirtest: server exited before listening: %s", stderr.String())
		}
		return &Server{BaseURL: "http://127.0.0.1:" + port + "/fhir/R4", client: &http.Client{Timeout: 10 * time.Second}}, stop, "", nil
	case <-time.After(60 * time.Second):
		stop()
		return nil, nil, "", fmt.Errorf("fhirtest: server not listening after 60 s: %s", stderr.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// SeedPatient creates a Patient with this NHS number and returns its logical id.
func (s *Server) SeedPatient(t testing.TB, nhsNumber, family string) string {
	t.Helper()
	p := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhsNumber}},
		"name":         []any{map[string]any{"family": family, "given": []string{"Test"}}},
	}
	var out struct {
		ID string `json:"id"`
	}
	s.Do(t, http.MethodPost, "Patient", p, http.StatusCreated, &out)
	return out.ID
}

// Search runs a search and returns the matching resources as raw JSON.
func (s *Server) Search(t testing.TB, resourceType string, q url.Values) []json.RawMessage {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	s.Do(t, http.MethodGet, resourceType+"?"+q.Encode(), nil, http.StatusOK, &b)
	out := make([]json.RawMessage, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = e.Resource
	}
	return out
}

// Do sends a request relative to BaseURL, checks the status and decodes the reply into out.
func (s *Server) Do(t testing.TB, method, path string, body any, wantStatus int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("fhirtest: encode: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.BaseURL+"/"+path, rd)
	if err != nil {
		t.Fatalf("fhirtest: %v", err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("fhirtest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("fhirtest: %s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, wantStatus, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("fhirtest: decode %s %s: %v", method, path, err)
		}
	}
}

var nhsCounter struct {
	sync.Mutex
	next int
}

// NewNHSNumber returns a valid NHS number not handed out before in this process, from the
// 999 range NHS England reserves for testing, so tests sharing a server never collide.
func NewNHSNumber() string {
	nhsCounter.Lock()
	defer nhsCounter.Unlock()
	for {
		nhsCounter.next++
		stem := fmt.Sprintf("999%06d", (os.Getpid()*7919+nhsCounter.next)%1000000)
		sum := 0
		for i := 0; i < 9; i++ {
			sum += int(stem[i]-'0') * (10 - i)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check != 10 {
			return fmt.Sprintf("%s%d", stem, check)
		}
	}
}
