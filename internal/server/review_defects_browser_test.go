package server

// Chromium tests for the safety defects of the clinician's screens (issue 13), each seen
// to fail on the page as it was before the fix.

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"scribe/internal/audit"
	"scribe/internal/domain"
	"scribe/internal/fhir"
	"scribe/internal/store"
)

// Defect 1: a new session showed the previous patient's approved note (header, NHS
// number, text) until its first line, and a session stopped before its first line could
// never be opened (every snapshot without lines threw in the page).
func TestBrowserNewSessionNeverShowsPreviousPatient(t *testing.T) {
	r := newUIRig(t, 0, nil) // the room hears nothing: no line while the test watches
	ctx := context.Background()
	prev, _ := r.seed("9434765919", "the previous patient's words")
	if _, err := r.e.srv.Store().Approve(ctx, prev, r.doc.ID, nil); err != nil {
		t.Fatal(err)
	}
	r.login("gp")
	r.open(prev)
	r.wait("the previous note", nodeText("#document-text")+`.includes("the previous patient's words")`)

	// Back to the rooms and on to the next patient, in the same tab.
	r.run("the rooms", chromedp.Navigate(r.base+"/#/rooms"))
	room := `li[data-room="Room 1"]`
	r.run("start the next consultation", chromedp.WaitVisible(room+` input[name=consent]`, chromedp.ByQuery))
	// From here on the page records whenever it shows the previous patient on another
	// session's page.
	var ok bool
	r.eval(`(() => {
		window.__leaks = [];
		const check = () => {
			const m = location.hash.match(/^#\/session\/(.+)$/);
			if (!m || m[1] === `+jsString(prev)+`) return;
			const text = document.body.innerText;
			for (const bad of ["943 476 5919", "9434765919", "the previous patient's words"]) if (text.includes(bad)) window.__leaks.push(bad);
		};
		new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
		window.addEventListener("hashchange", check);
		return true; })()`, &ok)
	r.run("consent, NHS number, start",
		chromedp.Click(room+` input[name=consent]`, chromedp.ByQuery),
		chromedp.SendKeys(room+` input[inputmode=numeric]`, "401 023 2137", chromedp.ByQuery),
		chromedp.Click(room+` form button[type=submit]`, chromedp.ByQuery))
	r.wait("the new session's page", `location.hash.startsWith("#/session/") && !location.hash.includes(`+jsString(prev)+`)`)
	r.wait("the new patient's NHS number", nodeText("#session-meta")+`.includes("401 023 2137")`)
	r.wait("the RECORDING state", `document.getElementById("rec-indicator").className.includes("recording")`)
	time.Sleep(2 * time.Second) // a while recording with no line yet
	var leaks []string
	r.eval(`window.__leaks`, &leaks)
	if len(leaks) > 0 {
		t.Fatalf("the new session's page showed the previous patient: %q", leaks)
	}
	if ex := r.pageExceptions(); len(ex) > 0 {
		t.Fatalf("the page threw: %q", ex)
	}

	// Stopped before its first line: it shows as stopped, opens again, and cannot be approved.
	r.run("stop", chromedp.Click("#btn-stop", chromedp.ByID))
	r.wait("the STOPPED state", `document.getElementById("rec-indicator").className.includes("stopped")`)
	var id string
	r.eval(`location.hash.split("/")[2]`, &id)
	r.run("reload", chromedp.Reload())
	r.wait("the stopped session after a reload", `!document.getElementById("view-session").hidden && document.getElementById("rec-indicator").className.includes("stopped")`)
	r.wait("the empty note explained", nodeText("#approval-check")+`.includes("empty")`)
	if ex := r.pageExceptions(); len(ex) > 0 {
		t.Fatalf("the page threw: %q", ex)
	}
	if c := r.consultation(id); c.State != store.StateStopped {
		t.Fatalf("the empty session is %s", c.State)
	}
}

