package server

// A whole consultation in Chromium, by keyboard only and by mouse, counting what the
// clinician presses and clicks, and the time from Stop to Approved, for a 20-line
// transcript (issue 13's figures; the page before it took 133–135 Tab presses, 7 other
// keys, and with the mouse 7 clicks and 47 wheel notches, for the same task).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"scribe/internal/store"
)

// The task, both ways: stop the recording; correct the first line's text; make the
// second line's speaker the other one; go through all 20 lines; confirm; approve.
const newFirstLine = "Good morning, what brings you in today?"

// startTwentyLines logs in and starts a consultation in the tone room (20 s of audio: 20
// lines), waits for its lines, and reloads the page, so each way starts from a page just
// opened on the recording consultation.
func startTwentyLines(t *testing.T, r *uiRig, byKeyboard bool) (sessionID string) {
	t.Helper()
	room := `li[data-room="Room 1"]`
	if byKeyboard {
		k := &keyboard{r: r}
		r.run("open", chromedp.Navigate(r.base+"/"), chromedp.WaitVisible("#username", chromedp.ByID))
		r.wait("the username field focused", `document.activeElement.id === "username"`)
		k.typeText("gp")
		k.press(kb.Tab)
		k.typeText(testPassword)
		k.press(kb.Enter)
		r.wait("the rooms", `!!document.querySelector(`+jsString(room+` input[name=consent]`)+`)`)
		k.tabTo(room + ` input[name=consent]`)
		k.press(" ")
		k.tabTo(room + ` input[name=nhs]`)
		k.typeText("943 476 5919")
		k.press(kb.Enter)
		t.Logf("keyboard, log in and start: %d Tab, %d other keys, %d characters typed", k.tabs, k.keys, k.typed)
	} else {
		m := &mouse{r: r}
		r.run("open", chromedp.Navigate(r.base+"/"), chromedp.WaitVisible("#username", chromedp.ByID))
		m.click("#username")
		r.run("type", chromedp.KeyEvent("gp"))
		m.click("#password")
		r.run("type", chromedp.KeyEvent(testPassword))
		m.click(`#login-form button[type=submit]`)
		r.wait("the rooms", `!!document.querySelector(`+jsString(room+` input[name=consent]`)+`)`)
		m.click(room + ` input[name=consent]`)
		m.click(room + ` input[name=nhs]`)
		r.run("type", chromedp.KeyEvent("943 476 5919"))
		m.click(room + ` form button[type=submit]`)
		t.Logf("mouse, log in and start: %d clicks, %d wheel notches", m.clicks, m.wheels)
	}
	r.wait("20 lines while recording", `document.querySelectorAll("#transcript li.segment").length === 20 && document.getElementById("rec-indicator").className.includes("recording")`)
	r.eval(`location.hash.split("/")[2]`, &sessionID)
	r.run("reload", chromedp.Reload())
	r.wait("20 lines after the reload", `document.querySelectorAll("#transcript li.segment").length === 20`)
	return sessionID
}

// checkApproved checks the store has the task's result.
func checkApproved(t *testing.T, r *uiRig, id string) {
	t.Helper()
	c := r.consultation(id)
	if c.State != store.StateApproved || !strings.HasPrefix(c.DocumentText, "[00:00:00] Clinician: "+newFirstLine+"\n[00:00:01] Clinician: segment 1") {
		t.Fatalf("approved note: %s %q", c.State, c.DocumentText)
	}
}

// atScreenSizes runs f once per common GP screen size, on a fresh server and browser.
func atScreenSizes(t *testing.T, f func(t *testing.T, r *uiRig)) {
	for _, sz := range screenSizes {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			r := newUIRig(t, 20, nil)
			r.run("screen size", chromedp.EmulateViewport(sz[0], sz[1]))
			f(t, r)
		})
	}
}

func TestBrowserKeyboardConsultation(t *testing.T) { atScreenSizes(t, keyboardConsultation) }

func TestBrowserMouseConsultation(t *testing.T) { atScreenSizes(t, mouseConsultation) }

