// Package meshtest runs NHS England's MESH sandbox (PyPI mesh-sandbox, pinned in
// scripts/python-requirements.txt, run through scripts/pyenv) on 127.0.0.1 for tests, and
// plays the receiving GP practice system over the real MESH API. Only tests import it.
package meshtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"scribe/internal/mesh"
)

// The sandbox's own mailboxes (its store/data/mailboxes.jsonl) and the shared key the
// tests give it.
const (
	SharedKey       = "scribe-test-shared-key"
	Password        = "password"
	ScribeMailbox   = "X26ABC1" // the sender: a PCN hub running scribe
	PracticeMailbox = "X26ABC2" // the patient's registered practice
)

// Sandbox is a running MESH sandbox with a file store, so that it can be restarted with
// its messages intact.
type Sandbox struct {
	URL  string
	port int
	dir  string
	t    testing.TB

	mu  sync.Mutex
	cmd *exec.Cmd
	log bytes.Buffer
}

var ensure struct {
	sync.Once
	err error
}

func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// Start installs the sandbox if needed (scripts/pyenv ensure: the pinned PyPI packages,
// cached outside the repository) and starts it on a free loopback port; it is stopped
// when the test ends. Without PyPI the test fails with one line saying so.
func Start(t testing.TB) *Sandbox {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ensure.Do(func() {
		out, err := exec.Command(filepath.Join(root, "scripts", "pyenv"), "ensure").CombinedOutput()
		if err != nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			ensure.err = fmt.Errorf("MESH sandbox not installed: %s", lines[len(lines)-1])
		}
	})
	if ensure.err != nil {
		t.Fatal(ensure.err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Sandbox{URL: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, dir: t.TempDir(), t: t}
	t.Cleanup(s.Stop)
	s.Restart()
	return s
}

// Restart starts the sandbox (again, after Stop) on the same port and file store.
func (s *Sandbox) Restart() {
	s.t.Helper()
	root, _ := repoRoot()
	s.mu.Lock()
	cmd := exec.Command(filepath.Join(root, "scripts", "pyenv"), "run", "python", filepath.Join(root, "scripts", "mesh-sandbox"), fmt.Sprint(s.port))
	cmd.Env = append(os.Environ(), "AUTH_MODE=full", "STORE_MODE=file", "MAILBOXES_DATA_DIR="+s.dir, "SHARED_KEY="+SharedKey)
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start the MESH sandbox: %v", err)
	}
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("the MESH sandbox did not answer within 60 s: %s", s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the sandbox (the whole process group) and waits for it: an outage.
func (s *Sandbox) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Log is what the sandbox printed.
func (s *Sandbox) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Client is a MESH API client for one of the sandbox's mailboxes.
func (s *Sandbox) Client(t testing.TB, mailbox, baseURL string) *mesh.Client {
	t.Helper()
	if baseURL == "" {
		baseURL = s.URL
	}
	c, err := mesh.NewClient(mesh.ClientConfig{URL: baseURL, Mailbox: mailbox, Password: Password, SharedKey: SharedKey, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Report puts a MESH non-delivery report about messageID into mailbox's inbox, as MESH
// does when a message expires undelivered.
func (s *Sandbox) Report(t testing.TB, mailbox, messageID, localID string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"mailbox_id": mailbox, "code": "14", "description": "Message not collected by recipient after 5 days",
		"workflow_id": mesh.WorkflowConsultReport, "local_id": localID, "status": "error", "linked_message_id": messageID})
	resp, err := http.Post(s.URL+"/messageexchange/admin/report", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sandbox report: HTTP %d", resp.StatusCode)
	}
}

// Practice plays the receiving GP practice system: it collects Send Document messages
// from its mailbox and answers them with ITK3 responses.
type Practice struct {
	Client *mesh.Client
}

// Received is a Send Document message as the practice reads it.
type Received struct {
	MeshID     string
	From       string
	LocalID    string
	WorkflowID string
	BundleID   string
	Event      string
	Handling   map[string]any // ITK3 handling specification keys
	Document   map[string]any // the STU3 DocumentReference
	NHSNumber  string
	PDF        []byte
}

// Collect downloads, reads and acknowledges every message in the practice's inbox.
func (p *Practice) Collect(ctx context.Context) ([]Received, error) {
	ids, err := p.Client.Inbox(ctx)
	if err != nil {
		return nil, err
	}
	var out []Received
	for _, id := range ids {
		m, err := p.Client.Download(ctx, id)
		if err != nil {
			return out, err
		}
		r := Received{MeshID: id, From: m.From, LocalID: m.LocalID, WorkflowID: m.WorkflowID, Handling: map[string]any{}}
		var bundle struct {
			ID    string `json:"id"`
			Entry []struct {
				Resource map[string]any `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(m.Body, &bundle); err != nil {
			return out, fmt.Errorf("message %s is not JSON: %w", id, err)
		}
		r.BundleID = bundle.ID
		for _, e := range bundle.Entry {
			res := e.Resource
			switch res["resourceType"] {
			case "MessageHeader":
				ev, _ := res["event"].(map[string]any)
				r.Event, _ = ev["code"].(string)
				for _, x := range res["extension"].([]any) {
					for _, k := range x.(map[string]any)["extension"].([]any) {
						km := k.(map[string]any)
						for f, v := range km {
							if strings.HasPrefix(f, "value") {
								r.Handling[km["url"].(string)] = v
							}
						}
					}
				}
			case "DocumentReference":
				r.Document = res
			case "Binary":
				s, _ := res["content"].(string)
				r.PDF, _ = base64.StdEncoding.DecodeString(s)
			case "Patient":
				ids, _ := res["identifier"].([]any)
				if len(ids) > 0 {
					r.NHSNumber, _ = ids[0].(map[string]any)["value"].(string)
				}
			}
		}
		if err := p.Client.Acknowledge(ctx, id); err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Respond sends an ITK3 response to a received message: code is ok, transient-error or
// fatal-error; itkCode an ITK3 response code (20013 infrastructure ack, 30001 business
// ack, 30002 business refusal, 20008 duplicate document, …).
func (p *Practice) Respond(ctx context.Context, r Received, code, itkCode, diagnostics string) error {
	if r.From == "" {
		return errors.New("no sender to answer")
	}
	severity := "information"
	if code != "ok" {
		severity = "error"
	}
	hdr := uuid.NewString()
	bundle := map[string]any{
		"resourceType": "Bundle", "id": uuid.NewString(), "type": "message",
		"entry": []any{
			map[string]any{"fullUrl": "urn:uuid:" + hdr, "resource": map[string]any{
				"resourceType": "MessageHeader", "id": hdr,
				"event":     map[string]any{"system": "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2", "code": mesh.EventResponse, "display": "ITK Response"},
				"response":  map[string]any{"identifier": r.BundleID, "code": code},
				"timestamp": time.Now().UTC().Format(time.RFC3339),
				"source":    map[string]any{"endpoint": PracticeMailbox},
			}},
			map[string]any{"fullUrl": "urn:uuid:" + uuid.NewString(), "resource": map[string]any{
				"resourceType": "OperationOutcome",
				"issue": []any{map[string]any{"severity": severity, "code": "informational",
					"details":     map[string]any{"coding": []any{map[string]any{"system": "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1", "code": itkCode}}},
					"diagnostics": diagnostics}},
			}},
		},
	}
	b, _ := json.Marshal(bundle)
	_, err := p.Client.Send(ctx, mesh.Message{To: r.From, WorkflowID: mesh.WorkflowConsultReportAck, LocalID: "ack-" + uuid.NewString(),
		Subject: "ITK response", FileName: "response.json", ContentType: "application/fhir+json", Body: b})
	return err
}
