package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"scribe/internal/domain"
	"scribe/internal/store"
)

// toneRoomKind is the source kind of the test rooms in this file: a room microphone that
// hears Seconds of a tone at once, then silence until the clinician pauses or stops (like
// a real microphone, the session does not end by itself). The fake transcriber turns each
// second into one line, so a room with {"seconds": 20} gives a 20-line transcript.
const toneRoomKind = store.SourceDevice

type toneConfig struct {
	Seconds float64 `json:"seconds"`
	Hz      float64 `json:"hz"`
}

// toneSource yields its tone in 100 ms chunks without pacing, then blocks until closed.
type toneSource struct {
	left   int
	phase  int
	hz     float64
	closed chan struct{}
	once   sync.Once
}

func openToneSource(_ context.Context, room store.Room) (domain.AudioSource, error) {
	var c toneConfig
	if err := json.Unmarshal(room.SourceConfig, &c); err != nil {
		return nil, err
	}
	if c.Hz == 0 {
		c.Hz = 440
	}
	return &toneSource{left: int(c.Seconds * domain.SampleRate), hz: c.Hz, closed: make(chan struct{})}, nil
}

func (s *toneSource) Channels() int { return 1 }

func (s *toneSource) Read(ctx context.Context) ([][]float32, error) {
	if s.left > 0 {
		n := min(s.left, domain.SampleRate/10)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(0.3 * math.Sin(2*math.Pi*s.hz*float64(s.phase+i)/domain.SampleRate))
		}
		s.phase += n
		s.left -= n
		return [][]float32{x}, nil
	}
	select {
	case <-s.closed:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *toneSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// uiRig is a server with one clinician ("gp") and a tone room, and a Chromium tab.
type uiRig struct {
	t    *testing.T
	e    *testEnv
	doc  store.User
	room store.Room
	bctx context.Context
	base string

	mu         sync.Mutex
	exceptions []string // uncaught exceptions in the page
}

func newUIRig(t *testing.T, toneSeconds float64, mod func(*Config, *Deps)) *uiRig {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (present in the sid root where `make test` runs): %v", chromiumPath, err)
	}
	e := newEnv(t, func(c *Config, d *Deps) {
		d.Sources = map[string]SourceFactory{toneRoomKind: openToneSource}
		if mod != nil {
			mod(c, d)
		}
	})
	r := &uiRig{t: t, e: e, base: strings.TrimSuffix(e.ts.URL, "/")}
	r.doc = e.user("gp", store.RoleClinician)
	r.room = e.room("Room 1", toneRoomKind, toneConfig{Seconds: toneSeconds}, r.doc.ID)
	r.bctx = startChromium(t, nil)
	chromedp.ListenTarget(r.bctx, func(ev any) {
		if ex, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
			msg := ex.ExceptionDetails.Text
			if ex.ExceptionDetails.Exception != nil {
				msg += " " + ex.ExceptionDetails.Exception.Description
			}
			r.mu.Lock()
			r.exceptions = append(r.exceptions, msg)
			r.mu.Unlock()
		}
	})
	t.Cleanup(func() { screenshotOnFailure(t, r.bctx) })
	return r
}

func (r *uiRig) run(name string, actions ...chromedp.Action) {
	r.t.Helper()
	browserStep(r.t, r.bctx, 30*time.Second, name, actions...)
}

func (r *uiRig) wait(name, cond string) {
	r.t.Helper()
	waitBrowserJS(r.t, r.bctx, 20*time.Second, name, cond)
}

// eval runs JavaScript in the page (awaiting a promise) and decodes its value into out.
func (r *uiRig) eval(js string, out any) {
	r.t.Helper()
	r.run("evaluate "+js, chromedp.Evaluate(js, out, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
}

// pageExceptions returns the uncaught exceptions the page has thrown so far.
func (r *uiRig) pageExceptions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.exceptions...)
}

// login logs in through the page's form.
func (r *uiRig) login(user string) {
	r.t.Helper()
	r.run("log in as "+user, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible("#username", chromedp.ByID),
		chromedp.SendKeys("#username", user, chromedp.ByID), chromedp.SendKeys("#password", testPassword, chromedp.ByID),
		chromedp.Click(`#login-form button[type=submit]`, chromedp.ByQuery))
	r.wait("logged in", `!document.getElementById("view-login") || document.getElementById("view-login").hidden`)
}

