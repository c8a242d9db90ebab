package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"scribe/internal/pdf/pdftext"
	"scribe/internal/store"
)

// Copy to record (issue #15), as a GP uses it: on the approved session, "Copy to record"
// puts the note on the clipboard formatted for a GP system's free-text entry (speaker
// lines, the approval line), and the PDF link gives the same note as a PDF whose text
// pdftotext extracts. In headless Chromium against the real server.
func TestBrowserCopyToRecordAndPDF(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (present in the sid root where `make test` runs)", chromiumPath)
	}
	e := newEnv(t, nil)
	a, err := e.srv.Store().CreateUser(context.Background(), store.NewUser{Username: "patel", DisplayName: "Dr A Patel",
		Role: store.RoleClinician, Password: testPassword, GMCNumber: "7654321"})
	if err != nil {
		t.Fatal(err)
	}
	room := e.room("Room 4", store.SourceWAV, map[string]string{"path": writeTone(t, e.dir, 300, 2.5)}, a.ID)
	c := e.login("patel")
	var s sessionView
	if st := c.do("POST", "/api/rooms/"+itoa(room.ID)+"/sessions", map[string]any{"consent": true, "nhs_number": "943 476 5919"}, &s); st != 201 {
		t.Fatalf("start: %d", st)
	}
	waitFor(t, 30*time.Second, "the session to stop", func() bool { v, _ := c.session(s.ID); return v.State == store.StateStopped })
	if st := c.do("POST", "/api/sessions/"+s.ID+"/approve", map[string]any{"reviewed": true}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	want := []string{
		"Consultation transcript",
		"NHS number: 943 476 5919",
		"Room: Room 4",
		"[00:00:00] Clinician: segment 0 (clinician) tone 300 Hz",
		"[00:00:01] Patient: segment 1 (patient) tone 300 Hz",
		"Reviewed and approved by Dr A Patel (GMC 7654321) on ",
		"Transcription only",
	}

	bctx := startChromium(t, nil)
	defer screenshotOnFailure(t, bctx)
	browserStep(t, bctx, 30*time.Second, "log in",
		chromedp.Navigate(e.ts.URL),
		chromedp.WaitVisible(`#username`, chromedp.ByQuery),
		chromedp.SendKeys(`#username`, "patel", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, testPassword, chromedp.ByQuery),
		chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`li[data-room="Room 4"]`, chromedp.ByQuery),
	)
	browserStep(t, bctx, 30*time.Second, "open the approved session",
		browser.GrantPermissions([]browser.PermissionType{browser.PermissionTypeClipboardReadWrite, browser.PermissionTypeClipboardSanitizedWrite}).WithOrigin(e.ts.URL),
		chromedp.Navigate(e.ts.URL+"/#/session/"+s.ID),
		chromedp.WaitVisible(`#approved`, chromedp.ByQuery),
		chromedp.WaitVisible(`#btn-copy-record`, chromedp.ByQuery),
	)
	browserStep(t, bctx, 10*time.Second, "copy to record", chromedp.Click(`#btn-copy-record`, chromedp.ByQuery))
	waitBrowserJS(t, bctx, 10*time.Second, "the copied message", `document.getElementById('copy-status').textContent.startsWith('Copied')`)
	if dir := os.Getenv("SCRIBE_TEST_SCREENSHOTS"); dir != "" { // to look at the UI
		var png []byte
		if chromedp.Run(bctx, chromedp.FullScreenshot(&png, 100)) == nil {
			_ = os.WriteFile(filepath.Join(dir, t.Name()+".png"), png, 0o644)
		}
	}
	awaitPromise := func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }
	var clip string
	browserStep(t, bctx, 10*time.Second, "read the clipboard", chromedp.Evaluate(`navigator.clipboard.readText()`, &clip, awaitPromise))
	for _, w := range want {
		if !strings.Contains(clip, w) {
			t.Errorf("clipboard lacks %q:\n%s", w, clip)
		}
	}
	resp, err := c.http.Get(e.ts.URL + "/api/sessions/" + s.ID + "/record.txt")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if clip != string(served) {
		t.Errorf("the clipboard differs from record.txt:\n%q\n%q", clip, served)
	}

	var b64 string
	browserStep(t, bctx, 20*time.Second, "download the PDF", chromedp.Evaluate(`fetch(document.getElementById('link-record-pdf').href).then(r => {
		if (r.headers.get('Content-Type') !== 'application/pdf') throw new Error('not a PDF: ' + r.headers.get('Content-Type'));
		return r.arrayBuffer(); }).then(b => { let s = ''; for (const x of new Uint8Array(b)) s += String.fromCharCode(x); return btoa(s); })`, &b64, awaitPromise))
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || !bytes.HasPrefix(raw, []byte("%PDF-")) {
		t.Fatalf("PDF link gave %d bytes (%v)", len(raw), err)
	}
	text := pdftext.Words(pdftext.Extract(t, raw))
	for _, w := range want {
		if !strings.Contains(text, pdftext.Words(w)) {
			t.Errorf("PDF text lacks %q:\n%s", w, text)
		}
	}
}
