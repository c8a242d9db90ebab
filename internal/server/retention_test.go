package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/audit"
	"scribe/internal/store"
)

// writeSignal renders a recognisable 8 s test signal — a staircase of tones, 300 Hz to
// 1800 Hz in 0.5 s steps, with seeded noise so its bytes are unique to this run — as a
// 16 kHz mono WAV, and returns its path and samples as a WAV room will yield them.
func writeSignal(t *testing.T) (string, []float32) {
	t.Helper()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	x := make([]float32, 8*16000)
	for i := range x {
		hz := 300 + 100*float64(i/8000)
		x[i] = float32(0.3*math.Sin(2*math.Pi*hz*float64(i)/16000) + rng.NormFloat64()*0.01)
	}
	path := filepath.Join(t.TempDir(), "room.wav")
	if err := audio.WriteWAVFile(path, 16000, [][]float32{x}); err != nil {
		t.Fatal(err)
	}
	clip, err := audio.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, clip.To16k().Channels[0]
}

// relisten fetches a range of a session's audio: status, decoded samples, error message.
func (c *client) relisten(id string, start, end float64) (int, []float32, string) {
	c.e.t.Helper()
	req, _ := http.NewRequest("GET", c.e.ts.URL+"/api/sessions/"+id+"/audio?start="+ftoa(start)+"&end="+ftoa(end), nil)
	resp, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(body, &e)
		return resp.StatusCode, nil, e.Error
	}
	if ct := resp.Header.Get("Content-Type"); ct != "audio/wav" {
		c.e.t.Fatalf("re-listen answered %q", ct)
	}
	clip, err := audio.Decode(bytes.NewReader(body))
	if err != nil {
		c.e.t.Fatalf("re-listen WAV: %v", err)
	}
	if clip.Rate != 16000 || len(clip.Channels) != 1 {
		c.e.t.Fatalf("re-listen WAV is %d Hz, %d channels; want 16 kHz mono", clip.Rate, len(clip.Channels))
	}
	return 200, clip.Channels[0], ""
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func jsonNum(f float64) string { b, _ := json.Marshal(f); return string(b) }

// correlation is the Pearson correlation of two equal-length signals.
func correlation(a, b []float32) float64 {
	n := min(len(a), len(b))
	var ma, mb float64
	for i := range n {
		ma += float64(a[i])
		mb += float64(b[i])
	}
	ma, mb = ma/float64(n), mb/float64(n)
	var sab, saa, sbb float64
	for i := range n {
		da, db := float64(a[i])-ma, float64(b[i])-mb
		sab += da * db
		saa += da * da
		sbb += db * db
	}
	return sab / math.Sqrt(saa*sbb)
}

