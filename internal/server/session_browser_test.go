package server

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"scribe/internal/store"
)

// When the session changes state for a reason other than the clinician's own button (here
// the room's audio ends; a full disk or a shutdown come the same way), the reason is
// shown in the recording header, as an alert, not only in the status line.
func TestBrowserStateReasonInTheHeader(t *testing.T) {
	r := newUIRig(t, 0, func(c *Config, _ *Deps) { c.WAVSpeed = 2 })
	r.e.room("Room W", store.SourceWAV, map[string]string{"path": writeTone(t, r.e.dir, 300, 3)}, r.doc.ID)
	r.login("gp")
	r.startInRoom("Room W")
	r.wait("stopped by the end of the audio", `document.getElementById("rec-indicator").className.includes("stopped")`)
	r.wait("the reason in the header", `(() => { const p = document.getElementById("state-reason");
		return !p.hidden && p.closest("#rec-header") !== null && p.getAttribute("role") === "alert" && p.textContent.includes("the audio source ended"); })()`)
}

// An approved note's delivery state changes on the page as the write-back moves it on,
// without a reload: queued, then held, with what holds it (the test clinician has no GMC
// number, which the record's author needs).
func TestBrowserDeliveryStateLive(t *testing.T) {
	var wb *testWriteBack
	r := newUIRig(t, 0, withWriteBack(t, &wb))
	id, _ := r.review("9434765919", "Good morning.", "Morning, doctor.")
	r.wait("the lines read", `!document.getElementById("confirm-reviewed").disabled`)
	r.run("confirm and approve", chromedp.Click("#confirm-reviewed", chromedp.ByID),
		chromedp.Poll(`document.getElementById("btn-approve").getAttribute("aria-disabled") === "false"`, nil),
		chromedp.Click("#btn-approve", chromedp.ByID))
	r.wait("queued", `document.getElementById("delivery").dataset.state === "queued"`)
	start := time.Now()
	wb.deliverAll(t)
	r.wait("held, with the reason, without a reload", `document.getElementById("delivery").dataset.state === "held" && document.getElementById("delivery").textContent.includes("GMC number")`)
	t.Logf("the page showed the delivery %.1f s after it happened", time.Since(start).Seconds())
	var reloaded bool
	r.eval(`performance.getEntriesByType("navigation").length !== 1`, &reloaded)
	if c := r.consultation(id); !strings.Contains(c.DocumentText, "Good morning.") || reloaded {
		t.Fatalf("approved %q, page reloaded %v", c.DocumentText, reloaded)
	}
}