// Defect 2: approval accepted lines with no text and open "missing speech" flags, and
// the delivered note silently dropped those lines; an empty note could be approved.
func TestBrowserApprovalNeverDropsSpeech(t *testing.T) {
	var mu sync.Mutex
	var notes []ApprovedNote
	r := newUIRig(t, 0, func(_ *Config, d *Deps) {
		d.OnApproved = func(_ context.Context, _ *sql.Tx, n ApprovedNote) error {
			mu.Lock()
			defer mu.Unlock()
			notes = append(notes, n)
			return nil
		}
	})
	ctx := context.Background()
	st := r.e.srv.Store()
	id, segs := r.seed("9434765919", "Good morning.", "", "Any chest pain?", "")
	flag, err := st.AddFlag(ctx, id, segs[2].ID, r.doc.ID, domain.FlagMissingSpeech, "the answer is missing")
	if err != nil {
		t.Fatal(err)
	}
	r.login("gp")
	r.open(id)
	r.wait("four lines", `document.querySelectorAll("#transcript li.segment").length === 4`)
	r.revealAll()
	r.wait("the confirmation box enabled", `!document.getElementById("confirm-reviewed").disabled`)
	var clicked bool
	r.eval(`(() => { const c = document.getElementById("confirm-reviewed"); if (!c.checked) c.click();
		document.getElementById("btn-approve").click(); return true; })()`, &clicked)
	time.Sleep(1500 * time.Millisecond)
	if c := r.consultation(id); c.State == store.StateApproved {
		t.Fatalf("approved with two lines without text and an open flag: the note is %q", c.DocumentText)
	}
	r.wait("the check lists each line without text and the flag", `document.querySelectorAll("#approval-check li[data-item]").length === 3 &&
		[...document.querySelectorAll("#approval-check li[data-item]")].map(li => li.dataset.item).sort().join() === `+
		jsString(strings.Join([]string{"flag:" + fmt.Sprint(flag.ID), "untranscribed:" + segs[1].ID, "untranscribed:" + segs[3].ID}, ","))+``)
	// Each item is confirmed on its own.
	r.eval(`(() => { for (const c of document.querySelectorAll("#approval-check li[data-item] input[type=checkbox]")) c.click(); return true; })()`, &clicked)
	r.wait("Approve ready", `document.getElementById("btn-approve").getAttribute("aria-disabled") === "false"`)
	r.eval(`(() => { document.getElementById("btn-approve").click(); return true; })()`, &clicked)
	r.wait("the APPROVED state", `document.getElementById("rec-indicator").className.includes("approved")`)

	c := r.consultation(id)
	for _, want := range []string{"[00:00:05] Patient: " + store.UntranscribedMarker, "[00:00:15] Patient: " + store.UntranscribedMarker, "[00:00:10] Clinician: Any chest pain?"} {
		if !strings.Contains(c.DocumentText, want+"\n") {
			t.Fatalf("the approved note lacks %q:\n%s", want, c.DocumentText)
		}
	}
	// The marker reaches the record: it is in the DocumentReference's attachment.
	mu.Lock()
	if len(notes) != 1 {
		t.Fatalf("%d notes handed to the write-back", len(notes))
	}
	n := notes[0]
	mu.Unlock()
	doc, err := fhir.BuildDocumentReference(fhir.Note{DocumentID: n.DocumentID, SessionID: n.SessionID, NHSNumber: n.NHSNumber,
		Clinician: fhir.Clinician{DisplayName: "Dr gp", GMCNumber: "7654321"}, PracticeODS: "A81001",
		ConsultationStart: n.ConsultationStart, ConsultationEnd: n.ConsultationStop, ApprovedAt: n.ApprovedAt, Text: n.Text}, fhir.Config{}, fhir.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	att, _ := base64.StdEncoding.DecodeString(*doc.Content[0].Attachment.Data)
	if strings.Count(string(att), store.UntranscribedMarker) != 2 || !strings.Contains(string(att), "Good morning.") {
		t.Fatalf("the record's attachment:\n%s", att)
	}
	if got := countAction(t, st, id, audit.ActionApprovalConfirm, ""); got != 3 {
		t.Fatalf("%d audited confirmations, want 3 (two lines without text, one flag)", got)
	}

	// An empty note cannot be approved at all.
	empty, _ := r.seed("9434765919")
	cl := r.e.login("gp")
	if st, msg := cl.errorOf("POST", "/api/sessions/"+empty+"/approve", map[string]any{"reviewed": true}); st != 409 || !strings.Contains(msg, "empty") {
		t.Fatalf("approving an empty note: %d %q", st, msg)
	}
}

// Defect 3: after a live session in the same tab the "read to the end" gate was already
// met, because the page's own auto-scroll counted as reading.
func TestBrowserLiveAutoScrollIsNotReading(t *testing.T) {
	r := newUIRig(t, 40, nil)
	r.login("gp")
	r.startInRoom("Room 1")
	r.wait("40 lines while recording", `document.querySelectorAll("#transcript li.segment").length === 40 && document.getElementById("rec-indicator").className.includes("recording")`)
	r.wait("the live view at the end of the transcript", `(() => { const b = document.getElementById("transcript-box"); return b.scrollHeight > b.clientHeight + 100 && b.scrollTop + b.clientHeight >= b.scrollHeight - 4; })()`)
	r.run("stop", chromedp.Click("#btn-stop", chromedp.ByID))
	r.wait("the STOPPED state", `document.getElementById("rec-indicator").className.includes("stopped")`)
	time.Sleep(time.Second)
	var enabled bool
	r.eval(`!document.getElementById("confirm-reviewed").disabled || document.getElementById("btn-approve").getAttribute("aria-disabled") !== "true"`, &enabled)
	if enabled {
		t.Fatal("the review gate counts the live auto-scroll as reading: approval is offered without the clinician having gone through the lines")
	}
	r.revealAll()
	r.wait("the confirmation box enabled after reading through", `!document.getElementById("confirm-reviewed").disabled`)
}

// Defect 4: arrow keys on a closed speaker dropdown saved a speaker change at once.
func TestBrowserArrowKeysNeverChangeSpeaker(t *testing.T) {
	r := newUIRig(t, 0, nil)
	id, segs := r.review("", "Good morning.", "Morning, doctor.")
	first := `#transcript li.segment:nth-of-type(1) .speaker`
	r.run("arrow keys on the first line's speaker", focusNode(first),
		chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowUp), chromedp.KeyEvent(kb.ArrowRight))
	time.Sleep(1500 * time.Millisecond)
	if g := r.segment(id, segs[0].ID); g.Speaker != domain.SpeakerClinician || g.Version != segs[0].Version {
		t.Fatalf("arrow keys changed the line: speaker %s, version %d (was clinician, %d)", g.Speaker, g.Version, segs[0].Version)
	}
}

