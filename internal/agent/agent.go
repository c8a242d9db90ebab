// Package agent is the room agent (scribe agent): a box in the consultation room that
// captures the microphones, cleans the audio and runs the VAD locally, and sends only
// speech frames to the gateway over a websocket with TLS, authenticated by a room-bound
// token and the gateway's pinned certificate. Frames not yet acknowledged are kept in a
// bounded in-memory buffer and resent after a reconnect; nothing is written to disk
// except the enrolment config (URL, token, pin — never audio).
package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"scribe/internal/agent/wire"
	"scribe/internal/diarize"
	"scribe/internal/domain"
	"scribe/internal/frontend"
)

// DefaultConfigPath is where `scribe agent enrol` writes and `scribe agent run` reads.
const DefaultConfigPath = "/etc/scribe/agent.json"

// DefaultBuffer is how much unacknowledged speech an agent holds through a network cut.
const DefaultBuffer = 2 * time.Minute

// Config is an enrolled agent's file: where the gateway is, how to prove who we are, and
// which certificate the gateway must present. It holds no audio and no patient data.
type Config struct {
	URL         string `json:"url"`
	Token       string `json:"token"`
	Fingerprint string `json:"fingerprint"` // SHA-256 of the gateway's certificate
	AgentID     int64  `json:"agent_id"`
	RoomID      int64  `json:"room_id"`
	RoomName    string `json:"room_name"`
}

// LoadConfig reads an agent config, refusing one others can read (it holds the token).
func LoadConfig(path string) (Config, error) {
	var c Config
	fi, err := os.Stat(path)
	if err != nil {
		return c, fmt.Errorf("agent config: %w (enrol first: scribe agent enrol URL CODE)", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return c, fmt.Errorf("agent config %s is readable by others (mode %v): it holds the agent's token; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("agent config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("agent config %s: %w", path, err)
	}
	if c.URL == "" || c.Token == "" || c.Fingerprint == "" {
		return c, fmt.Errorf("agent config %s lacks url, token or fingerprint; enrol again", path)
	}
	return c, nil
}

// Save writes the config with mode 0600 (directory 0700), replacing any old one whole.
func (c Config) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".agent-*.json")
	if err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Fingerprint is the SHA-256 of a DER certificate as colon-separated hex pairs, the form
// `openssl x509 -noout -fingerprint -sha256` prints.
func Fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	s := strings.ToUpper(hex.EncodeToString(h[:]))
	var b strings.Builder
	for i := 0; i < len(s); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i : i+2])
	}
	return b.String()
}

func normFingerprint(s string) string {
	return strings.ToUpper(strings.NewReplacer(":", "", " ", "", "SHA256=", "", "sha256=", "").Replace(strings.TrimSpace(s)))
}

// ErrPinMismatch means the gateway presented a certificate other than the pinned one.
var ErrPinMismatch = errors.New("the gateway's TLS certificate does not match the pinned fingerprint")

// pinnedTLS accepts exactly the certificate with the given fingerprint: the gateway's
// certificate is usually self-signed, so the pin, not a CA, is what authenticates it.
// With pin "" any certificate is accepted and its fingerprint stored in *seen.
func pinnedTLS(pin string, seen *string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the gateway presented no certificate")
			}
			fp := Fingerprint(cs.PeerCertificates[0].Raw)
			if seen != nil {
				*seen = fp
			}
			if pin != "" && normFingerprint(fp) != normFingerprint(pin) {
				return fmt.Errorf("%w (got %s)", ErrPinMismatch, fp)
			}
			return nil
		},
	}
}

