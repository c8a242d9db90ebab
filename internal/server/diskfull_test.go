package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"scribe/internal/domain"
	"scribe/internal/metrics"
	"scribe/internal/store"
)

// mountTmpfs mounts a tmpfs of size (e.g. "8m") on a fresh directory for the test: a real
// filesystem that fills up. Tests run as root in a private mount namespace (the sid root
// of `make test`); elsewhere the test is skipped.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("the disk-full test mounts a %s tmpfs, which needs root in a private mount namespace (as `make test` runs it): %v", size, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillDisk writes a file into e's data directory dir until the filesystem is full and
// returns its path. The database's write-ahead log is emptied first: SQLite rewrites a
// log it has already grown in place, so a full disk would otherwise go unnoticed until the
// log outgrew its old size.
func fillDisk(t *testing.T, e *testEnv, dir string) string {
	t.Helper()
	var busy, logPages, done int
	if err := e.srv.Store().DB().QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil || busy != 0 {
		t.Fatalf("emptying the write-ahead log: busy %d, %v", busy, err)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := bytes.Repeat([]byte{0xA5}, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

// countingTranscriber counts the segments the pipeline commits: what the server owes
// the clinician.
type countingTranscriber struct {
	inner     Transcriber
	committed *atomic.Int64
}

func (c countingTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	return c.inner.Transcribe(ctx, src, offset, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventCommitted {
			c.committed.Add(1)
		}
		emit(ev)
	})
}

// stallingTranscriber is the fake transcriber a line behind — each committed line is
// published when the next one is made — except that once its source ends it never
// commits what it holds: it waits to be cancelled, like a decoder stuck on the last
// utterance. At least its last line's audio is then never transcribed. (Without the line
// it keeps back, the fake holds nothing when the source closes just after a line ends,
// and there is nothing for a gap marker to cover.)
type stallingTranscriber struct{ fakeTranscriber }

func (s stallingTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	var behind *domain.LiveEvent
	return s.fakeTranscriber.Transcribe(ctx, eofAfter{src, -1}, offset, func(ev domain.LiveEvent) {
		if ev.Kind != domain.EventCommitted {
			emit(ev)
			return
		}
		if behind != nil {
			emit(*behind)
		}
		behind = &ev
	})
}

// eofAfter holds its source's end back for wait (for good when wait < 0) or until the
// read's context ends, like a decoder slow or stuck on the last line.
type eofAfter struct {
	domain.AudioSource
	wait time.Duration
}

func (s eofAfter) Read(ctx context.Context) ([][]float32, error) {
	c, err := s.AudioSource.Read(ctx)
	if errors.Is(err, io.EOF) {
		var after <-chan time.Time
		if s.wait >= 0 {
			after = time.After(s.wait)
		}
		select {
		case <-after:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c, err
}

// liveLog reads a session's live websocket in the background and keeps the state
// messages' reasons.
type liveLog struct {
	mu     sync.Mutex
	states []string
}

func (l *liveLog) reasons() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.states...)
}

func (l *liveLog) saw(sub string) bool {
	for _, r := range l.reasons() {
		if strings.Contains(r, sub) {
			return true
		}
	}
	return false
}

func watchLive(t *testing.T, c *client, id string) *liveLog {
	t.Helper()
	conn, err := c.dialWS("/api/sessions/" + id + "/live")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.WriteJSON(map[string]any{"resume": 0})
	l := &liveLog{}
	go func() {
		for {
			var m message
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			if m.Type == "state" {
				l.mu.Lock()
				l.states = append(l.states, m.Session.State+": "+m.Reason)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// tryLogin logs in as name without failing the test, and returns the status.
func (e *testEnv) tryLogin(name string) (*client, int) {
	jar, _ := cookiejar.New(nil)
	c := &client{e: e, http: &http.Client{Jar: jar, Transport: e.ts.Client().Transport}}
	st, _ := c.errorOf("POST", "/api/login", map[string]string{"username": name, "password": testPassword})
	return c, st
}

// diskFullEnv is a server whose data directory is an 8 MB tmpfs, with metrics.
func diskFullEnv(t *testing.T, tr Transcriber, mod func(*Config)) (*testEnv, string, *atomic.Int64) {
	t.Helper()
	dir := mountTmpfs(t, "8m")
	committed := &atomic.Int64{}
	e := newEnv(t, func(c *Config, d *Deps) {
		c.DataDir, c.WAVSpeed, c.MinFreeBytes, c.StorageRetryEvery = dir, 4, 1<<20, 100*time.Millisecond
		d.Transcriber = countingTranscriber{inner: tr, committed: committed}
		d.Safety.Metrics = metrics.New(time.Now(), metrics.Sources{})
		if mod != nil {
			mod(c)
		}
	})
	return e, dir, committed
}

// recordUntilDiskFull starts a session in the room, watches it live, fills the disk once
// three segments are stored, and waits (up to 20 s) for the session to say storage is
// failing. It returns the session, its live log, a reader of its stored segments, and
// the filler file to remove.
func recordUntilDiskFull(t *testing.T, e *testEnv, dir string, c *client, roomID int64) (sessionView, *liveLog, func() []store.Segment, string) {
	t.Helper()
	s := startWAV(t, e, c, roomID)
	live := watchLive(t, c, s.ID)
	stored := func() []store.Segment { g, _ := e.srv.Store().Segments(context.Background(), s.ID, true); return g }
	waitFor(t, 20*time.Second, "three stored segments", func() bool { return len(stored()) >= 3 })
	filler := fillDisk(t, e, dir)
	t.Logf("disk full after %d stored segments", len(stored()))
	for deadline := time.Now().Add(20 * time.Second); !live.saw("storage") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	return s, live, stored, filler
}

// The red team's case: the data directory on an 8 MB filesystem that fills up during a
// recording. Nothing the pipeline committed may be lost: failed stores are retried, then
// the session pauses with a reason saying storage is failing, the text waits in memory
// and is written once space returns; logging in and reading keep working meanwhile, the
// failures show in /metrics, and no new session starts below the free-space floor.
func TestDiskFullLosesNoCommittedText(t *testing.T) {
	e, dir, committed := diskFullEnv(t, fakeTranscriber{segSeconds: 1}, nil)
	a := e.user("a", store.RoleClinician)
	e.user("b", store.RoleClinician)
	wavDir := t.TempDir() // the room's audio is not on the small disk
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, wavDir, 440, 40)}, a.ID)
	other := e.room("Room B", store.SourceWAV, map[string]string{"path": writeTone(t, wavDir, 300, 2)}, a.ID)
	c := e.login("a")
	s, live, stored, filler := recordUntilDiskFull(t, e, dir, c, room.ID)
	ctx := context.Background()
	if !live.saw("storage") {
		t.Errorf("no state message says storage is failing; the clinician saw: %q", live.reasons())
	}
	// Logging in and reading still work while nothing can be written.
	c2, st := e.tryLogin("a")
	if st != 200 {
		t.Errorf("login with the disk full: %d", st)
	} else if code := c2.do("GET", "/api/sessions/"+s.ID, nil, nil); code != 200 {
		t.Errorf("reading the session with the disk full: %d", code)
	}
	// Logging out everywhere works too, and ends the logins at once.
	if cb, st := e.tryLogin("b"); st != 200 {
		t.Errorf("second login with the disk full: %d", st)
	} else if code := cb.do("POST", "/api/logout-everywhere", nil, nil); code != 200 {
		t.Errorf("log out everywhere with the disk full: %d", code)
	} else if code, _ := cb.errorOf("GET", "/api/me", nil); code != 401 {
		t.Errorf("a login survived log out everywhere on a full disk: %d", code)
	}
	resp, err := c.http.Get(e.ts.URL + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, series := range []string{`scribe_store_failures_total{kind="segment"}`, "scribe_storage_free_bytes", "scribe_transcript_unsaved_segments"} {
			if !strings.Contains(string(body), series) {
				t.Errorf("/metrics lacks %s", series)
			}
		}
	}
	var refused struct {
		Error string `json:"error"`
	}
	if code := c.do("POST", "/api/rooms/"+itoa(other.ID)+"/sessions", map[string]any{"consent": true}, &refused); code != http.StatusInsufficientStorage || !strings.Contains(refused.Error, "free") {
		t.Errorf("starting a session on a full disk: %d %q, want 507 naming the free space", code, refused.Error)
	}

	os.Remove(filler) // practice IT frees space
	waitOK := true
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _ := e.srv.Store().Consultation(ctx, s.ID)
		if int64(len(stored())) == committed.Load() && v.State == store.StatePaused {
			break
		}
		if time.Now().After(deadline) {
			waitOK = false
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	segs := stored()
	lost := committed.Load() - int64(len(segs))
	t.Logf("8 MB filesystem: %d utterances committed by the pipeline, %d stored, %d lost; states seen: %q", committed.Load(), len(segs), lost, live.reasons())
	if !waitOK || lost != 0 {
		t.Errorf("after space returned: %d of %d committed utterances lost (session %v)", lost, committed.Load(), func() string { v, _ := e.srv.Store().Consultation(ctx, s.ID); return v.State }())
	}
	end := 0.0
	for _, g := range segs {
		if g.Start > end+0.001 {
			t.Errorf("gap in the stored transcript: %.2f–%.2f s", end, g.Start)
		}
		end = max(end, g.End)
	}
	// The logins, the logout and the reads made meanwhile reached the audit trail.
	waitFor(t, 10*time.Second, "deferred audit entries written", func() bool { return e.srv.Store().Deferred() == 0 })
	var logins, logouts, reads int
	es, _ := e.srv.Store().AuditEntries(ctx, store.AuditFilter{Limit: 5000})
	for _, en := range es {
		switch {
		case en.Action == "login" && strings.Contains(string(en.Details), "kept_in_memory"):
			logins++
		case en.Action == "logout" && en.Actor == "b":
			logouts++
		case en.Action == "data_access" && en.SessionID == s.ID:
			reads++
		}
	}
	if logins != 2 || logouts != 1 || reads < 2 {
		t.Errorf("audit after the disk came back: %d logins made in memory (want 2), %d logouts (want 1), %d reads of the session (want ≥ 2)", logins, logouts, reads)
	}
	// And the session resumes once everything is saved.
	if code, msg := c.errorOf("POST", "/api/sessions/"+s.ID+"/resume", nil); code != 200 {
		t.Errorf("resume after space returned: %d %s", code, msg)
	}
}

// A decoder that never finishes the last utterance once the session is paused for
// storage: the audio it held is marked as a gap (untranscribed) when the text is saved.
func TestDiskFullMarksAudioThatCouldNotBeTranscribed(t *testing.T) {
	e, dir, committed := diskFullEnv(t, stallingTranscriber{fakeTranscriber{segSeconds: 1}}, func(c *Config) { c.ShutdownTimeout = time.Second })
	a := e.user("a", store.RoleClinician)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, t.TempDir(), 440, 40)}, a.ID)
	c := e.login("a")
	// The pause for storage comes with the stalled decoder abandoned after the shutdown timeout.
	s, _, stored, filler := recordUntilDiskFull(t, e, dir, c, room.ID)
	ctx := context.Background()
	os.Remove(filler)
	var segs []store.Segment
	var v store.Consultation
	ok := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(100 * time.Millisecond) {
		segs = stored()
		v, _ = e.srv.Store().Consultation(ctx, s.ID)
		ok = v.State == store.StatePaused && len(segs) > 0 && segs[len(segs)-1].Flags != nil && len(segs[len(segs)-1].Flags) > 0
	}
	if !ok {
		t.Fatalf("no gap marker after the stalled decoder: state %s, %d segments (%d committed)", v.State, len(segs), committed.Load())
	}
	gap := segs[len(segs)-1]
	prev := segs[len(segs)-2]
	if gap.Flags[0] != domain.FlagUntranscribed || gap.Start != prev.End || gap.End < v.AudioSeconds-0.001 || gap.End <= gap.Start {
		t.Errorf("gap marker %+v after %+v; the session holds %.2f s of audio", gap, prev, v.AudioSeconds)
	}
	t.Logf("gap marker %.2f–%.2f s (%s)", gap.Start, gap.End, gap.Flags)
}

// piecesTranscriber commits each line of the fake transcriber in three pieces, as the
// streaming policy commits words while the speaker is still talking (the first piece
// starts the line, the others continue it, the last completes it), and counts the lines
// completed.
type piecesTranscriber struct{ lines *atomic.Int64 }

func (p piecesTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	return fakeTranscriber{segSeconds: 1}.Transcribe(ctx, src, offset, func(ev domain.LiveEvent) {
		if ev.Kind != domain.EventCommitted {
			emit(ev)
			return
		}
		s := ev.Segment
		step := (s.End - s.Start) / 3
		for k := range 3 {
			piece := domain.LiveEvent{Kind: domain.EventCommitted, Utterance: ev.Utterance, Continues: k > 0, Segment: domain.Segment{
				Start: s.Start + float64(k)*step, End: s.Start + float64(k+1)*step, Speaker: s.Speaker,
				Text: fmt.Sprintf("line %d part %d.", ev.Utterance, k)}}
			if k == 2 {
				piece.Audio = &domain.Utterance{Seq: ev.Utterance}
				p.lines.Add(1)
			}
			emit(piece)
		}
	})
}

// Lines committed in pieces while the disk fills: a piece the disk refuses is held, the
// pieces after it join it, and once space returns each line is stored as one segment with
// all its words in order — the stored part of a line extended, not repeated.
func TestDiskFullKeepsGrowingLinesWhole(t *testing.T) {
	lines := &atomic.Int64{}
	e, dir, _ := diskFullEnv(t, piecesTranscriber{lines: lines}, nil)
	a := e.user("a", store.RoleClinician)
	room := e.room("Room A", store.SourceWAV, map[string]string{"path": writeTone(t, t.TempDir(), 440, 40)}, a.ID)
	c := e.login("a")
	s, live, stored, filler := recordUntilDiskFull(t, e, dir, c, room.ID)
	if !live.saw("storage") {
		t.Fatalf("no state message says storage is failing; the clinician saw: %q", live.reasons())
	}
	os.Remove(filler)
	ctx := context.Background()
	waitFor(t, 30*time.Second, "every line stored once the disk takes it", func() bool {
		v, _ := e.srv.Store().Consultation(ctx, s.ID)
		return v.State == store.StatePaused && int64(len(stored())) == lines.Load()
	})
	for i, g := range stored() {
		want := fmt.Sprintf("line %d part 0. line %d part 1. line %d part 2.", i, i, i)
		if g.Text != want {
			t.Errorf("segment %d: %q, want %q", i, g.Text, want)
		}
	}
	t.Logf("%d lines committed in pieces, stored whole", lines.Load())
}
