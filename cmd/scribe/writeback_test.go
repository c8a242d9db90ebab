package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"scribe/internal/config"
	"scribe/internal/fhir/fhirtest"
	"scribe/internal/store"
)

// apiClient is a logged-in user of a running scribe server.
type apiClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

// newAPIClient logs user in at the server at base (its printed URL).
func newAPIClient(t *testing.T, base, user, password string) *apiClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	a := &apiClient{t: t, base: strings.TrimSuffix(base, "/"), c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	if st := a.call("POST", "/api/login", map[string]string{"username": user, "password": password}, nil); st != 200 {
		t.Fatalf("login as %s: %d", user, st)
	}
	return a
}

func (a *apiClient) call(method, path string, body, out any) int {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", a.base)
	// The CSRF token is double-submitted: read from its cookie, sent in a header.
	if u, err := url.Parse(a.base); err == nil {
		for _, c := range a.c.Jar.Cookies(u) {
			if c.Name == "__Host-scribe_csrf" {
				req.Header.Set("X-CSRF-Token", c.Value)
			}
		}
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		json.Unmarshal(data, out)
	}
	return resp.StatusCode
}

// startServe runs `scribe serve` in-process with the given config file and returns its
// URL and the output it printed; the server stops when the test ends.
func startServe(t *testing.T, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	var errb bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer pw.Close()
		run(ctx, append([]string{"serve"}, args...), pw, &errb)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	found := make(chan [2]string, 1)
	go func() {
		var acc []byte
		b := make([]byte, 4096)
		for {
			n, err := pr.Read(b)
			acc = append(acc, b[:n]...)
			if m := regexp.MustCompile(`running at (https://\S+)`).FindSubmatch(acc); m != nil {
				found <- [2]string{string(m[1]), string(acc)}
				io.Copy(io.Discard, pr)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case f := <-found:
		return f[0], f[1]
	case <-time.After(90 * time.Second):
		t.Fatalf("server did not start; stderr: %s", errb.String())
	}
	return "", ""
}

// writeDemoFHIRConfig writes dir/scribe.yaml for `serve --demo` on jfk.wav, data in
// dir/data, writing approved notes back to the FHIR base fhirURL; eprExtra is added to
// the epr block (", key: value" or "").
func writeDemoFHIRConfig(t *testing.T, dir, model, vad, fhirURL, eprExtra string) string {
	t.Helper()
	cfgPath := filepath.Join(dir, "scribe.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`data_dir: %s
listen: 127.0.0.1:0
models: {whisper: %s, vad: %s, workers: 1, threads: 2}
transcription: {temperature_inc: 0}
demo: {wavs: [%s]}
epr: {sink: fhir, fhir_base_url: %s, practice_ods: A81001, identifier_system: "https://gp.example/Id/scribe-document"%s}
`, filepath.Join(dir, "data"), model, vad, filepath.Join(config.SharedDir(), "audio", "jfk.wav"), fhirURL, eprExtra)), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// demoSession is a session as GET /api/sessions/{id} shows it to these tests.
type demoSession struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	DocumentID   string `json:"document_id"`
	DocumentText string `json:"document_text"`
	Delivery     string `json:"delivery_state"`
	Reason       string `json:"delivery_reason"`
}

// approveDemoSession records the first demo room for the patient nhs until the session
// stops (by deadline), types text into its first segment and approves it, as the demo
// user a. It returns the session and a function that re-reads it from the API.
func approveDemoSession(t *testing.T, a *apiClient, nhs, text string, deadline time.Time) (*demoSession, func()) {
	t.Helper()
	var rooms []struct {
		ID int64 `json:"id"`
	}
	a.call("GET", "/api/rooms", nil, &rooms)
	if len(rooms) == 0 {
		t.Fatal("no demo room")
	}
	sess := &demoSession{}
	if st := a.call("POST", fmt.Sprintf("/api/rooms/%d/sessions", rooms[0].ID), map[string]any{"consent": true, "nhs_number": nhs}, sess); st != 201 {
		t.Fatalf("start: %d", st)
	}
	var segs []struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
	}
	get := func() {
		var v struct {
			Session  *json.RawMessage `json:"session"`
			Segments *json.RawMessage `json:"segments"`
		}
		a.call("GET", "/api/sessions/"+sess.ID, nil, &v)
		if v.Session != nil {
			json.Unmarshal(*v.Session, sess)
		}
		if v.Segments != nil {
			json.Unmarshal(*v.Segments, &segs)
		}
	}
	for get(); sess.State != "stopped"; get() {
		if time.Now().After(deadline) {
			t.Fatalf("session still %s", sess.State)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	if st := a.call("PATCH", "/api/sessions/"+sess.ID+"/segments/"+segs[0].ID, map[string]any{"version": segs[0].Version, "text": text}, nil); st != 200 {
		t.Fatalf("edit: %d", st)
	}
	// The weightless test model may leave lines without text: the clinician keeps each
	// as a marker in the note (the pre-approval check).
	var check struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if st := a.call("GET", "/api/sessions/"+sess.ID+"/approval-check", nil, &check); st != 200 {
		t.Fatalf("approval check: %d", st)
	}
	confirm := []string{}
	for _, it := range check.Items {
		confirm = append(confirm, it.ID)
	}
	if st := a.call("POST", "/api/sessions/"+sess.ID+"/approve", map[string]any{"reviewed": true, "confirm": confirm}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	return sess, get
}

// An approved demo session reaches a real FHIR server (Medplum's engine) as a valid
// DocumentReference, found by identifier and by patient, with the approved text, hash
// and size: the whole path from the room's audio to the record.
func TestApprovedSessionReachesFHIRServer(t *testing.T) {
	model, vad := testModels(t)
	fs := fhirtest.Start(t)
	nhs := fhirtest.NewNHSNumber() // not on the EPR yet: the first delivery must be held

	dir := t.TempDir()
	cfgPath := writeDemoFHIRConfig(t, dir, model, vad, fs.BaseURL, ", lookup_patient: true")
	base, out := startServe(t, "--demo", "--config", cfgPath)
	pw := regexp.MustCompile(`password "([^"]+)"`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("no demo password in %q", out)
	}
	a := newAPIClient(t, base, "demo", pw[1])
	deadline := time.Now().Add(2 * time.Minute)
	// The test model decodes no words: the clinician types what was said, as they would
	// for any segment flagged untranscribed.
	sess, get := approveDemoSession(t, a, nhs, "And so my fellow Americans, ask not what your country can do for you.", deadline)
	waitDelivery := func(want string) {
		t.Helper()
		for get(); sess.Delivery != want; get() {
			if time.Now().After(deadline) || (sess.Delivery != "queued" && sess.Delivery != "sending" && sess.Delivery != "") {
				t.Fatalf("delivery %q (%s), want %s", sess.Delivery, sess.Reason, want)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	waitDelivery("held")
	if !regexp.MustCompile(`(?i)no patient`).MatchString(sess.Reason) {
		t.Errorf("held reason %q does not say the patient is unknown", sess.Reason)
	}
	if n := len(fs.Search(t, "DocumentReference", url.Values{"identifier": {"https://gp.example/Id/scribe-document|" + sess.DocumentID}})); n != 0 {
		t.Fatalf("a held note reached the EPR (%d copies)", n)
	}

	metric := func(name string) string {
		resp, err := a.c.Get(a.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("/metrics has no %s", name)
		}
		return string(m[1])
	}
	if got := metric("scribe_outbox_backlog"); got != "1" {
		t.Errorf("outbox backlog %s with one held note", got)
	}
	if got := metric("scribe_outbox_failures_total"); got != "1" {
		t.Errorf("outbox failures %s after one held attempt", got)
	}

	// The practice registers the patient on the EPR; an admin retries the held note.
	patient := fs.SeedPatient(t, nhs, "Testpatient")
	st, err := store.Open(context.Background(), filepath.Join(dir, "data", "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.CreateUser(context.Background(), store.NewUser{Username: "itadmin", DisplayName: "IT", Role: store.RoleAdmin, Password: "a long admin password"})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	admin := newAPIClient(t, base, "itadmin", "a long admin password")
	var held []struct {
		ID        int64  `json:"id"`
		SessionID string `json:"session_id"`
	}
	admin.call("GET", "/api/deliveries?state=held", nil, &held)
	if len(held) != 1 || held[0].SessionID != sess.ID {
		t.Fatalf("held deliveries %+v", held)
	}
	if st := admin.call("POST", fmt.Sprintf("/api/deliveries/%d/retry", held[0].ID), nil, nil); st != 200 {
		t.Fatalf("retry: %d", st)
	}
	waitDelivery("sent")
	if got := metric("scribe_outbox_backlog"); got != "0" {
		t.Errorf("outbox backlog %s after delivery", got)
	}
	if sess.DocumentText == "" {
		t.Fatal("approved session has no document text")
	}
	// The audit trail has each attempt and its result, in order: held, then sent on retry.
	if st, err = store.Open(context.Background(), filepath.Join(dir, "data", "scribe.db")); err != nil {
		t.Fatal(err)
	}
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{SessionID: sess.ID})
	st.Close()
	var trail []string
	for _, e := range es {
		var d struct{ Outcome string }
		json.Unmarshal(e.Details, &d)
		if e.Action == "writeback_attempt" || e.Action == "writeback_result" {
			trail = append(trail, strings.TrimSuffix(e.Action+" "+d.Outcome, " "))
			if strings.Contains(string(e.Details), nhs) || !strings.Contains(string(e.Details), sess.DocumentID) {
				t.Errorf("%s details %s: want the document id and no NHS number", e.Action, e.Details)
			}
		}
	}
	if want := "writeback_attempt,writeback_result held,writeback_attempt,writeback_result sent"; err != nil || strings.Join(trail, ",") != want {
		t.Errorf("write-back audit trail %q (%v), want %q", trail, err, want)
	}

	byID := fs.Search(t, "DocumentReference", url.Values{"identifier": {"https://gp.example/Id/scribe-document|" + sess.DocumentID}})
	byPatient := fs.Search(t, "DocumentReference", url.Values{"patient": {"Patient/" + patient}})
	if len(byID) != 1 || len(byPatient) != 1 {
		t.Fatalf("found %d by identifier, %d by patient; want exactly 1 each", len(byID), len(byPatient))
	}
	var doc struct {
		Status    string                     `json:"status"`
		DocStatus string                     `json:"docStatus"`
		Subject   struct{ Reference string } `json:"subject"`
		Content   []struct {
			Attachment struct {
				ContentType, Language, Data, Hash string
				Size                              int
			} `json:"attachment"`
		} `json:"content"`
	}
	if err := json.Unmarshal(byID[0], &doc); err != nil {
		t.Fatal(err)
	}
	att := doc.Content[0].Attachment
	raw, _ := base64.StdEncoding.DecodeString(att.Data)
	sum := sha1.Sum(raw)
	switch {
	case doc.Status != "current" || doc.DocStatus != "final":
		t.Errorf("status %s/%s", doc.Status, doc.DocStatus)
	case doc.Subject.Reference != "Patient/"+patient:
		t.Errorf("subject %q, want Patient/%s", doc.Subject.Reference, patient)
	case string(raw) != sess.DocumentText:
		t.Errorf("attachment text %q differs from the approved text %q", raw, sess.DocumentText)
	case att.Size != len(raw) || att.Hash != base64.StdEncoding.EncodeToString(sum[:]):
		t.Errorf("size %d / hash %s do not match the %d bytes", att.Size, att.Hash, len(raw))
	case att.ContentType != "text/plain; charset=utf-8" || att.Language != "en-GB":
		t.Errorf("attachment %s %s", att.ContentType, att.Language)
	}
}