// audioDeletions returns the session's audio_deleted audit events' details.
func audioDeletions(t *testing.T, st *store.Store, id string) []map[string]any {
	t.Helper()
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{SessionID: id, Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range es {
		if e.Action == string(audit.ActionAudioDeleted) {
			var d map[string]any
			if err := json.Unmarshal(e.Details, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}

func countAction(t *testing.T, st *store.Store, id string, action audit.Action, detail string) int {
	t.Helper()
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{SessionID: id, Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == string(action) && strings.Contains(string(e.Details), detail) {
			n++
		}
	}
	return n
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func retainedEnv(t *testing.T, speed float64) *testEnv {
	return newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = speed; c.AudioRetention = RetentionUntilApproved })
}

// With retention until-approved, the session's audio is on disk only as ciphertext, the
// clinician can re-listen to any segment, nobody else can, and approval deletes it with
// an audit event carrying the bytes.
func TestRetainedAudioIsCiphertextRelistenableAndDeletedOnApproval(t *testing.T) {
	wav, samples := writeSignal(t)
	signature := pcmWindows([][]float32{samples})
	e := retainedEnv(t, 1)
	doc := e.user("gp", store.RoleClinician)
	e.user("gp2", store.RoleClinician)
	e.user("admin", store.RoleAdmin)
	cl := e.login("gp")
	room := e.room("Room 1", store.SourceWAV, map[string]string{"path": wav}, doc.ID)
	id := startWAV(t, e, cl, room.ID).ID
	spoolFile := filepath.Join(e.dir, "spool", id+".spool")

	// The scanner must see the signal where it is in plaintext: the room's own WAV.
	if f := findPCM(t, filepath.Dir(wav), "", signature); f != wav {
		t.Fatalf("the scanner does not find the signal in its own WAV (found %q)", f)
	}
	// The data directory (database, spool) is scanned all through the session; the temp
	// directory, large and slow to read, by a second goroutine from the moment the spool
	// holds audio, and again at the end.
	scans, heldScans := 0, 0
	tmpFound := make(chan string, 1)
	tmpStarted := false
	for {
		v, _ := cl.session(id)
		if f := findPCM(t, e.dir, "", signature); f != "" {
			t.Fatalf("plaintext room audio found in %s during the session", f)
		}
		scans++
		if v.State == store.StateRecording && fileSize(spoolFile) > 0 {
			heldScans++
			if !tmpStarted {
				tmpStarted = true
				go func() { tmpFound <- findPCM(t, os.TempDir(), wav, signature) }()
			}
		}
		if v.State == store.StateStopped {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if tmpStarted {
		if f := <-tmpFound; f != "" {
			t.Fatalf("plaintext room audio found in %s during the session", f)
		}
	}
	if f := findPCM(t, os.TempDir(), wav, signature); f != "" {
		t.Fatalf("plaintext room audio found in %s after the session", f)
	}
	if heldScans == 0 {
		t.Fatalf("the spool file %s never held anything while recording (%d scans)", spoolFile, scans)
	}
	if f := findPCM(t, e.dir, "", signature); f != "" {
		t.Fatalf("plaintext room audio found in %s after the session", f)
	}
	t.Logf("%d scans of the data directory (%d while the spool held audio, %d bytes at the end), 2 of the temp directory", scans, heldScans, fileSize(spoolFile))

	v, segs := cl.session(id)
	if !v.AudioHeld || len(segs) < 4 {
		t.Fatalf("after the session: audio_held %v, %d segments", v.AudioHeld, len(segs))
	}
	for _, g := range []store.Segment{segs[1], segs[len(segs)-2]} {
		st, got, msg := cl.relisten(id, g.Start, g.End)
		if st != 200 {
			t.Fatalf("re-listen %.2f–%.2f: %d %s", g.Start, g.End, st, msg)
		}
		want := samples[int(math.Round(g.Start*16000)):min(len(samples), int(math.Round(g.End*16000)))]
		if d := len(got) - len(want); d < -1 || d > 1 {
			t.Fatalf("re-listen %.2f–%.2f returned %d samples, want %d", g.Start, g.End, len(got), len(want))
		}
		if r := correlation(got, want); r < 0.9 {
			t.Fatalf("re-listened audio %.2f–%.2f correlates %.3f with the original", g.Start, g.End, r)
		} else {
			t.Logf("re-listen %.2f–%.2f s: correlation %.4f", g.Start, g.End, r)
		}
	}
	if n := countAction(t, e.srv.Store(), id, audit.ActionDataAccess, "audio_relisten"); n != 2 {
		t.Fatalf("%d audio_relisten audit events, want 2", n)
	}
	if st, _, _ := e.login("gp2").relisten(id, segs[0].Start, segs[0].End); st != http.StatusNotFound {
		t.Fatalf("another clinician re-listening: %d, want 404", st)
	}
	if st, _, _ := e.login("admin").relisten(id, segs[0].Start, segs[0].End); st != http.StatusForbidden {
		t.Fatalf("an admin re-listening: %d, want 403", st)
	}
	if st, _, _ := cl.relisten(id, 100, 101); st != http.StatusNotFound {
		t.Fatalf("re-listen past the end: %d, want 404", st)
	}

	size := fileSize(spoolFile)
	var approved sessionView
	if st := cl.do("POST", "/api/sessions/"+id+"/approve", map[string]any{"reviewed": true, "confirm": cl.approvalItems(id)}, &approved); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	if approved.AudioHeld || fileSize(spoolFile) != -1 {
		t.Fatalf("after approval: audio_held %v, spool file size %d", approved.AudioHeld, fileSize(spoolFile))
	}
	dels := audioDeletions(t, e.srv.Store(), id)
	if len(dels) != 1 || dels[0]["reason"] != AudioDeletedApproved || dels[0]["bytes"] != float64(size) {
		t.Fatalf("audio_deleted events %v, want one with reason approved and %d bytes", dels, size)
	}
	if st, _, msg := cl.relisten(id, segs[0].Start, segs[0].End); st != http.StatusConflict || !strings.Contains(msg, "deleted") {
		t.Fatalf("re-listen after approval: %d %q", st, msg)
	}
	if rep, err := e.srv.Store().VerifyAudit(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("audit chain: %v %v", rep, err)
	}
}

// Discard audio, the TTL and shutdown each delete a held spool and leave an audio_deleted
// event with the bytes and the reason.
func TestRetainedAudioDiscardTTLAndShutdown(t *testing.T) {
	wav, _ := writeSignal(t)
	e := retainedEnv(t, 16)
	doc := e.user("gp", store.RoleClinician)
	e.user("gp2", store.RoleClinician)
	cl := e.login("gp")
	room := e.room("Room 1", store.SourceWAV, map[string]string{"path": wav}, doc.ID)
	spoolOf := func(id string) string { return filepath.Join(e.dir, "spool", id+".spool") }
	record := func() string {
		id := startWAV(t, e, cl, room.ID).ID
		waitFor(t, time.Minute, "session to stop", func() bool { v, _ := cl.session(id); return v.State == store.StateStopped })
		if v, _ := cl.session(id); !v.AudioHeld || fileSize(spoolOf(id)) <= 0 {
			t.Fatalf("session %s: audio_held %v, spool size %d", id, v.AudioHeld, fileSize(spoolOf(id)))
		}
		return id
	}
	check := func(id, reason string, size int64) {
		t.Helper()
		if fileSize(spoolOf(id)) != -1 {
			t.Fatalf("spool of %s still there after %s", id, reason)
		}
		dels := audioDeletions(t, e.srv.Store(), id)
		if len(dels) != 1 || dels[0]["reason"] != reason || dels[0]["bytes"] != float64(size) {
			t.Fatalf("audio_deleted events %v, want one with reason %s and %d bytes", dels, reason, size)
		}
	}

	// Discard: owner only, once.
	a := record()
	if st, _ := e.login("gp2").errorOf("POST", "/api/sessions/"+a+"/discard-audio", nil); st != http.StatusNotFound {
		t.Fatalf("another clinician discarding: %d, want 404", st)
	}
	size := fileSize(spoolOf(a))
	var v sessionView
	if st := cl.do("POST", "/api/sessions/"+a+"/discard-audio", nil, &v); st != 200 || v.AudioHeld {
		t.Fatalf("discard: %d, audio_held %v", st, v.AudioHeld)
	}
	check(a, AudioDeletedDiscarded, size)
	if st, msg := cl.errorOf("POST", "/api/sessions/"+a+"/discard-audio", nil); st != http.StatusConflict {
		t.Fatalf("second discard: %d %s", st, msg)
	}
	if st, _, msg := cl.relisten(a, 0, 1); st != http.StatusConflict || !strings.Contains(msg, "discarded") {
		t.Fatalf("re-listen after discard: %d %q", st, msg)
	}

	// TTL: nothing expires early; at the TTL the spool goes.
	b := record()
	size = fileSize(spoolOf(b))
	e.srv.expireAudio(context.Background(), time.Now().Add(time.Hour))
	if fileSize(spoolOf(b)) != size {
		t.Fatal("a spool was deleted before its TTL")
	}
	e.srv.expireAudio(context.Background(), time.Now().Add(24*time.Hour+time.Second))
	check(b, AudioDeletedTTL, size)

	// Shutdown.
	c := record()
	size = fileSize(spoolOf(c))
	e.ts.Close()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(e.dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if fileSize(spoolOf(c)) != -1 {
		t.Fatal("spool left after shutdown")
	}
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{SessionID: c, Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, en := range es {
		found = found || (en.Action == string(audit.ActionAudioDeleted) && strings.Contains(string(en.Details), `"reason":"shutdown"`) &&
			strings.Contains(string(en.Details), `"bytes":`+jsonNum(float64(size))))
	}
	if !found {
		t.Fatalf("no audio_deleted shutdown event with %d bytes in %v", size, es)
	}
}

// With the default retention nothing is spooled and re-listening says why.
func TestNoRetentionNoSpoolAndClearRefusal(t *testing.T) {
	wav, _ := writeSignal(t)
	e := newEnv(t, nil)
	doc := e.user("gp", store.RoleClinician)
	cl := e.login("gp")
	room := e.room("Room 1", store.SourceWAV, map[string]string{"path": wav}, doc.ID)
	id := startWAV(t, e, cl, room.ID).ID
	waitFor(t, time.Minute, "session to stop", func() bool { v, _ := cl.session(id); return v.State == store.StateStopped })
	if v, _ := cl.session(id); v.AudioHeld {
		t.Fatal("audio_held with retention none")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "spool", id+".spool")); err == nil {
		t.Fatal("a spool file exists with retention none")
	}
	if st, _, msg := cl.relisten(id, 0, 1); st != http.StatusNotFound || !strings.Contains(msg, "retention is none") {
		t.Fatalf("re-listen with retention none: %d %q", st, msg)
	}
	if st, _ := cl.errorOf("POST", "/api/sessions/"+id+"/discard-audio", nil); st != http.StatusConflict {
		t.Fatalf("discard with nothing held: %d", st)
	}
}

// The scheduled purge removes a transcript past retention by itself, with its audit
// event, at start and again on its interval.
func TestScheduledTranscriptPurge(t *testing.T) {
	wav, _ := writeSignal(t)
	e := newEnv(t, func(c *Config, d *Deps) {
		c.WAVSpeed = 16
		c.TranscriptRetention = time.Millisecond
		c.PurgeInterval = 50 * time.Millisecond
	})
	doc := e.user("gp", store.RoleClinician)
	cl := e.login("gp")
	room := e.room("Room 1", store.SourceWAV, map[string]string{"path": wav}, doc.ID)
	id := startWAV(t, e, cl, room.ID).ID
	waitFor(t, time.Minute, "session to stop", func() bool { v, _ := cl.session(id); return v.State == store.StateStopped })
	if _, segs := cl.session(id); len(segs) == 0 {
		t.Fatal("no segments to purge")
	}
	if st := cl.do("POST", "/api/sessions/"+id+"/approve", map[string]any{"reviewed": true, "confirm": cl.approvalItems(id)}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	waitFor(t, 30*time.Second, "the scheduled purge", func() bool {
		return countAction(t, e.srv.Store(), id, audit.ActionTranscriptPurged, "retention") == 1
	})
	segs, err := e.srv.Store().Segments(context.Background(), id, true)
	if err != nil || len(segs) != 0 {
		t.Fatalf("after the purge: %d segments, %v", len(segs), err)
	}
}

// The session timeline runs on across Pause/Resume, and so does the held audio: a WAV
// room replays its file from the start when resumed, so a range after the resume holds
// the file's opening again, placed after the audio recorded before the pause.
func TestRelistenAcrossPauseAndResume(t *testing.T) {
	wav, samples := writeSignal(t)
	e := retainedEnv(t, 4)
	doc := e.user("gp", store.RoleClinician)
	cl := e.login("gp")
	room := e.room("Room 1", store.SourceWAV, map[string]string{"path": wav}, doc.ID)
	id := startWAV(t, e, cl, room.ID).ID
	waitFor(t, time.Minute, "two segments before the pause", func() bool { _, segs := cl.session(id); return len(segs) >= 2 })
	var paused sessionView
	if st := cl.do("POST", "/api/sessions/"+id+"/pause", nil, &paused); st != 200 || paused.State != store.StatePaused {
		t.Fatalf("pause: %d %s", st, paused.State)
	}
	p := paused.AudioSeconds
	if p < 2 || p > 7 {
		t.Fatalf("paused after %.3f s: want the pause well inside the 8 s file", p)
	}
	// Nothing is held for the paused stretch's future yet.
	if st, _, _ := cl.relisten(id, p+0.5, p+1.5); st != http.StatusNotFound {
		t.Fatalf("re-listen past the pause before resuming: %d, want 404", st)
	}
	if st := cl.do("POST", "/api/sessions/"+id+"/resume", nil, nil); st != 200 {
		t.Fatalf("resume: %d", st)
	}
	waitFor(t, time.Minute, "the file to end after the resume", func() bool { v, _ := cl.session(id); return v.State == store.StateStopped })
	v, segs := cl.session(id)
	if math.Abs(v.AudioSeconds-(p+8)) > 0.01 || !v.AudioHeld {
		t.Fatalf("after the resumed run: %.3f s of audio (want %.3f), audio_held %v", v.AudioSeconds, p+8, v.AudioHeld)
	}

	at := func(s float64) int { return int(math.Round(s * 16000)) }
	// want is what the timeline holds from a to b: the file up to the pause, then the file
	// again from its start.
	want := func(a, b float64) []float32 {
		var out []float32
		for i := at(a); i < at(b); i++ {
			if i < at(p) {
				out = append(out, samples[i])
			} else {
				out = append(out, samples[i-at(p)])
			}
		}
		return out
	}
	check := func(what string, a, b float64) {
		t.Helper()
		st, got, msg := cl.relisten(id, a, b)
		if st != 200 {
			t.Fatalf("re-listen %s %.3f–%.3f: %d %s", what, a, b, st, msg)
		}
		w := want(a, b)
		if d := len(got) - len(w); d < -1 || d > 1 {
			t.Fatalf("re-listen %s returned %d samples, want %d", what, len(got), len(w))
		}
		// Each half on its own, so a range across the pause must be right on both sides.
		h := len(w) / 2
		r1, r2 := correlation(got[:h], w[:h]), correlation(got[h:], w[h:])
		if r1 < 0.9 || r2 < 0.9 {
			t.Fatalf("re-listen %s %.3f–%.3f correlates %.3f / %.3f with the recorded audio", what, a, b, r1, r2)
		}
		t.Logf("re-listen %s %.3f–%.3f s: correlation %.4f / %.4f", what, a, b, r1, r2)
	}
	check("before the pause", 0.5, 1.5)
	check("across the pause", p-0.5, p+0.5)
	check("after the resume", p+2, p+3)
	var after *store.Segment
	for i := range segs {
		if segs[i].Start >= p+1 {
			after = &segs[i]
			break
		}
	}
	if after == nil {
		t.Fatalf("no segment after the resume in %+v", segs)
	}
	check("of a segment after the resume", after.Start, after.End)
}
