package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// browserFlow is the clinician's whole journey in a real browser. The lead runs the same
// flow against a server with the real transcriber, hence the generous, event-driven waits.
type browserFlow struct {
	URL      string // server base URL, e.g. https://localhost:8443/
	Username string
	Password string
	RoomName string
	// FirstCommit bounds the wait for the first committed segment (default 90 s).
	FirstCommit time.Duration
	// NewText is typed over the first segment's text.
	NewText string
}

// artifactDir is where a failing browser test leaves its screenshots.
func artifactDir() string {
	if d := os.Getenv("SCRIBE_TEST_ARTIFACTS"); d != "" {
		return d
	}
	return os.TempDir()
}

// startChromium starts headless Chromium with a fresh profile for the test and returns
// its context; it is shut down when the test ends. logf receives the browser's log (nil: dropped).
func startChromium(t *testing.T, logf func(string, ...any)) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (present in the sid root where `make test` runs): %v", chromiumPath, err)
	}
	// Chromium's helper processes may still write to their profile for a moment after the
	// browser exits, so the profile is removed by hand, tolerating that, not by t.TempDir.
	profile, err := os.MkdirTemp("", "scribe-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("ignore-certificate-errors", true), // the server's self-signed certificate
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	var copts []chromedp.ContextOption
	if logf != nil {
		copts = append(copts, chromedp.WithLogf(logf))
	}
	bctx, cancelBrowser := chromedp.NewContext(actx, copts...)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Run(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// screenshotOnFailure saves the page to artifactDir() when the test has failed; defer it
// right after startChromium, so it runs while the browser is still up.
func screenshotOnFailure(t *testing.T, bctx context.Context) {
	if !t.Failed() {
		return
	}
	var png []byte
	sctx, cancel := context.WithTimeout(bctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Run(sctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Logf("no failure screenshot: %v", err)
		return
	}
	name := filepath.Join(artifactDir(), fmt.Sprintf("scribe-browser-%s-%d.png", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().Unix()))
	if err := os.WriteFile(name, png, 0o644); err != nil {
		t.Logf("no failure screenshot: %v", err)
		return
	}
	t.Logf("failure screenshot: %s", name)
}

// browserStep runs actions in the browser (bctx, from startChromium) and fails the test,
// naming the step, if they fail or take longer than timeout.
func browserStep(t *testing.T, bctx context.Context, timeout time.Duration, name string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, timeout)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("browser step %q: %v", name, err)
	}
}

// waitBrowserJS polls a JavaScript condition in the page until it is true and fails the
// test if it is not within timeout.
func waitBrowserJS(t *testing.T, bctx context.Context, timeout time.Duration, name, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, timeout)
	defer cancel()
	for {
		var ok bool
		if err := chromedp.Run(ctx, chromedp.Evaluate(cond, &ok)); err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("browser: timed out after %v waiting for %s (%s)", timeout, name, cond)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runDemoServer runs a demo-mode server on a free loopback port until the test ends and
// returns its URL and the demo clinician's password, as printed at start.
func runDemoServer(t *testing.T, cfg Config, deps Deps) (url, password string) {
	t.Helper()
	out := &syncBuffer{}
	cfg.Listen, cfg.Demo, deps.Stdout = "127.0.0.1:0", true, out
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	m := demoPassword.FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), "scribe is running at https://localhost:") {
		t.Fatalf("server output lacks the URL or demo login: %q", out.String())
	}
	return srv.URL(), m[1]
}