// startInRoom starts a consultation through the page: the consent box ticked, Start pressed.
func (r *uiRig) startInRoom(name string) {
	r.t.Helper()
	room := fmt.Sprintf(`li[data-room=%q]`, name)
	r.run("start in "+name, chromedp.WaitVisible(room+` input[name=consent]`, chromedp.ByQuery),
		chromedp.Click(room+` input[name=consent]`, chromedp.ByQuery), chromedp.Click(room+` form button[type=submit]`, chromedp.ByQuery))
}

// open shows a session in the tab.
func (r *uiRig) open(id string) {
	r.t.Helper()
	r.run("open session "+id, chromedp.Navigate(r.base+"/#/session/"+id))
	r.wait("the session view", `!document.getElementById("view-session").hidden && location.hash.includes(`+jsString(id)+`)`)
}

// seed stores a stopped consultation of the rig's clinician: one line per text ("" is
// a line where speech was heard but no words were decoded), 5 s apart.
func (r *uiRig) seed(nhs string, texts ...string) (string, []store.Segment) {
	r.t.Helper()
	ctx := context.Background()
	st := r.e.srv.Store()
	c, err := st.StartConsultation(ctx, store.NewConsultation{RoomID: r.room.ID, ClinicianID: r.doc.ID, Consent: true, NHSNumber: nhs})
	if err != nil {
		r.t.Fatal(err)
	}
	var segs []store.Segment
	for i, text := range texts {
		seg := domain.Segment{Start: float64(5 * i), End: float64(5*i + 4), Speaker: domain.SpeakerClinician, Text: text}
		if i%2 == 1 {
			seg.Speaker = domain.SpeakerPatient
		}
		if text == "" {
			seg.Flags = []domain.Flag{domain.FlagUntranscribed}
		}
		g, err := st.InsertCommitted(ctx, c.ID, seg)
		if err != nil {
			r.t.Fatal(err)
		}
		segs = append(segs, g)
	}
	if _, err := st.SetState(ctx, c.ID, store.StateStopped, float64(5*len(texts))); err != nil {
		r.t.Fatal(err)
	}
	return c.ID, segs
}

// review seeds a stopped consultation (seed), logs in as its clinician and opens it.
func (r *uiRig) review(nhs string, texts ...string) (string, []store.Segment) {
	r.t.Helper()
	id, segs := r.seed(nhs, texts...)
	r.login("gp")
	r.open(id)
	r.wait(fmt.Sprintf("%d lines", len(texts)), fmt.Sprintf(`document.querySelectorAll("#transcript li.segment").length === %d`, len(texts)))
	return id, segs
}

