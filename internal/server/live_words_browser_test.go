package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"scribe/internal/app"
	"scribe/internal/config"
	"scribe/internal/testmodels"
	"scribe/internal/textdiff"
)

// pageTranscriptJS is a JavaScript expression for the transcript text the review page
// shows: its committed lines, in order, joined by spaces. The review page's markup is
// known here only; a page redesign changes this one expression.
const pageTranscriptJS = `[...document.querySelectorAll('#transcript li.segment .seg-text')].map(e => e.textContent.trim()).filter(t => t).join(' ')`

// pageProvisionalJS is true while the page shows provisional (not yet committed) text.
const pageProvisionalJS = `!!document.querySelector('#transcript li.provisional')`

// In real headless Chromium on the real tiny.en: a demo room replays jfk.wav at real time
// through the live pipeline; the clinician starts it and watches provisional text give
// way to committed lines; when the replay ends, the text the page shows is the reference
// sentence, word for word after normalisation.
func TestBrowserShowsRealWordsLive(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s", chromiumPath)
	}
	jfk := filepath.Join(config.SharedDir(), "audio", "jfk.wav")
	if _, err := os.Stat(jfk); err != nil {
		t.Skip("../shared/audio/jfk.wav not available")
	}
	cfg := config.Default()
	cfg.Models.Whisper = testmodels.Real(t, "tiny.en")
	cfg.Models.VAD = testmodels.VAD(t)
	cfg.Models.Workers, cfg.Models.Threads = 1, 2
	rt, err := app.Load(cfg, app.Options{Provisional: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	url, password := runDemoServer(t, Config{DataDir: t.TempDir(), DemoWAVs: []string{jfk}, WAVSpeed: 1, ShutdownTimeout: 20 * time.Second},
		Deps{Transcriber: rt.Pipeline})

	bctx := startChromium(t, nil)
	defer screenshotOnFailure(t, bctx)
	room := `li[data-room="Demo room 1"]`
	browserStep(t, bctx, 30*time.Second, "log in and start",
		chromedp.Navigate(url),
		chromedp.WaitVisible(`#username`, chromedp.ByQuery),
		chromedp.SendKeys(`#username`, DemoUsername, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, password, chromedp.ByQuery),
		chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(room, chromedp.ByQuery),
		chromedp.Click(room+` input[type=checkbox]`, chromedp.ByQuery),
		chromedp.Click(room+` button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#rec-indicator.recording`, chromedp.ByQuery),
	)
	waitBrowserJS(t, bctx, 2*time.Minute, "provisional text", pageProvisionalJS)
	waitBrowserJS(t, bctx, 3*time.Minute, "the replay to end", `document.getElementById('rec-indicator').classList.contains('stopped')`)
	waitBrowserJS(t, bctx, 30*time.Second, "provisional text to be gone", "!("+pageProvisionalJS+")")
	var shown string
	browserStep(t, bctx, 10*time.Second, "read the transcript", chromedp.Evaluate(pageTranscriptJS, &shown))
	const reference = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
	if r := textdiff.WER(reference, shown); r.WER != 0 {
		t.Errorf("the page shows %q: WER %.3f", shown, r.WER)
	}
}
