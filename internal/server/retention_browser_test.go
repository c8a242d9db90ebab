package server

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"scribe/internal/audit"
	"scribe/internal/store"
)

// reviewPage drives one browser tab in the retention browser test.
type reviewPage struct {
	t   *testing.T
	ctx context.Context
}

func (p reviewPage) run(name string, actions ...chromedp.Action) {
	p.t.Helper()
	browserStep(p.t, p.ctx, 30*time.Second, name, actions...)
}

// wait polls a JavaScript condition until it is true.
func (p reviewPage) wait(name, cond string) {
	p.t.Helper()
	waitBrowserJS(p.t, p.ctx, 60*time.Second, name, cond)
}

// record logs in as the clinician, starts a session in the room, waits for at least
// two lines, stops (unless the file already ended) and returns the session id.
func (p reviewPage) record(base, user, roomName string) string {
	p.t.Helper()
	room := fmt.Sprintf(`li[data-room=%q]`, roomName)
	p.run("log in", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#username", chromedp.ByID),
		chromedp.SendKeys("#username", user, chromedp.ByID), chromedp.SendKeys("#password", testPassword, chromedp.ByID),
		chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(room, chromedp.ByQuery))
	p.run("start with consent", chromedp.Click(room+` input[type=checkbox]`, chromedp.ByQuery),
		chromedp.Click(room+` button[type=submit]`, chromedp.ByQuery))
	// A fast WAV room may have ended before the page shows it recording.
	p.wait("the session page", `!document.getElementById("view-session").hidden && /recording|stopped/.test(document.getElementById("rec-indicator").className)`)
	p.wait("two lines", `document.querySelectorAll("#transcript li.segment").length >= 2`)
	p.run("stop", chromedp.Evaluate(`(() => { const b = document.getElementById("btn-stop"); if (!b.hidden) b.click(); return true; })()`, nil))
	p.wait("the STOPPED state", `document.getElementById("rec-indicator").classList.contains("stopped")`)
	var id string
	p.run("session id", chromedp.Evaluate(`location.hash.split("/")[2]`, &id))
	return id
}