func keyboardConsultation(t *testing.T, r *uiRig) {
	id := startTwentyLines(t, r, true)
	k := &keyboard{r: r}
	k.tabTo("#btn-stop")
	start := time.Now()
	k.press(kb.Enter)
	r.wait("STOPPED, focus on the first line", `document.getElementById("rec-indicator").className.includes("stopped") && document.activeElement.matches("#transcript li.segment:first-child")`)
	k.press(kb.Enter) // edit the first line
	r.wait("its text field", `document.activeElement.matches("#transcript li.segment:first-child textarea")`)
	k.keys++ // Ctrl+A, as the page before
	r.run("select all", chromedp.Evaluate(`document.activeElement.select()`, nil))
	k.typeText(newFirstLine)
	k.press(kb.Enter) // save
	r.wait("saved, focus back on the line", `document.activeElement.matches("#transcript li.segment:first-child") && document.querySelector("#transcript li.segment:first-child .seg-text").textContent === `+jsString(newFirstLine))
	k.press("j")
	k.press("s") // the speaker menu, on the other speaker
	r.wait("the speaker menu", `document.activeElement.matches("#transcript li.segment:nth-child(2) .speaker-menu button[data-speaker=clinician]")`)
	k.press(kb.Enter)
	r.wait("the speaker saved, focus back on the line", `document.activeElement.matches("#transcript li.segment:nth-child(2)") && document.querySelector("#transcript li.segment:nth-child(2) .speaker").classList.contains("spk-clinician")`)
	for range 18 {
		time.Sleep(300 * time.Millisecond) // reading the line: a fast reader
		k.press("j")
	}
	r.wait("the last line", `document.activeElement.matches("#transcript li.segment:last-child")`)
	r.wait("every line read", `!document.getElementById("confirm-reviewed").disabled`)
	k.tabTo("#confirm-reviewed")
	k.press(" ")
	k.tabTo("#btn-approve")
	k.press(kb.Enter)
	r.wait("APPROVED", `document.getElementById("rec-indicator").className.includes("approved")`)
	took := time.Since(start)
	checkApproved(t, r, id)
	t.Logf("keyboard, Stop → Approved for 20 lines: %d Tab presses, %d other keys, %d characters typed, %.1f s", k.tabs, k.keys, k.typed, took.Seconds())
	if k.tabs > 61 {
		t.Fatalf("%d Tab presses from Stop to Approved; the goal is at most 61 (half of the 123 before)", k.tabs)
	}
}

func mouseConsultation(t *testing.T, r *uiRig) {
	id := startTwentyLines(t, r, false)
	m := &mouse{r: r}
	m.click("#btn-stop")
	start := time.Now()
	r.wait("STOPPED", `document.getElementById("rec-indicator").className.includes("stopped")`)
	// Read: the wheel over the transcript, from the first line (where the page put the
	// view at Stop) down, a notch at a time with a pause to read, until every line counts.
	for i := 0; !r.evalBool(`!document.getElementById("confirm-reviewed").disabled`); i++ {
		if i == 100 {
			t.Fatal("the transcript was not read through")
		}
		time.Sleep(1100 * time.Millisecond) // reading what is on screen: a fast reader
		if !r.evalBool(`(() => { const b = document.getElementById("transcript-box"); return b.scrollTop + b.clientHeight >= b.scrollHeight - 2; })()`) {
			m.wheel("#transcript-box", 1)
		}
	}
	first := `#transcript li.segment:first-child`
	m.click(first + ` button.edit`)
	r.wait("its text field", `document.activeElement.matches("`+first+` textarea")`)
	r.run("select all", chromedp.Evaluate(`document.activeElement.select()`, nil))
	r.run("type", chromedp.KeyEvent(newFirstLine))
	m.click(first + ` button.save`)
	r.wait("saved", `document.querySelector("`+first+` .seg-text").textContent === `+jsString(newFirstLine))
	second := `#transcript li.segment:nth-child(2)`
	m.click(second + ` button.speaker`)
	m.click(second + ` .speaker-menu button[data-speaker=clinician]`)
	r.wait("the speaker saved", `document.querySelector("`+second+` .speaker").classList.contains("spk-clinician")`)
	m.click("#confirm-reviewed")
	m.click("#btn-approve")
	r.wait("APPROVED", `document.getElementById("rec-indicator").className.includes("approved")`)
	took := time.Since(start)
	checkApproved(t, r, id)
	t.Logf("mouse, Stop → Approved for 20 lines: %d clicks, %d wheel notches, %.1f s", m.clicks, m.wheels, took.Seconds())
}
