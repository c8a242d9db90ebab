package server

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"scribe/internal/domain"
	"scribe/internal/store"
)

// seedSession stores a consultation whose machine draft is draft (one segment per entry),
// and, when final is not nil, has the clinician change the texts to final and approve it.
func seedSession(t *testing.T, st *store.Store, room store.Room, clinician int64, draft, final []string) string {
	t.Helper()
	ctx := context.Background()
	c, err := st.StartConsultation(ctx, store.NewConsultation{RoomID: room.ID, ClinicianID: clinician, Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	var segs []store.Segment
	for i, text := range draft {
		g, err := st.InsertCommitted(ctx, c.ID, domain.Segment{Start: float64(5 * i), End: float64(5*i + 4), Speaker: domain.SpeakerClinician, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, g)
	}
	if _, err := st.SetState(ctx, c.ID, store.StateStopped, float64(5*len(draft))); err != nil {
		t.Fatal(err)
	}
	if final == nil {
		return c.ID
	}
	for i, g := range segs {
		if final[i] != g.Text {
			if _, err := st.UpdateSegment(ctx, c.ID, g.ID, clinician, g.Version, &final[i], nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := st.Approve(ctx, c.ID, clinician, nil, store.ItemNHSNumber); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordSessionMetrics(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// TestBrowserFlagTriageAndDashboard: a clinician flags a line in the review page; the CSO
// logs in to the clinical safety page, sees the flag with that line only, and moves it
// through triage to closed; the dashboard draws charts of seeded sessions' edit rates.
func TestBrowserFlagTriageAndDashboard(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (present in the sid root where `make test` runs): %v", chromiumPath, err)
	}
	e := newSafetyEnv(t)
	st := e.srv.Store()
	a := e.user("a", store.RoleClinician)
	b := e.user("b", store.RoleClinician)
	e.user("cso", store.RoleCSO)
	roomA := e.room("Room A", store.SourceBrowser, map[string]string{}, a.ID)
	roomB := e.room("Room B", store.SourceBrowser, map[string]string{}, b.ID)
	// Known edit rates: Dr a 1 of 4 words (25%), Dr b 2 of 4 (50%); the week pools 3 of 8.
	seedSession(t, st, roomA, a.ID, []string{"one two three four"}, []string{"one two three five"})
	seedSession(t, st, roomB, b.ID, []string{"alpha beta gamma delta"}, []string{"alpha beta"})
	review := seedSession(t, st, roomA, a.ID, []string{"good morning how are you", "please take ramipril daily"}, nil)

	bctx := startChromium(t, nil)
	defer screenshotOnFailure(t, bctx)
	step := func(name string, actions ...chromedp.Action) {
		t.Helper()
		browserStep(t, bctx, 20*time.Second, name, actions...)
	}
	waitJS := func(name, cond string) {
		t.Helper()
		waitBrowserJS(t, bctx, 20*time.Second, name, cond)
	}
	base := strings.TrimSuffix(e.ts.URL, "/")

	// The clinician flags the second line of a stopped session.
	step("clinician logs in", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#username", chromedp.ByID),
		chromedp.SendKeys("#username", "a", chromedp.ByID), chromedp.SendKeys("#password", testPassword, chromedp.ByID),
		chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible("#view-rooms", chromedp.ByID))
	step("open the session", chromedp.Navigate(base+"/#/session/"+review))
	waitJS("two lines", `document.querySelectorAll("#transcript li.segment").length === 2`)
	waitJS("responsibility reminder", `!!document.getElementById("responsibility-reminder") && document.getElementById("responsibility-reminder").offsetParent !== null`)
	second := `#transcript li.segment:nth-of-type(2)`
	step("flag the second line", chromedp.Click(second+` button.flag`, chromedp.ByQuery),
		chromedp.WaitVisible(second+` .flag-form`, chromedp.ByQuery),
		chromedp.SetValue(second+` .flag-form select`, "wrong_words", chromedp.ByQuery),
		chromedp.SendKeys(second+` .flag-form input`, "said ramipril 5 mg", chromedp.ByQuery),
		chromedp.Click(second+` button.flag-submit`, chromedp.ByQuery))
	// The flag is checked where it lands (the store): the line's own badge arrives over
	// the live websocket, which the review-page tests cover.
	waitFor(t, 20*time.Second, "the flag to be recorded", func() bool {
		fs, err := st.Flags(context.Background(), review)
		return err == nil && len(fs) == 1 && fs[0].Category == domain.FlagWrongWords && fs[0].Note == "said ramipril 5 mg"
	})
	step("clinician logs out", chromedp.Click("#logout", chromedp.ByID), chromedp.WaitVisible("#view-login", chromedp.ByID))

	// The CSO sees the flag with the flagged line only and works it through triage.
	step("CSO logs in", chromedp.Navigate(base+"/cso.html"), chromedp.WaitVisible("#username", chromedp.ByID),
		chromedp.SendKeys("#username", "cso", chromedp.ByID), chromedp.SendKeys("#password", testPassword, chromedp.ByID),
		chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible("#view-cso", chromedp.ByID))
	waitJS("the flag in the queue", `[...document.querySelectorAll("#flag-list li[data-flag]")].some(li => li.querySelector(".machine-text")?.textContent === "please take ramipril daily" && li.textContent.includes("said ramipril 5 mg"))`)
	var page string
	step("read the page", chromedp.Evaluate(`document.body.innerText`, &page))
	if strings.Contains(page, "good morning how are you") {
		t.Fatal("the CSO page shows a line that was not flagged")
	}
	flags, err := st.Incidents(context.Background(), store.IncidentFilter{})
	if err != nil || len(flags) != 1 {
		t.Fatalf("flags in the store: %+v, %v", flags, err)
	}
	li := fmt.Sprintf(`#flag-list li[data-flag="%d"]`, flags[0].ID)
	for _, move := range []struct{ to, note string }{{"triaged", "drug name misheard"}, {"mitigated", "ramipril added to vocabulary"}, {"closed", "no repeat in 4 weeks"}} {
		step("move to "+move.to, chromedp.WaitVisible(li+` button.move-`+move.to, chromedp.ByQuery),
			chromedp.SendKeys(li+` .triage-form input`, move.note, chromedp.ByQuery),
			chromedp.Click(li+` button.move-`+move.to, chromedp.ByQuery))
		if move.to != "closed" {
			waitJS("state "+move.to, `(document.querySelector('`+li+` .flag-state') || {}).textContent === "`+move.to+`"`)
		}
	}
	waitJS("the closed flag leaves the open queue", `!document.querySelector('`+li+`')`)
	in, err := st.Incident(context.Background(), flags[0].ID)
	if err != nil || in.State != store.FlagStateClosed || len(in.History) != 3 || in.History[2].Note != "no repeat in 4 weeks" || in.History[0].UserName != "Dr cso" {
		t.Fatalf("after triage in the browser: %+v, %v", in, err)
	}

	// The dashboard draws the seeded figures.
	bars := func(id string) map[string]float64 {
		t.Helper()
		var out map[string]string
		step("read "+id, chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll("#`+id+` svg rect.bar")].map(r => [r.dataset.key, r.dataset.value]))`, &out))
		got := map[string]float64{}
		for k, v := range out {
			got[k], _ = strconv.ParseFloat(v, 64)
		}
		return got
	}
	waitJS("charts", `document.querySelectorAll("#chart-clinician svg rect.bar").length === 2`)
	byClinician := bars("chart-clinician")
	if len(byClinician) != 2 || math.Abs(byClinician["Dr a"]-0.25) > 1e-9 || math.Abs(byClinician["Dr b"]-0.5) > 1e-9 {
		t.Fatalf("edit rate bars by clinician: %v", byClinician)
	}
	byWeek := bars("chart-week")
	week := store.ISOWeek(time.Now())
	if len(byWeek) != 1 || math.Abs(byWeek[week]-3.0/8) > 1e-9 {
		t.Fatalf("edit rate bars by week: %v (want %s: 0.375)", byWeek, week)
	}
	if sessions := bars("chart-sessions"); sessions[week] != 2 {
		t.Fatalf("sessions by week: %v", sessions)
	}
	var rows int
	step("figures table", chromedp.Evaluate(`document.querySelectorAll("#table-clinician tr").length`, &rows))
	if rows != 3 {
		t.Fatalf("clinician table rows = %d, want header + 2", rows)
	}
}