// Defect 5: "Skip to main content" changed the URL to #main; the router then showed the
// rooms and closed the live websocket in the middle of a recording.
func TestBrowserSkipLinkKeepsTheLiveSession(t *testing.T) {
	r := newUIRig(t, 3, nil)
	r.login("gp")
	r.startInRoom("Room 1")
	r.wait("recording with a line", `document.getElementById("rec-indicator").className.includes("recording") && document.querySelectorAll("#transcript li.segment").length > 0`)
	var hash string
	r.eval(`location.hash`, &hash)
	r.run("follow the skip link by keyboard", focusNode(`a[href="#main"]`), chromedp.KeyEvent(kb.Enter))
	time.Sleep(time.Second)
	var view struct {
		Hash     string `json:"hash"`
		Session  bool   `json:"session"`
		SocketUp bool   `json:"socket"`
		Focus    string `json:"focus"`
	}
	r.eval(`({hash: location.hash, session: !document.getElementById("view-session").hidden,
		socket: !!(S && S.sock && S.sock.ws && S.sock.ws.readyState === WebSocket.OPEN), focus: document.activeElement.id})`, &view)
	if view.Hash != hash || !view.Session || !view.SocketUp || view.Focus != "main" {
		t.Fatalf("after the skip link: %+v (want hash %s, the session shown, its socket open, focus on main)", view, hash)
	}
	if c := r.consultation(strings.TrimPrefix(hash, "#/session/")); c.State != store.StateRecording {
		t.Fatalf("the session is %s", c.State)
	}
}

