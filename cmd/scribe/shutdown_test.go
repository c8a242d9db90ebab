package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"scribe/internal/fhir/fhirtest"
	"scribe/internal/store"
)

// On SIGTERM, scribe serve gives queued notes a last delivery before it exits. The note
// here was approved while the EPR answered 503 "retry after an hour", so the outbox
// worker would not try it again for an hour; the EPR then recovers and the gateway is
// stopped. The note must be in the record (exactly once) when the process has exited,
// and the outbox must say sent, so the next start does not send it again.
func TestServeFlushesOutboxOnSIGTERM(t *testing.T) {
	model, vad := testModels(t)
	fs := fhirtest.Start(t)
	bin := scribeBinary(t)

	// The EPR's front door: while down, every request gets 503 with Retry-After.
	target, _ := url.Parse(fs.BaseURL)
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	var down atomic.Bool
	var refused atomic.Int32
	down.Store(true)
	epr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			refused.Add(1)
			w.Header().Set("Retry-After", "3600")
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer epr.Close()

	dir := t.TempDir()
	cfgPath := writeDemoFHIRConfig(t, dir, model, vad, epr.URL+target.Path, "")

	cmd := exec.Command(bin, "serve", "--demo", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "SCRIBE_DATA_KEY=", "CREDENTIALS_DIRECTORY=")
	out, _ := cmd.StdoutPipe()
	var stderr lockedBuilder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
		}
	}()
	started := make(chan [2]string, 1)
	go func() {
		var pw string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := regexp.MustCompile(`password "([^"]+)"`).FindStringSubmatch(sc.Text()); m != nil {
				pw = m[1]
			}
			if m := regexp.MustCompile(`running at (https://\S+)`).FindStringSubmatch(sc.Text()); m != nil {
				started <- [2]string{m[1], pw}
				break
			}
		}
		io.Copy(io.Discard, out)
		exited <- cmd.Wait()
	}()
	var base, password string
	select {
	case s := <-started:
		base, password = s[0], s[1]
	case err := <-exited:
		t.Fatalf("serve exited before starting (%v):\n%s", err, stderr.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("serve did not print its URL:\n%s", stderr.String())
	}

	a := newAPIClient(t, base, "demo", password)
	nhs := fhirtest.NewNHSNumber()
	fs.SeedPatient(t, nhs, "Testpatient")
	deadline := time.Now().Add(2 * time.Minute)
	sess, get := approveDemoSession(t, a, nhs, "Ask not what your country can do for you.", deadline)
	// The worker's first attempt meets the 503 and schedules the next one an hour away.
	for get(); !(sess.Delivery == "queued" && strings.Contains(sess.Reason, "will retry")); get() {
		if time.Now().After(deadline) || sess.Delivery == "sent" || sess.Delivery == "held" || sess.Delivery == "failed" {
			t.Fatalf("delivery %q (%s), want queued for a retry", sess.Delivery, sess.Reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if refused.Load() == 0 {
		t.Fatal("the EPR was never asked")
	}
	search := func() int {
		return len(fs.Search(t, "DocumentReference", url.Values{"identifier": {"https://gp.example/Id/scribe-document|" + sess.DocumentID}}))
	}
	if n := search(); n != 0 {
		t.Fatalf("%d copies in the record before the EPR came back", n)
	}

	down.Store(false) // the EPR is back; nothing is due for an hour
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within 60 s of SIGTERM:\n%s", stderr.String())
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "data", "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var state, reason string
	if err := st.DB().QueryRow(`SELECT state, reason FROM fhir_outbox WHERE session_id = ?`, sess.ID).Scan(&state, &reason); err != nil || state != "sent" {
		t.Errorf("outbox state after shutdown %q %q (%v), want sent", state, reason, err)
	}
	if n := search(); n != 1 {
		t.Fatalf("%d copies of the approved note in the record after shutdown, want 1\n%s", n, stderr.String())
	}
}

// lockedBuilder collects a child's stderr while the test reads it.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