// TestBrowserRelistenAndDiscard: with retention until-approved a clinician records a
// WAV room, stops, plays a line from its ▶ button (one audited fetch of that range as
// audio/wav, played to the end with the line's length), discards the audio through the
// in-page confirmation (Keep first, then Delete), after which the buttons are gone and
// the server holds nothing; with retention none no ▶ or Discard button is shown.
func TestBrowserRelistenAndDiscard(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (present in the sid root where `make test` runs): %v", chromiumPath, err)
	}
	wav, _ := writeSignal(t)
	e := newEnv(t, func(c *Config, d *Deps) {
		c.WAVSpeed, c.AudioRetention = 2, RetentionUntilApproved
		d.Transcriber = fakeTranscriber{segSeconds: 2} // lines long enough to watch play
	})
	doc := e.user("gp", store.RoleClinician)
	e.room("Room 1", store.SourceWAV, map[string]string{"path": wav}, doc.ID)
	base := strings.TrimSuffix(e.ts.URL, "/")

	bctx := startChromium(t, nil)
	p := reviewPage{t: t, ctx: bctx}
	defer screenshotOnFailure(t, bctx)
	// Every answer to an audio range request, as the browser received it.
	type audioResponse struct {
		url, mime string
		status    int64
	}
	var mu sync.Mutex
	var responses []audioResponse
	chromedp.ListenTarget(bctx, func(ev any) {
		if r, ok := ev.(*network.EventResponseReceived); ok && strings.Contains(r.Response.URL, "/audio?") {
			mu.Lock()
			responses = append(responses, audioResponse{r.Response.URL, r.Response.MimeType, r.Response.Status})
			mu.Unlock()
		}
	})
	p.run("watch the network", network.Enable())

	id := p.record(base, "gp", "Room 1")
	cl := e.login("gp")
	v, segs := cl.session(id)
	if !v.AudioHeld || len(segs) < 2 {
		t.Fatalf("stopped session: audio_held %v, %d lines", v.AudioHeld, len(segs))
	}
	p.wait("a ▶ button on every line and Discard audio shown", fmt.Sprintf(
		`document.querySelectorAll("#transcript li.segment button.play").length === %d && !document.getElementById("btn-discard-audio").hidden`, len(segs)))

	// Play the second line to its end.
	g := segs[1]
	second := fmt.Sprintf(`#transcript li.segment[data-id=%q]`, g.ID)
	p.run("press ▶", chromedp.Click(second+` button.play`, chromedp.ByQuery))
	p.wait("the button to show it is playing", `document.querySelector('`+second+` button.play').getAttribute("aria-pressed") === "true"`)
	var duration float64
	p.wait("the audio's length", `!!S.player && S.player.readyState >= 1 && S.player.duration > 0`)
	p.run("read the length", chromedp.Evaluate(`S.player.duration`, &duration))
	if want := g.End - g.Start; math.Abs(duration-want) > 0.03 {
		t.Fatalf("the browser's audio lasts %.3f s; the line is %.3f s", duration, want)
	}
	p.wait("playback to move on", `!!S.player && S.player.currentTime > 0.5`)
	p.wait("playback to end and the button to reset", `!S.player && document.querySelector('`+second+` button.play').textContent === "▶"`)
	var statusText string
	var statusBad bool
	p.run("read the status line", chromedp.Evaluate(`document.getElementById("status").textContent`, &statusText),
		chromedp.Evaluate(`document.getElementById("status").classList.contains("bad")`, &statusBad))
	if statusBad {
		t.Fatalf("playing the line reported an error: %q", statusText)
	}
	mu.Lock()
	got := append([]audioResponse(nil), responses...)
	mu.Unlock()
	wantURL := fmt.Sprintf("/api/sessions/%s/audio?start=%.2f&end=%.2f", id, g.Start, g.End)
	if len(got) == 0 {
		t.Fatal("the browser fetched no audio")
	}
	for _, r := range got {
		if r.status != http.StatusOK || r.mime != "audio/wav" || !strings.HasSuffix(r.url, wantURL) {
			t.Fatalf("audio responses %+v, want 200 audio/wav for …%s", got, wantURL)
		}
	}
	if n := countAction(t, e.srv.Store(), id, audit.ActionDataAccess, "audio_relisten"); n != len(got) {
		t.Fatalf("%d audio_relisten audit events for %d audio responses", n, len(got))
	}
	t.Logf("▶ played %.3f s in %d request(s)", duration, len(got))

	// Discard: the page asks first; Keep changes nothing.
	p.run("Discard audio, then Keep", chromedp.Click("#btn-discard-audio", chromedp.ByID),
		chromedp.WaitVisible("#discard-confirm", chromedp.ByID), chromedp.Click("#btn-discard-no", chromedp.ByID),
		chromedp.WaitNotVisible("#discard-confirm", chromedp.ByID))
	if v, _ := cl.session(id); !v.AudioHeld {
		t.Fatal("Keep the audio deleted it")
	}
	p.run("Discard audio, then Delete", chromedp.Click("#btn-discard-audio", chromedp.ByID),
		chromedp.WaitVisible("#discard-confirm", chromedp.ByID), chromedp.Click("#btn-discard-yes", chromedp.ByID))
	p.wait("the buttons to go", `!document.querySelector("#transcript button.play") && document.getElementById("btn-discard-audio").hidden && document.getElementById("discard-confirm").hidden`)
	p.wait("the lines still shown", fmt.Sprintf(`document.querySelectorAll("#transcript li.segment").length === %d`, len(segs)))
	if v, _ := cl.session(id); v.AudioHeld {
		t.Fatal("the server still says audio is held after Discard")
	}
	if st, _, msg := cl.relisten(id, g.Start, g.End); st != http.StatusConflict || !strings.Contains(msg, "discarded") {
		t.Fatalf("re-listen after Discard: %d %q", st, msg)
	}
	if fileSize(filepath.Join(e.dir, "spool", id+".spool")) != -1 {
		t.Fatal("the spool file is still there after Discard")
	}
	if dels := audioDeletions(t, e.srv.Store(), id); len(dels) != 1 || dels[0]["reason"] != AudioDeletedDiscarded {
		t.Fatalf("audio_deleted events %v, want one discarded", dels)
	}

	// Retention none: no ▶, no Discard.
	e2 := newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = 4 })
	doc2 := e2.user("gp", store.RoleClinician)
	e2.room("Room 2", store.SourceWAV, map[string]string{"path": wav}, doc2.ID)
	p.record(strings.TrimSuffix(e2.ts.URL, "/"), "gp", "Room 2")
	var plays int
	var discardHidden bool
	p.run("look for the buttons", chromedp.Evaluate(`document.querySelectorAll("#transcript button.play").length`, &plays),
		chromedp.Evaluate(`document.getElementById("btn-discard-audio").hidden`, &discardHidden))
	if plays != 0 || !discardHidden {
		t.Fatalf("with retention none: %d ▶ buttons, Discard hidden %v", plays, discardHidden)
	}
}