// Defect 6: "Split at cursor" after typing lost the typed text and failed with "split
// offset 38 must be inside the text (1 to -1)".
func TestBrowserSplitKeepsTypedText(t *testing.T) {
	r := newUIRig(t, 0, nil)
	id, _ := r.review("", "alpha beta", "")
	split := func(n int, typed string, at int) {
		t.Helper()
		li := fmt.Sprintf(`#transcript li.segment:nth-of-type(%d)`, n)
		var ok bool
		r.eval(`(() => { document.querySelector(`+jsString(li+` button.edit`)+`).click(); return true; })()`, &ok)
		r.run("type", chromedp.WaitVisible(li+` textarea`, chromedp.ByQuery),
			chromedp.Evaluate(`(() => { const t = document.querySelector(`+jsString(li+` textarea`)+`); t.focus(); t.select(); return true; })()`, nil),
			chromedp.KeyEvent(kb.Delete), chromedp.SendKeys(li+` textarea`, typed, chromedp.ByQuery),
			chromedp.Evaluate(fmt.Sprintf(`(() => { const t = document.querySelector(%s); t.setSelectionRange(%d, %d); return true; })()`, jsString(li+` textarea`), at, at), nil))
		r.eval(`(() => { const b = [...document.querySelectorAll(`+jsString(li+` button`)+`)].find(b => b.textContent.includes("Split")); b.click(); return true; })()`, &ok)
	}
	texts := func() []string {
		all, err := r.e.srv.Store().Segments(context.Background(), id, false)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range all {
			out = append(out, g.Text)
		}
		return out
	}
	split(1, "alpha beta gamma delta", len("alpha beta "))
	waitFor(t, 10*time.Second, "the typed line split in two", func() bool { return strings.Join(texts(), "|") == "alpha beta|gamma delta|" })
	r.wait("three lines on the page", `document.querySelectorAll("#transcript li.segment").length === 3`)
	split(3, "one two", len("one "))
	waitFor(t, 10*time.Second, "the line without text typed and split", func() bool { return strings.Join(texts(), "|") == "alpha beta|gamma delta|one|two" })
}