// runBrowserFlow logs in, starts a session in the room, watches provisional and committed
// text arrive, stops, edits a segment's text and another's speaker, flags one, scrolls to
// the end, confirms, approves, and checks the page is read-only. On failure it saves a
// screenshot to SCRIBE_TEST_ARTIFACTS (or $TMPDIR).
func runBrowserFlow(t *testing.T, f browserFlow) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (present in the sid root where `make test` runs): %v", chromiumPath, err)
	}
	if f.FirstCommit == 0 {
		f.FirstCommit = 90 * time.Second
	}
	if f.NewText == "" {
		f.NewText = "Good morning, what brings you in today?"
	}
	var logMu sync.Mutex
	var consoleLog []string
	bctx := startChromium(t, func(format string, args ...any) {
		logMu.Lock()
		consoleLog = append(consoleLog, fmt.Sprintf(format, args...))
		logMu.Unlock()
	})
	defer screenshotOnFailure(t, bctx)

	step := func(name string, timeout time.Duration, actions ...chromedp.Action) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, timeout)
		defer cancel()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("browser step %q: %v", name, err)
		}
		// SCRIBE_TEST_SCREENSHOTS=DIR keeps a picture of every step, to look at the UI.
		if dir := os.Getenv("SCRIBE_TEST_SCREENSHOTS"); dir != "" {
			var png []byte
			if chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)) == nil { // 100: PNG
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s.png", t.Name(), strings.ReplaceAll(name, " ", "_"))), png, 0o644)
			}
		}
	}
	waitJS := func(name string, timeout time.Duration, cond string) {
		t.Helper()
		waitBrowserJS(t, bctx, timeout, name, cond)
	}
	room := fmt.Sprintf(`li[data-room=%q]`, f.RoomName)
	seg := func(n int) string { return fmt.Sprintf(`#transcript li.segment:nth-of-type(%d)`, n) }

	step("log in", 30*time.Second,
		chromedp.Navigate(f.URL),
		chromedp.WaitVisible(`#username`, chromedp.ByQuery),
		chromedp.SendKeys(`#username`, f.Username, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, f.Password, chromedp.ByQuery),
		chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(room, chromedp.ByQuery),
	)
	step("start without consent is refused", 10*time.Second,
		chromedp.Click(room+` button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(room+` .nhsuk-error-message`, chromedp.ByQuery),
	)
	waitJS("the consent message", 5*time.Second, `document.querySelector('`+room+` .nhsuk-error-message').textContent.includes('consent')`)
	step("tick consent and start", 30*time.Second,
		chromedp.Click(room+` input[type=checkbox]`, chromedp.ByQuery),
		chromedp.Click(room+` button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#rec-indicator.recording`, chromedp.ByQuery),
	)
	waitJS("the RECORDING indicator", 5*time.Second, `document.getElementById('rec-indicator').textContent.includes('RECORDING')`)
	waitJS("provisional text", f.FirstCommit, `!!document.querySelector('#transcript li.provisional')`)
	waitJS("a committed segment", f.FirstCommit, `!!document.querySelector('#transcript li.segment')`)
	waitJS("provisional and committed look different", 5*time.Second, `(() => {
		const c = document.querySelector('#transcript li.segment .seg-text');
		return getComputedStyle(c).fontStyle === 'normal' && getComputedStyle(document.querySelector('.provisional-sample')).fontStyle === 'italic';
	})()`)
	waitJS("two committed segments", f.FirstCommit, `document.querySelectorAll('#transcript li.segment').length >= 2`)

	// Stop (unless the source already ended) and wait for the last commits.
	var state string
	step("read state", 5*time.Second, chromedp.AttributeValue(`#rec-indicator`, "class", &state, nil, chromedp.ByQuery))
	if strings.Contains(state, "recording") {
		step("stop", 10*time.Second, chromedp.Click(`#btn-stop`, chromedp.ByQuery))
	}
	waitJS("the STOPPED state", f.FirstCommit, `document.getElementById('rec-indicator').classList.contains('stopped')`)
	waitJS("provisional text to be gone", 10*time.Second, `!document.querySelector('#transcript li.provisional')`)

	step("edit the first segment's text", 20*time.Second,
		chromedp.Click(seg(1)+` button.edit`, chromedp.ByQuery),
		chromedp.WaitVisible(seg(1)+` textarea`, chromedp.ByQuery),
		chromedp.Evaluate(fmt.Sprintf(`(() => { const t = document.querySelector('%s textarea'); t.value = ''; t.focus(); return true; })()`, seg(1)), nil),
		chromedp.SendKeys(seg(1)+` textarea`, f.NewText, chromedp.ByQuery),
		chromedp.Click(seg(1)+` button.save`, chromedp.ByQuery),
	)
	waitJS("the edited text", 20*time.Second, fmt.Sprintf(`(document.querySelector('%s .seg-text') || {}).textContent === %q`, seg(1), f.NewText))

	var speaker string
	step("read the second speaker", 5*time.Second, chromedp.Evaluate(fmt.Sprintf(`document.querySelector('%s button.speaker').className.match(/spk-(\w+)/)[1]`, seg(2)), &speaker))
	newSpeaker := "patient"
	if speaker == "patient" {
		newSpeaker = "clinician"
	}
	step("reassign the second speaker from its menu", 10*time.Second,
		chromedp.Click(seg(2)+` button.speaker`, chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`%s .speaker-menu button[data-speaker=%q]`, seg(2), newSpeaker), chromedp.ByQuery))
	waitJS("the speaker change saved", 20*time.Second, fmt.Sprintf(`document.querySelector('%s').dataset.version !== '1' && document.querySelector('%s button.speaker').classList.contains('spk-%s')`, seg(2), seg(2), newSpeaker))

	step("flag the second segment", 20*time.Second,
		chromedp.Click(seg(2)+` button.flag`, chromedp.ByQuery),
		chromedp.WaitVisible(seg(2)+` .flag-form select`, chromedp.ByQuery),
		chromedp.SetValue(seg(2)+` .flag-form select`, "wrong_words", chromedp.ByQuery),
		chromedp.SendKeys(seg(2)+` .flag-form input`, "medicine name misheard", chromedp.ByQuery),
		chromedp.Click(seg(2)+` .flag-submit`, chromedp.ByQuery),
	)
	waitJS("the flag shown", 20*time.Second, fmt.Sprintf(`((document.querySelector('%s .seg-flags') || {}).textContent || '').includes('wrong words')`, seg(2)))

	var disabled bool
	step("approve is not possible before reading to the end", 5*time.Second,
		chromedp.Evaluate(`document.getElementById('btn-approve').getAttribute('aria-disabled') === 'true'`, &disabled))
	if !disabled {
		t.Fatal("Approve was enabled before the confirmation was ticked")
	}
	step("read through to the end", 60*time.Second, chromedp.Evaluate(readThrough, nil, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
	waitJS("the confirmation box enabled", 10*time.Second, `!document.getElementById('confirm-reviewed').disabled`)
	// The pre-approval check: no NHS number (and, with a real model, lines without text).
	waitJS("the approval check", 10*time.Second, `!document.getElementById('approval-check').hidden && !!document.querySelector('#approval-check li[data-item="nhs_number"]')`)
	step("decide each item", 10*time.Second, chromedp.Evaluate(`(() => { for (const c of document.querySelectorAll('#approval-check input[type=checkbox]')) if (!c.checked) c.click(); return true; })()`, nil))
	step("confirm and approve", 30*time.Second,
		chromedp.Click(`#confirm-reviewed`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById('btn-approve').getAttribute('aria-disabled') === 'false'`, nil),
		chromedp.Click(`#btn-approve`, chromedp.ByQuery),
		chromedp.WaitVisible(`#approved`, chromedp.ByQuery),
	)
	waitJS("the APPROVED state", 10*time.Second, `document.getElementById('rec-indicator').classList.contains('approved')`)
	waitJS("the document text", 10*time.Second, fmt.Sprintf(`document.getElementById('document-text').textContent.includes(%q)`, "Clinician: "+f.NewText)+
		` || document.getElementById('document-text').textContent.includes(`+fmt.Sprintf("%q", "Patient: "+f.NewText)+`)`)
	waitJS("no edit controls in the read-only view", 10*time.Second, `[...document.querySelectorAll('#transcript button, #transcript select, #btn-approve, #btn-stop')].every(b => b.offsetParent === null)`)
	// The server refuses edits too, not only the page.
	var status float64
	step("server refuses an edit after approval", 10*time.Second, chromedp.Evaluate(fmt.Sprintf(`fetch('/api/sessions/' + location.hash.split('/')[2] + '/segments/' + document.querySelector('%s').dataset.id,
		{method: 'PATCH', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': document.cookie.match(/__Host-scribe_csrf=([^;]+)/)[1]}, body: JSON.stringify({version: 99, text: 'late'})}).then(r => r.status)`, seg(1)), &status,
		func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if status != 423 {
		t.Fatalf("edit after approval answered %v, want 423", status)
	}
}

var demoPassword = regexp.MustCompile(`password "([^"]+)"`)

// syncBuffer is a bytes.Buffer safe to write from the server and read from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestBrowserDemoFlow runs the whole clinician flow in headless Chromium against a real
// HTTPS server (Run, self-signed certificate) in demo mode with the fake transcriber.
func TestBrowserDemoFlow(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (present in the sid root where `make test` runs)", chromiumPath)
	}
	dir := t.TempDir()
	wav := writeTone(t, dir, 300, 12)
	url, password := runDemoServer(t, Config{DataDir: dir, DemoWAVs: []string{wav}, WAVSpeed: 2, ShutdownTimeout: 10 * time.Second},
		Deps{Transcriber: fakeTranscriber{segSeconds: 1.5}})
	runBrowserFlow(t, browserFlow{URL: url, Username: DemoUsername, Password: password, RoomName: "Demo room 1"})
}
