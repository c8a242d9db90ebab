package server

// Every page in Chromium: axe-core finds no serious or critical accessibility problem on
// any of them, and each is photographed at 1366×768 and 1920×1080 (into
// $SCRIBE_TEST_SCREENSHOTS, default bin/screenshots; not committed) to be looked at.

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"scribe/internal/domain"
	"scribe/internal/fhir"
	"scribe/internal/outbox"
	"scribe/internal/store"
)

var axeSource = sync.OnceValues(func() ([]byte, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			b, err := os.ReadFile(filepath.Join(d, "testdata", "browser", "node_modules", "axe-core", "axe.min.js"))
			if err != nil {
				return nil, fmt.Errorf("axe-core is not installed (run `make node-deps`, which `make test` does): %w", err)
			}
			return b, nil
		}
		if filepath.Dir(d) == d {
			return nil, fmt.Errorf("no go.mod above %s", wd)
		}
	}
})

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// checkAccessibility runs axe-core on the page as it is and fails the test on any
// serious or critical violation.
func checkAccessibility(t *testing.T, bctx context.Context, page string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatal(err)
	}
	await := func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }
	var loaded bool
	var res struct {
		Passes     int            `json:"passes"`
		Violations []axeViolation `json:"violations"`
	}
	browserStep(t, bctx, 60*time.Second, "axe on "+page,
		chromedp.Evaluate(`typeof axe !== "undefined"`, &loaded),
		chromedp.ActionFunc(func(ctx context.Context) error {
			if loaded {
				return nil
			}
			return chromedp.Evaluate(string(src)+"\n;true", nil).Do(ctx)
		}),
		chromedp.Evaluate(`axe.run(document).then((r) => ({ passes: r.passes.length, violations: r.violations
			.filter((v) => v.impact === "serious" || v.impact === "critical")
			.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 6).map((n) => n.target.join(" ")) })) }))`, &res, await))
	if res.Passes < 10 {
		t.Fatalf("axe on %s checked only %d rules: did it run?", page, res.Passes)
	}
	for _, v := range res.Violations {
		t.Errorf("axe on %s: %s (%s): %s, at %v", page, v.ID, v.Impact, v.Help, v.Nodes)
	}
	t.Logf("axe on %s: %d rules pass, %d serious or critical violations", page, res.Passes, len(res.Violations))
}

// screenshotDir is where the screens are written.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("SCRIBE_TEST_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(repoDir(t), "bin", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var screenSizes = [][2]int64{{1366, 768}, {1920, 1080}}