// liveServer is a scribe server on a fixed loopback port that a test can stop and start
// again on the same data, as a restart would.
type liveServer struct {
	t      *testing.T
	srv    *Server
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startLiveServer(t *testing.T, dir, listen string) *liveServer {
	t.Helper()
	srv, err := New(Config{DataDir: dir, Listen: listen, ShutdownTimeout: 5 * time.Second},
		Deps{Transcriber: fakeTranscriber{segSeconds: 1}, Stdout: &syncBuffer{}, Sources: map[string]SourceFactory{toneRoomKind: openToneSource}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls := &liveServer{t: t, srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { ls.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-ls.done:
		t.Fatalf("Run: %v", err)
	}
	return ls
}

// stop shuts the server down (once; later calls do nothing).
func (ls *liveServer) stop() {
	ls.once.Do(func() {
		ls.cancel()
		if err := <-ls.done; err != nil {
			ls.t.Errorf("Run: %v", err)
		}
	})
}

// Defect 7: nothing showed when the connection or the login was lost. Now a banner says
// so, the page reconnects by itself, a lost login is signed back in on the page, and an
// edit typed meanwhile is never lost.
func TestBrowserConnectionAndLoginLoss(t *testing.T) {
	dir, listen := t.TempDir(), freePort(t)
	ls := startLiveServer(t, dir, listen)
	defer func() { ls.stop() }()
	ctx := context.Background()
	st := ls.srv.Store()
	doc, err := st.CreateUser(ctx, store.NewUser{Username: "gp", DisplayName: "Dr gp", Role: store.RoleClinician, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	room, err := st.CreateRoom(ctx, store.NewRoom{Name: "Room 1", SourceKind: toneRoomKind, SourceConfig: []byte(`{"seconds": 0}`), ClinicianID: doc.ID})
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.StartConsultation(ctx, store.NewConsultation{RoomID: room.ID, ClinicianID: doc.ID, Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := st.InsertCommitted(ctx, c.ID, domain.Segment{Start: 0, End: 3, Speaker: domain.SpeakerClinician, Text: "first words"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetState(ctx, c.ID, store.StateStopped, 3); err != nil {
		t.Fatal(err)
	}

	bctx := startChromium(t, nil)
	defer screenshotOnFailure(t, bctx)
	r := &uiRig{t: t, bctx: bctx, base: "https://" + listen}
	r.login("gp")
	r.open(c.ID)
	r.wait("the line", `document.querySelectorAll("#transcript li.segment").length === 1`)
	line := `#transcript li.segment:nth-of-type(1)`
	var ok bool
	r.eval(`(() => { document.querySelector(`+jsString(line+` button.edit`)+`).click(); return true; })()`, &ok)
	r.run("type an edit, not saved yet", chromedp.WaitVisible(line+` textarea`, chromedp.ByQuery),
		chromedp.Evaluate(`(() => { const t = document.querySelector(`+jsString(line+` textarea`)+`); t.focus(); t.select(); return true; })()`, nil),
		chromedp.KeyEvent(kb.Delete), chromedp.SendKeys(line+` textarea`, "words typed while the server restarts", chromedp.ByQuery))
	typed := `(document.querySelector(` + jsString(line+` textarea`) + `) || {}).value === "words typed while the server restarts"`

	ls.stop()
	r.wait("the connection-lost banner", nodeText("#conn-banner")+`.toLowerCase().includes("connection")`)
	r.wait("the typed edit kept", typed)
	ls = startLiveServer(t, dir, listen)
	st = ls.srv.Store()
	waitBrowserJS(t, bctx, 30*time.Second, "the banner to clear after the server is back", nodeText("#conn-banner")+` === "" && S.sock.ws && S.sock.ws.readyState === WebSocket.OPEN`)
	r.wait("the typed edit still kept", typed)

	// The login ends elsewhere ("log out everywhere" on another device).
	if _, err := st.DeleteLogins(ctx, doc.ID); err != nil {
		t.Fatal(err)
	}
	r.eval(`(() => { document.querySelector(`+jsString(line+` button.save`)+`).click(); return true; })()`, &ok)
	r.wait("the signed-out banner with a sign-in form", nodeText("#conn-banner")+`.toLowerCase().includes("sign in") && !!document.querySelector("#relogin-form") && document.querySelector("#relogin-form").offsetParent !== null`)
	r.wait("the session still on screen with the typed edit", `!document.getElementById("view-session").hidden && `+typed)
	r.run("sign in again on the page", chromedp.SendKeys("#relogin-password", testPassword, chromedp.ByID),
		chromedp.Click(`#relogin-form button[type=submit]`, chromedp.ByQuery))
	r.wait("the banner gone", nodeText("#conn-banner")+` === ""`)
	r.eval(`(() => { document.querySelector(`+jsString(line+` button.save`)+`).click(); return true; })()`, &ok)
	waitFor(t, 10*time.Second, "the edit typed during the outage saved", func() bool {
		s, err := st.Segment(ctx, c.ID, g.ID)
		return err == nil && s.Text == "words typed while the server restarts"
	})

}