// segment reads one segment from the store.
func (r *uiRig) segment(sessionID, id string) store.Segment {
	r.t.Helper()
	g, err := r.e.srv.Store().Segment(context.Background(), sessionID, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return g
}

func (r *uiRig) consultation(id string) store.Consultation {
	r.t.Helper()
	c, err := r.e.srv.Store().Consultation(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// readThrough scrolls the transcript through, top to bottom, most of a screenful at a
// time, pausing on each long enough for its lines to count as read.
const readThrough = `(async () => {
	const b = document.getElementById("transcript-box");
	const pause = () => new Promise((ok) => setTimeout(ok, 1300));
	b.scrollTop = 0; await pause();
	for (let i = 0; i < 200 && b.scrollTop + b.clientHeight < b.scrollHeight - 1; i++) {
		b.scrollTop += Math.max(40, b.clientHeight * 0.7);
		await pause();
	}
	return true; })()`

// revealAll reads the transcript through (readThrough).
func (r *uiRig) revealAll() {
	r.t.Helper()
	var done bool
	r.eval(readThrough, &done)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// nodeText is a node's visible text ("" when it is missing or hidden).
func nodeText(sel string) string {
	return fmt.Sprintf(`(() => { const n = document.querySelector(%s); return n && n.offsetParent !== null ? n.innerText : ""; })()`, jsString(sel))
}

// focusNode focuses a node by selector.
func focusNode(sel string) chromedp.Action {
	return chromedp.Focus(sel, chromedp.ByQuery, chromedp.NodeVisible)
}

// repoDir is the module root (where go.mod is).
func repoDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// keyboard drives the page as a keyboard-only user and counts what they press: Tab
// presses, other keys (shortcuts, Enter, Space, arrows) and typed characters.
type keyboard struct {
	r                 *uiRig
	tabs, keys, typed int
}

// press presses one key (a kb constant or a character) and counts it.
func (k *keyboard) press(key string) {
	k.r.t.Helper()
	if key == kb.Tab {
		k.tabs++
	} else {
		k.keys++
	}
	k.r.run("press "+fmt.Sprintf("%q", key), chromedp.KeyEvent(key))
}

// typeText types text into the focused field, counting each character.
func (k *keyboard) typeText(s string) {
	k.r.t.Helper()
	k.typed += len([]rune(s))
	k.r.run("type", chromedp.KeyEvent(s))
}

// focused reports whether the focused element matches a CSS selector.
func (k *keyboard) focused(sel string) bool {
	k.r.t.Helper()
	var ok bool
	k.r.eval(`!!document.activeElement && document.activeElement.matches(`+jsString(sel)+`)`, &ok)
	return ok
}

// tabTo presses Tab until the element matching sel has the focus.
func (k *keyboard) tabTo(sel string) {
	k.r.t.Helper()
	for i := 0; !k.focused(sel); i++ {
		if i == 400 {
			var at string
			k.r.eval(`document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : "nothing"`, &at)
			k.r.t.Fatalf("400 Tab presses did not reach %s (focus is on %s)", sel, at)
		}
		k.press(kb.Tab)
	}
}

// mouse drives the page as a mouse user and counts clicks and wheel notches (100 px each).
type mouse struct {
	r              *uiRig
	clicks, wheels int
}

type rect struct{ X, Y, W, H, VW, VH float64 }

func (m *mouse) rectOf(sel string) rect {
	m.r.t.Helper()
	var rc rect
	m.r.eval(`(() => { const e = document.querySelector(`+jsString(sel)+`); if (!e) return null; const b = e.getBoundingClientRect();
		return {X: b.x, Y: b.y, W: b.width, H: b.height, VW: window.innerWidth, VH: window.innerHeight}; })()`, &rc)
	if rc.VW == 0 {
		m.r.t.Fatalf("mouse: nothing matches %s", sel)
	}
	return rc
}

// wheel turns the wheel n notches (down when n > 0) with the pointer over the element.
func (m *mouse) wheel(over string, n int) {
	m.r.t.Helper()
	rc := m.rectOf(over)
	x, y := rc.X+rc.W/2, max(1, min(rc.VH-2, rc.Y+min(rc.H/2, 60)))
	d := 100.0
	if n < 0 {
		d, n = -d, -n
	}
	for range n {
		m.wheels++
		m.r.run("wheel", chromedp.ActionFunc(func(ctx context.Context) error {
			return input.DispatchMouseEvent(input.MouseWheel, x, y).WithDeltaY(d).Do(ctx)
		}))
		time.Sleep(30 * time.Millisecond)
	}
}

// click clicks the element's centre, first turning the wheel (counted) over whatever
// scrolls it — its scrolling box, then the page — until it is on screen, as a user would.
func (m *mouse) click(sel string) {
	m.r.t.Helper()
	for i := 0; ; i++ {
		var w struct {
			Dir  int    `json:"dir"`
			Over string `json:"over"`
		}
		m.r.eval(`(() => { const e = document.querySelector(`+jsString(sel)+`); const r = e.getBoundingClientRect();
			for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
				if (p.scrollHeight <= p.clientHeight || !/(auto|scroll)/.test(getComputedStyle(p).overflowY)) continue;
				const b = p.getBoundingClientRect();
				if (r.top < b.top) return {dir: -1, over: "#" + p.id};
				if (r.bottom > b.bottom) return {dir: 1, over: "#" + p.id};
			}
			if (r.top < 0) return {dir: -1, over: "body"};
			if (r.bottom > innerHeight) return {dir: 1, over: "body"};
			return {dir: 0}; })()`, &w)
		if w.Dir == 0 {
			break
		}
		if i == 100 {
			m.r.t.Fatalf("mouse: %s stays off screen", sel)
		}
		m.wheel(w.Over, w.Dir)
	}
	rc := m.rectOf(sel)
	m.clicks++
	m.r.run("click "+sel, chromedp.MouseClickXY(rc.X+rc.W/2, rc.Y+rc.H/2))
}

// evalBool evaluates a JavaScript condition.
func (r *uiRig) evalBool(cond string) bool {
	r.t.Helper()
	var ok bool
	r.eval(cond, &ok)
	return ok
}