// screens photographs the page at each screen size, after prepare (run at each size).
func screens(t *testing.T, bctx context.Context, name string, prepare func()) {
	t.Helper()
	dir := screenshotDir(t)
	for _, sz := range screenSizes {
		browserStep(t, bctx, 10*time.Second, "viewport", chromedp.EmulateViewport(sz[0], sz[1]))
		if prepare != nil {
			prepare()
		}
		time.Sleep(300 * time.Millisecond) // layout, fonts, the level meter's transition
		var png []byte
		browserStep(t, bctx, 20*time.Second, "screenshot "+name, chromedp.CaptureScreenshot(&png))
		path := filepath.Join(dir, fmt.Sprintf("%s-%dx%d.png", name, sz[0], sz[1]))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testWriteBack is the real outbox, delivering to a folder sink, wired to the server as
// the serve command wires it.
type testWriteBack struct {
	db     *sql.DB
	worker *outbox.Worker
}

func newTestWriteBack(t *testing.T, db *sql.DB, dir string) *testWriteBack {
	t.Helper()
	if err := outbox.EnsureSchema(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	sink := &fhir.FolderSink{Dir: dir, Config: fhir.Config{PracticeODS: "A81001"}}
	return &testWriteBack{db: db, worker: outbox.NewWorker(db, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))}
}

func (wb *testWriteBack) onApproved(ctx context.Context, tx *sql.Tx, n ApprovedNote) error {
	_, err := outbox.Enqueue(ctx, tx, fhir.Note{DocumentID: n.DocumentID, SessionID: n.SessionID, NHSNumber: n.NHSNumber,
		Clinician:         fhir.Clinician{DisplayName: n.ClinicianName, GMCNumber: n.ClinicianGMC},
		ConsultationStart: n.ConsultationStart, ConsultationEnd: n.ConsultationStop, ApprovedAt: n.ApprovedAt, Text: n.Text})
	return err
}

func (wb *testWriteBack) state(ctx context.Context, id string) (string, string) {
	items, err := outbox.List(ctx, wb.db, outbox.Filter{SessionID: id, Limit: 1})
	if err != nil || len(items) == 0 {
		return "", ""
	}
	return string(items[0].State), items[0].Reason
}

func (wb *testWriteBack) Deliveries(ctx context.Context, state string) ([]Delivery, error) {
	items, err := outbox.List(ctx, wb.db, outbox.Filter{State: outbox.State(state)})
	out := make([]Delivery, len(items))
	for i, it := range items {
		out[i] = Delivery{ID: it.ID, SessionID: it.SessionID, DocumentID: it.DocumentID, State: string(it.State), Reason: it.Reason, Attempts: it.Attempts, UpdatedAt: it.UpdatedAt}
	}
	return out, err
}

func (wb *testWriteBack) RetryDelivery(ctx context.Context, id int64) error {
	return outbox.Retry(ctx, wb.db, id)
}

// withWriteBack is a newEnv option: the server gets a real write-back (*wb) on the
// store it will use, as the serve command wires it.
func withWriteBack(t *testing.T, wb **testWriteBack) func(*Config, *Deps) {
	return func(c *Config, d *Deps) {
		st, err := store.Open(context.Background(), filepath.Join(c.DataDir, "scribe.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		*wb = newTestWriteBack(t, st.DB(), t.TempDir())
		d.Store, d.OnApproved, d.DeliveryState, d.Deliveries = st, (*wb).onApproved, (*wb).state, *wb
	}
}

// deliverAll runs the worker until nothing is due.
func (wb *testWriteBack) deliverAll(t *testing.T) {
	t.Helper()
	for {
		did, err := wb.worker.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !did {
			return
		}
	}
}

// The pages a clinician, an admin, an auditor and a CSO use, in their main states.
func TestBrowserScreensAndAccessibility(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (present in the sid root where `make test` runs): %v", chromiumPath, err)
	}
	if _, err := axeSource(); err != nil {
		t.Fatal(err)
	}
	var wb *testWriteBack
	e := newEnv(t, withWriteBack(t, &wb))
	st := e.srv.Store()
	ctx := context.Background()
	doc, err := st.CreateUser(ctx, store.NewUser{Username: "gp", DisplayName: "Dr Amara Patel", Role: store.RoleClinician, Password: testPassword, GMCNumber: "7654321"})
	if err != nil {
		t.Fatal(err)
	}
	e.user("it", store.RoleAdmin)
	e.user("cso", store.RoleCSO)
	e.user("audit", store.RoleAuditor)
	wav := writeTone(t, e.dir, 300, 600)
	e.room("Room 1", store.SourceWAV, map[string]any{"path": wav, "speed": 1}, doc.ID)
	other := e.room("Room 2", store.SourceBrowser, map[string]string{}, doc.ID)

	// Earlier consultations: one in the record, one held (no NHS number), one paused
	// after a server restart, and the one to review.
	lines := func(n int, withGaps bool) []string {
		phrases := []string{"Good morning, come in and have a seat.", "Thanks, doctor. I've had this cough for about three weeks now.",
			"Is it a dry cough, or are you bringing anything up?", "Mostly dry, but some mornings there's a bit of yellow phlegm.",
			"Any fever, night sweats or weight loss?", "No fever. I haven't weighed myself.", "Do you smoke?",
			"I stopped two years ago; before that about ten a day for twenty years.", "And any chest pain or breathlessness?",
			"A bit breathless on the stairs, which is new.", "Are you taking any medicines at the moment?", "Just ramipril, 5 milligrams, once a day."}
		out := make([]string, n)
		for i := range out {
			out[i] = phrases[i%len(phrases)]
			if withGaps && (i == 5 || i == 17) {
				out[i] = ""
			}
		}
		return out
	}
	seed := func(room store.Room, nhs string, texts []string) string {
		c, err := st.StartConsultation(ctx, store.NewConsultation{RoomID: room.ID, ClinicianID: doc.ID, Consent: true, NHSNumber: nhs})
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range texts {
			seg := domain.Segment{Start: float64(4 * i), End: float64(4*i + 3), Speaker: []domain.Speaker{domain.SpeakerClinician, domain.SpeakerPatient}[i%2], Text: text}
			if text == "" {
				seg.Flags = []domain.Flag{domain.FlagUntranscribed}
			}
			if i == 11 {
				seg.Flags = []domain.Flag{domain.FlagLowConfidence}
			}
			if _, err := st.InsertCommitted(ctx, c.ID, seg); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.SetState(ctx, c.ID, store.StateStopped, float64(4*len(texts))); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	sent := seed(other, "9434765919", lines(8, false))
	held := seed(other, "", lines(6, false))
	for _, id := range []string{sent, held} {
		if _, err := st.Approve(ctx, id, doc.ID, func(tx *sql.Tx, c store.Consultation) error {
			return wb.onApproved(ctx, tx, ApprovedNote{SessionID: c.ID, DocumentID: c.DocumentID, NHSNumber: c.NHSNumber, ClinicianName: doc.DisplayName,
				ClinicianGMC: doc.GMCNumber, ConsultationStart: c.StartedAt, ConsultationStop: c.StoppedAt, ApprovedAt: c.ApprovedAt, Text: c.DocumentText})
		}, store.ItemNHSNumber); err != nil {
			t.Fatal(err)
		}
		if _, err := st.RecordSessionMetrics(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	wb.deliverAll(t)
	// A locum's consultation whose machine draft had no words: the clinician typed the
	// line. The dashboard shows no edit rate for it (it showed "3200 %").
	locum, err := st.CreateUser(ctx, store.NewUser{Username: "locum", DisplayName: "Dr Locum", Role: store.RoleClinician, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	locumRoom := e.room("Room 3", store.SourceBrowser, map[string]string{}, locum.ID)
	seedSession(t, st, locumRoom, locum.ID, []string{""}, []string{"the patient described a cough for three weeks with yellow phlegm in the mornings"})
	review := seed(other, "4010232137", lines(30, true))
	if _, err := st.AddFlag(ctx, review, "s10", doc.ID, domain.FlagWrongWords, "said ramipril 10 mg"); err != nil {
		t.Fatal(err)
	}

	bctx := startChromium(t, nil)
	defer screenshotOnFailure(t, bctx)
	base := strings.TrimSuffix(e.ts.URL, "/")
	run := func(name string, actions ...chromedp.Action) {
		t.Helper()
		browserStep(t, bctx, 30*time.Second, name, actions...)
	}
	wait := func(name, cond string) { t.Helper(); waitBrowserJS(t, bctx, 30*time.Second, name, cond) }
	login := func(user, landing string) {
		t.Helper()
		run("log out whoever is logged in", chromedp.Navigate(base+"/"), chromedp.Evaluate(`(() => { const m = document.cookie.match(/__Host-scribe_csrf=([^;]+)/);
			return m ? fetch("/api/logout", {method: "POST", headers: {"X-CSRF-Token": m[1]}}).then(() => true) : true; })()`, nil,
			func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
		run("log in as "+user, chromedp.Navigate(base+"/?"+user), chromedp.WaitVisible("#username", chromedp.ByID),
			chromedp.SendKeys("#username", user, chromedp.ByID), chromedp.SendKeys("#password", testPassword, chromedp.ByID),
			chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery))
		wait("logged in", `document.getElementById("view-login").hidden`)
		if landing != "" {
			run("go to "+landing, chromedp.Navigate(base+"/"+landing))
		}
	}
	page := func(name string, prepare func()) {
		t.Helper()
		checkAccessibility(t, bctx, name)
		screens(t, bctx, name, prepare)
	}

	run("the login page", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#username", chromedp.ByID))
	page("01-login", nil)

	login("gp", "")
	wait("the worklist", `document.querySelectorAll("#worklist tbody tr[data-session]").length === 3`)
	page("02-home-worklist", nil)

	room := `li[data-room="Room 1"]`
	run("start recording in Room 1", chromedp.Click(room+` input[name=consent]`, chromedp.ByQuery),
		chromedp.SendKeys(room+` input[name=nhs]`, "943 476 5919", chromedp.ByQuery), chromedp.Click(room+` form button[type=submit]`, chromedp.ByQuery))
	wait("recording, with lines, a provisional line and a level", `document.getElementById("rec-indicator").className.includes("recording") &&
		document.querySelectorAll("#transcript li.segment").length >= 3 && !!document.querySelector("#transcript li.provisional") &&
		document.getElementById("level-text").textContent === "good"`)
	page("03-recording", nil)
	var recording string
	run("session id", chromedp.Evaluate(`location.hash.split("/")[2]`, &recording))
	if st := e.login("gp").do("POST", "/api/sessions/"+recording+"/pause", nil, nil); st != 200 {
		t.Fatalf("pause: %d", st)
	}

	run("open the consultation to review", chromedp.Navigate(base+"/#/session/"+review))
	wait("30 lines and the check", `document.querySelectorAll("#transcript li.segment").length === 30 && document.querySelectorAll("#approval-check li[data-item]").length === 3`)
	run("focus the fourth line", chromedp.Evaluate(`focusLine(document.querySelector("#transcript li.segment:nth-child(4)")); true`, nil))
	page("04-review", func() {
		run("back to the top", chromedp.Evaluate(`document.getElementById("transcript-box").scrollTop = 0; focusLine(document.querySelector("#transcript li.segment:nth-child(4)")); true`, nil))
	})
	run("edit the fourth line, open the second line's speaker menu", chromedp.Evaluate(`(() => {
		startEdit(document.querySelector("#transcript li.segment:nth-child(4)").dataset.id);
		document.querySelector("#transcript li.segment:nth-child(4) textarea").value += " and green";
		openSpeakerMenu(document.querySelector("#transcript li.segment:nth-child(2)").dataset.id); return true; })()`, nil))
	page("05-review-editing", nil)
	run("close the menu", chromedp.Evaluate(`closeForms(); cancelEdit(S.editing); toggleShortcuts(); true`, nil))
	page("06-review-shortcuts", nil)

	run("the held note", chromedp.Navigate(base+"/#/session/"+held))
	wait("held, with what to do", `document.getElementById("delivery").dataset.state === "held"`)
	page("07-approved-held", nil)

	// The login ends on another device while an edit is being typed.
	run("the consultation to review again", chromedp.Navigate(base+"/#/session/"+review))
	wait("30 lines", `document.querySelectorAll("#transcript li.segment").length === 30`)
	run("type an edit", chromedp.Evaluate(`(() => { startEdit("s3"); document.querySelector("#text-s3").value = "Is it a dry cough?"; return true; })()`, nil))
	if _, err := st.DeleteLogins(ctx, doc.ID); err != nil {
		t.Fatal(err)
	}
	run("save it", chromedp.Evaluate(`saveEdit("s3"); true`, nil))
	wait("the signed-out banner", `!document.getElementById("conn-banner").hidden && !document.getElementById("relogin-form").hidden`)
	page("08-signed-out", nil)

	login("it", "")
	wait("the admin's rooms", `document.querySelectorAll("#room-list li[data-room]").length === 3 && !document.getElementById("admin-panel").hidden`)
	page("09-admin-rooms", nil)
	run("the write-back queue", chromedp.Navigate(base+"/#/admin/writeback"))
	wait("the queue", `document.querySelectorAll("#writeback-table tbody tr[data-delivery]").length === 2 && !!document.querySelector("#writeback-table tr[data-state=held] button.retry")`)
	page("10-admin-writeback", nil)

	login("audit", "")
	wait("the audit trail", `!document.getElementById("view-audit").hidden && document.querySelectorAll("#audit-table tbody tr[data-seq]").length > 20`)
	run("verify", chromedp.Click("#audit-verify", chromedp.ByID))
	wait("verified", `document.getElementById("audit-verify-result").textContent.includes("intact")`)
	page("11-auditor", nil)

	login("cso", "cso.html")
	wait("the CSO's flags and charts", `!document.getElementById("view-cso").hidden && document.querySelectorAll("#flag-list li[data-flag]").length === 1 && document.querySelectorAll("#chart-week svg rect.bar").length === 1`)
	wait("no edit rate for the draft with no words", `[...document.querySelectorAll("#chart-clinician svg text.na")].length === 1 &&
		!document.body.innerText.includes("3200") && document.querySelector("#table-clinician").innerText.includes("n/a")`)
	page("12-cso", nil)
}