// Enrol spends a one-time code at the gateway and returns the agent's config. When
// wantFingerprint is set the gateway's certificate must match it; either way the
// certificate's fingerprint is pinned in the config for every later connection.
func Enrol(ctx context.Context, gatewayURL, code, name, wantFingerprint string) (Config, error) {
	u, err := url.Parse(strings.TrimRight(gatewayURL, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return Config{}, fmt.Errorf("gateway URL %q: want https://host:port", gatewayURL)
	}
	var seen string
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pinnedTLS(wantFingerprint, &seen)}}
	body, _ := json.Marshal(map[string]string{"code": code, "name": name})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String()+"/api/agent/enrol", bytes.NewReader(body))
	if err != nil {
		return Config{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Config{}, fmt.Errorf("enrol at %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return Config{}, fmt.Errorf("enrol refused (%s): %s", resp.Status, errorText(data))
	}
	var out struct {
		AgentID  int64  `json:"agent_id"`
		RoomID   int64  `json:"room_id"`
		RoomName string `json:"room_name"`
		Token    string `json:"token"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.Token == "" {
		return Config{}, fmt.Errorf("enrol: unexpected answer from the gateway")
	}
	return Config{URL: u.String(), Token: out.Token, Fingerprint: seen, AgentID: out.AgentID, RoomID: out.RoomID, RoomName: out.RoomName}, nil
}

func errorText(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

// Indicator shows whether the room is being recorded (a LED next to the microphone).
type Indicator interface {
	SetRecording(on bool) error
}

// Options configure a running agent.
type Options struct {
	Config Config
	// Channels the audio source gives (1, or 2 for a clinician mic + patient mic).
	Channels int
	// Open opens the room's audio for one recording run (a microphone or a WAV replay);
	// it is closed when the run ends.
	Open func(ctx context.Context) (domain.AudioSource, error)
	// Frontend is the clean-up and VAD each run gets afresh: the gateway's own
	// (internal/frontend); NewCleaner nil sends audio as captured.
	Frontend frontend.Config
	// Microphones is the box's microphone set-up, announced to the gateway, which
	// attributes speakers by it.
	Microphones diarize.Setup
	// Buffer bounds the unacknowledged speech held through a network cut, and the time the
	// agent keeps recording while the gateway is unreachable (default DefaultBuffer).
	Buffer time.Duration
	// Indicator, when set, is switched on while recording.
	Indicator Indicator
	// Button delivers presses of the room's button (pause/resume, or ask for a start).
	Button <-chan struct{}
	// Trace, when set, gets one JSON line per speech frame queued (run, seq, start,
	// samples): diagnostics and tests. No audio.
	Trace  io.Writer
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnection attempts.
	MinBackoff, MaxBackoff time.Duration
}

// Agent is a running room agent.
type Agent struct {
	opts     Options
	buf      *Buffer
	log      *slog.Logger
	instance string

	controls  chan wire.Message
	pressWake chan struct{}
	fatal     chan error

	mu        sync.Mutex
	connected bool
	awaySince time.Time
	press     *pendingPress // the one press not yet sent (see Run)
	traceMu   sync.Mutex
}

// pendingPress is a button press waiting for the connection.
type pendingPress struct {
	at  time.Time
	run uint32 // the run it paused at the agent while the gateway was unreachable, or 0
}

// PressMaxAge bounds how old a press may be when it is finally sent: after a longer outage
// it no longer says anything useful about the room.
const PressMaxAge = 10 * time.Minute

// New checks the options.
func New(opts Options) (*Agent, error) {
	if opts.Open == nil || opts.Frontend.NewScorer == nil {
		return nil, errors.New("agent: an audio source and a VAD are required")
	}
	if opts.Channels < 1 || opts.Channels > wire.MaxChannels {
		return nil, fmt.Errorf("agent: %d channels", opts.Channels)
	}
	if err := opts.Frontend.VAD.Validate(); err != nil {
		return nil, err
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(opts.MinBackoff, 15*time.Second)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	id := make([]byte, 8)
	rand.Read(id)
	return &Agent{
		opts: opts, log: opts.Logger, instance: hex.EncodeToString(id),
		buf:      NewBuffer(int64(opts.Buffer.Seconds() * domain.SampleRate)),
		controls: make(chan wire.Message, 16), pressWake: make(chan struct{}, 1), fatal: make(chan error, 1),
		awaySince: time.Now(),
	}, nil
}

// ErrRefused means the gateway refused the agent's token (revoked, or unknown).
var ErrRefused = errors.New("the gateway refused this agent")

// recording is one run in progress.
type recording struct {
	run  uint32
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func (r *recording) halt() { r.once.Do(func() { close(r.stop) }) }

// Run connects (and reconnects) to the gateway and records when told to, until ctx is
// cancelled (nil) or the gateway refuses the agent (ErrRefused).
func (a *Agent) Run(ctx context.Context) error {
	connCtx, stopConn := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the connection: owned by Run, stopped by stopConn
		defer wg.Done()
		a.connLoop(connCtx)
	}()
	defer func() {
		stopConn()
		wg.Wait()
		a.indicate(false)
	}()

	var cur *recording
	var lastEnded uint32
	button := a.opts.Button
	ended := func() {
		lastEnded = cur.run
		cur = nil
		a.indicate(false)
	}
	stopCur := func() {
		if cur != nil {
			cur.halt()
			<-cur.done
			ended()
		}
	}
	for {
		var curDone <-chan struct{}
		if cur != nil {
			curDone = cur.done
		}
		select {
		case m := <-a.controls:
			switch m.Type {
			case "record":
				if cur != nil && cur.run == m.Run || m.Run == lastEnded {
					continue
				}
				stopCur()
				cur = &recording{run: m.Run, stop: make(chan struct{}), done: make(chan struct{})}
				rec := cur
				a.indicate(true)
				a.log.Info("recording", "run", m.Run)
				wg.Add(1)
				go func() { // one run: owned by Run, stopped by rec.halt
					defer wg.Done()
					defer close(rec.done)
					a.record(ctx, rec)
				}()
			case "idle":
				if cur != nil && (m.Run == 0 || m.Run == cur.run) {
					a.log.Info("recording ends", "run", cur.run, "reason", m.Reason)
					stopCur()
				}
			}
		case <-curDone:
			ended()
		case _, ok := <-button:
			if !ok {
				button = nil // the button watcher stopped
				continue
			}
			// Only the last press is kept. While the gateway is unreachable a press during
			// a recording pauses right here (capture stops, the LED goes off): the person
			// who pressed it must be able to rely on it whatever the network does. The
			// gateway learns of it on reconnect and pauses the session. Any other press
			// made offline is only reported: the gateway never resumes a recording on a
			// press it hears late (see docs/agent-protocol.md, "Button").
			p := &pendingPress{at: time.Now()}
			a.mu.Lock()
			on, held := a.connected, a.press
			a.mu.Unlock()
			if !on && cur != nil {
				p.run = cur.run
				a.log.Warn("button pressed while the gateway is unreachable: recording paused here; the gateway is told when it is back", "run", cur.run)
				stopCur()
			} else if !on && held != nil && held.run != 0 {
				a.log.Warn("button pressed again while the gateway is unreachable: the pause stands; resume from the UI once it is back")
				continue
			} else if !on {
				a.log.Warn("button pressed while the gateway is unreachable: it will be reported when it is back")
			}
			a.mu.Lock()
			a.press = p
			a.mu.Unlock()
			select {
			case a.pressWake <- struct{}{}:
			default:
			}
		case err := <-a.fatal:
			stopCur()
			return err
		case <-ctx.Done():
			stopCur()
			a.drain(5 * time.Second)
			return nil
		}
	}
}

// drain gives the connection a moment to deliver what is buffered before exiting.
func (a *Agent) drain(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, n := a.buf.Held(); n == 0 {
			return
		}
		a.mu.Lock()
		on := a.connected
		a.mu.Unlock()
		if !on {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s, n := a.buf.Held(); n > 0 {
		a.log.Warn("exiting with speech the gateway has not acknowledged", "frames", n, "seconds", float64(s)/domain.SampleRate)
	}
}

func (a *Agent) indicate(on bool) {
	if a.opts.Indicator == nil {
		return
	}
	if err := a.opts.Indicator.SetRecording(on); err != nil {
		a.log.Error("recording indicator failed", "on", on, "err", err)
	}
}

// away is how long the gateway has been unreachable (0 while connected).
func (a *Agent) away() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.connected {
		return 0
	}
	return time.Since(a.awaySince)
}

// record captures one run: clean-up, VAD, and speech frames into the buffer.
func (a *Agent) record(ctx context.Context, rec *recording) {
	run := rec.run
	end := func(why string) {
		if _, err := a.buf.Add(wire.Frame{Kind: wire.KindEnd, Run: run}); err != nil {
			a.log.Error("end of run not queued", "run", run, "err", err)
		}
		a.log.Info("run ended", "run", run, "reason", why)
	}
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // stops the read when the run is halted; ends with cancel above
		select {
		case <-rec.stop:
			cancel()
		case <-readCtx.Done():
		}
	}()
	src, err := a.opts.Open(readCtx)
	if err != nil {
		a.log.Error("cannot open the audio", "err", err)
		end("audio unavailable")
		return
	}
	defer src.Close()
	nch := src.Channels()
	if nch != a.opts.Channels {
		a.log.Error("audio source channel count differs from the announced one", "source", nch, "announced", a.opts.Channels)
		end("channel mismatch")
		return
	}
	fe, err := frontend.New(a.opts.Frontend, nch)
	if err != nil {
		a.log.Error("cannot load the VAD", "err", err)
		end("VAD unavailable")
		return
	}
	defer fe.Close()
	var sentUpTo int64
	full := false
	// send queues the audio of utterances not sent yet: a growing utterance's new part
	// as soon as the segmenter returns it, so the gateway hears speech with little delay.
	send := func(us []domain.Utterance) {
		for _, u := range us {
			if full {
				return
			}
			uStart := int64(u.AudioStart()*domain.SampleRate + 0.5)
			uEnd := uStart + int64(len(u.Channels[0]))
			for from := max(sentUpTo, uStart); from < uEnd; {
				to := min(from+wire.MaxFrameSamples, uEnd)
				ch := make([][]float32, nch)
				for i := range ch {
					ch[i] = u.Channels[i][from-uStart : to-uStart]
				}
				seq, err := a.buf.Add(wire.Frame{Kind: wire.KindAudio, Run: run, Start: from, Channels: ch})
				if err != nil {
					full = true
					return
				}
				a.trace(run, seq, from, to-from)
				from, sentUpTo = to, to
			}
		}
	}
	errAway := errors.New("gateway unreachable")
	errFull := errors.New("buffer full")
	sink := func(us []domain.Utterance, pos frontend.Position) error {
		if d := a.away(); d > a.opts.Buffer {
			a.log.Error("the gateway has been unreachable for longer than the buffer holds: recording stopped", "away", d.Round(time.Second), "buffer", a.opts.Buffer)
			return errAway
		}
		send(us)
		if full {
			return errFull
		}
		// Tell the gateway how far the timeline has gone without speech, so it can close
		// utterances without waiting for the next one. Audio the segmenter still holds
		// may yet become speech, so the mark stays before it.
		if mark := pos.Read - int64(pos.Held); mark-sentUpTo >= domain.SampleRate/2 {
			if _, err := a.buf.Add(wire.Frame{Kind: wire.KindMark, Run: run, Start: mark}); err == nil {
				sentUpTo = mark
			}
		}
		return nil
	}
	err = fe.Run(readCtx, src, sink)
	if err != nil && !errors.Is(err, errFull) && !errors.Is(err, frontend.ErrVAD) {
		fe.Flush(func(us []domain.Utterance, _ frontend.Position) error { send(us); return nil })
	}
	reason := "the audio source ended"
	switch {
	case err == nil:
	case errors.Is(err, errAway):
		reason = "gateway unreachable"
	case errors.Is(err, errFull):
		a.log.Error("speech buffer full: the gateway has not acknowledged audio for too long; recording stopped", "buffer", a.opts.Buffer)
		reason = "buffer full"
	case errors.Is(err, frontend.ErrVAD):
		a.log.Error("VAD failed", "err", err)
		reason = "VAD failed"
	case readCtx.Err() != nil:
		reason = "stopped by the gateway"
	default:
		a.log.Error("audio capture failed", "err", err)
		reason = "capture failed"
	}
	end(reason)
}

func (a *Agent) trace(run uint32, seq uint64, start, n int64) {
	if a.opts.Trace == nil {
		return
	}
	a.traceMu.Lock()
	defer a.traceMu.Unlock()
	fmt.Fprintf(a.opts.Trace, "{\"run\":%d,\"seq\":%d,\"start\":%d,\"samples\":%d}\n", run, seq, start, n)
}

// connLoop keeps a connection to the gateway, reconnecting with exponential backoff and
// jitter, until ctx ends or the gateway refuses the agent.
func (a *Agent) connLoop(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		began := time.Now()
		err := a.connect(ctx)
		if errors.Is(err, ErrRefused) || errors.Is(err, ErrPinMismatch) {
			select {
			case a.fatal <- err:
			default:
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > 30*time.Second {
			attempt = 0 // it was up for a while: start backing off afresh
		}
		wait := backoff(a.opts.MinBackoff, a.opts.MaxBackoff, attempt)
		attempt++
		a.log.Warn("gateway connection lost; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// backoff doubles from lo up to hi, then picks uniformly in [d/2, d] so that many
// agents cut off together do not all come back at the same instant.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := lo
	for range min(attempt, 30) {
		if d >= hi/2 {
			d = hi
			break
		}
		d *= 2
	}
	d = min(d, hi)
	j, _ := rand.Int(rand.Reader, big.NewInt(int64(d/2)+1))
	return d/2 + time.Duration(j.Int64())
}

// connect runs one connection until it fails.
func (a *Agent) connect(ctx context.Context) error {
	u, err := url.Parse(a.opts.Config.URL)
	if err != nil {
		return err
	}
	u.Scheme = "wss"
	u.Path = strings.TrimRight(u.Path, "/") + wire.Path
	d := websocket.Dialer{TLSClientConfig: pinnedTLS(a.opts.Config.Fingerprint, nil), HandshakeTimeout: 10 * time.Second}
	h := http.Header{"Authorization": {"Bearer " + a.opts.Config.Token}}
	conn, resp, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("%w: %s", ErrRefused, errorText(body))
		}
		return err
	}
	defer conn.Close()
	conn.SetReadLimit(64 << 10)

	a.buf.Rewind()
	a.mu.Lock()
	a.connected = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.connected, a.awaySince = false, time.Now()
		a.mu.Unlock()
	}()
	a.log.Info("connected to the gateway", "room", a.opts.Config.RoomName)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readErr := make(chan error, 1)
	go func() { // the reader: ends when the connection closes (deferred conn.Close)
		readErr <- a.readLoop(conn)
		cancel()
	}()
	write := func(kind int, b []byte) error {
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return conn.WriteMessage(kind, b)
	}
	hello, _ := json.Marshal(wire.Message{Type: "hello", Instance: a.instance, Channels: a.opts.Channels,
		BufferSeconds: a.opts.Buffer.Seconds(), Version: wire.Version, Microphones: &a.opts.Microphones})
	if err := write(websocket.TextMessage, hello); err != nil {
		return err
	}
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		// A press goes before the frames: when it paused a run here, the gateway must
		// know before that run's end frame arrives.
		if m, ok := a.takePress(); ok {
			b, _ := json.Marshal(m)
			if err := write(websocket.TextMessage, b); err != nil {
				a.restorePress(m)
				return err
			}
			continue
		}
		if f, ok := a.buf.TryNext(); ok {
			if err := write(websocket.BinaryMessage, f.Encode()); err != nil {
				return err
			}
			continue
		}
		select {
		case <-a.buf.Wake():
		case <-a.pressWake:
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				return err
			}
		case <-cctx.Done():
			conn.Close()
			if err := <-readErr; err != nil {
				return err
			}
			return ctx.Err()
		}
	}
}

// takePress returns the pending press as a message, dropping one too old to matter.
func (a *Agent) takePress() (wire.Message, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.press
	a.press = nil
	if p == nil {
		return wire.Message{}, false
	}
	ago := time.Since(p.at)
	if ago > PressMaxAge && p.run == 0 {
		a.log.Warn("a button press made while the gateway was unreachable is too old to report: dropped", "ago", ago.Round(time.Second))
		return wire.Message{}, false
	}
	return wire.Message{Type: "button", Run: p.run, Ago: ago.Seconds()}, true
}

// restorePress puts back a press whose sending failed, unless a newer one came.
func (a *Agent) restorePress(m wire.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.press == nil {
		a.press = &pendingPress{at: time.Now().Add(-time.Duration(m.Ago * float64(time.Second))), run: m.Run}
	}
}

// Connected reports whether the agent has a connection to the gateway now.
func (a *Agent) Connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected
}

// readLoop handles the gateway's messages: acknowledgements and control.
func (a *Agent) readLoop(conn *websocket.Conn) error {
	conn.SetReadDeadline(time.Now().Add(90 * time.Second))
	conn.SetPingHandler(func(data string) error {
		conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
	})
	for {
		kind, data, err := conn.ReadMessage()
		if websocket.IsCloseError(err, wire.CloseRevoked) {
			return fmt.Errorf("%w: %v", ErrRefused, err)
		}
		if err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		if kind != websocket.TextMessage {
			continue
		}
		var m wire.Message
		if err := json.Unmarshal(data, &m); err != nil {
			a.log.Warn("unreadable message from the gateway", "err", err)
			continue
		}
		switch m.Type {
		case "ack":
			if m.Seq != nil {
				a.buf.Ack(*m.Seq)
			}
		case "record", "idle":
			a.controls <- m
		case "notice":
			a.log.Info("gateway", "message", m.Message)
		case "error":
			a.log.Error("gateway error", "message", m.Message)
		}
	}
}
