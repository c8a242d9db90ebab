package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"scribe/internal/app"
	"scribe/internal/audio"
	"scribe/internal/config"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/store"
)

// realRuntime loads the real stack — libwhisper with whisper.cpp's weightless tiny.en test
// model, the real Silero VAD, the clean-up chain — with workers decoders.
func realRuntime(t *testing.T, workers, threads int) *app.Runtime {
	t.Helper()
	cfg := config.Default()
	cfg.Models.Whisper = config.SharedTestModel("for-tests-ggml-tiny.en.bin")
	cfg.Models.VAD = config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin")
	if cfg.Models.Whisper == "" || cfg.Models.VAD == "" {
		t.Skip("../shared/models not available")
	}
	cfg.Models.Workers, cfg.Models.Threads = workers, threads
	cfg.Transcription.TemperatureInc = 0 // fallback only repeats the test model's noise
	rt, err := app.Load(cfg, app.Options{Provisional: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

// rendered renders the start of a PriMock57 consultation with espeak-ng.
func rendered(t *testing.T, id string, seconds float64) *corpus.Rendered {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed (it is in the sid build root)")
	}
	shared := config.SharedDir()
	if shared == "" {
		t.Skip("../shared not available")
	}
	r, err := corpus.Render(context.Background(), filepath.Join(shared, "corpus", "primock57"), id,
		corpus.RenderOptions{OutDir: t.TempDir(), MaxSeconds: seconds})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The acceptance flow in real headless Chromium, on the real transcription stack: a demo
// room replays a rendered consultation; provisional and committed text arrive; the
// clinician edits, reassigns a speaker, flags, reviews and approves.
func TestBrowserFlowWithRealTranscriber(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s", chromiumPath)
	}
	r := rendered(t, "day1_consultation01", 45)
	rt := realRuntime(t, 1, 2)
	url, password := runDemoServer(t, Config{DataDir: t.TempDir(), DemoWAVs: []string{r.StereoPath}, WAVSpeed: 2, ShutdownTimeout: 20 * time.Second},
		Deps{Transcriber: rt.Pipeline})
	runBrowserFlow(t, browserFlow{URL: url, Username: DemoUsername, Password: password, RoomName: "Demo room 1", FirstCommit: 90 * time.Second})
}

// Three rooms replay three different rendered consultations at once through one shared
// engine (two decoders). Every session must end with segments covering its own
// consultation's speech, and its segments must fit its own ground truth better than the
// other rooms'.
func TestThreeRoomsWithRealTranscriber(t *testing.T) {
	ids := []string{"day1_consultation01", "day1_consultation02", "day1_consultation03"}
	var truths [][]domain.Interval
	var wavs []string
	for _, id := range ids {
		r := rendered(t, id, 30)
		var iv []domain.Interval
		for _, u := range r.Truth.Utterances {
			iv = append(iv, domain.Interval{Start: u.Start, End: u.End})
		}
		truths = append(truths, iv)
		wavs = append(wavs, r.StereoPath)
	}
	rt := realRuntime(t, 2, 1)
	e := newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = 2; d.Transcriber = rt.Pipeline })
	doc := e.user("gp", store.RoleClinician)
	cl := e.login("gp")
	var sessions []string
	for i, wav := range wavs {
		room := e.room(fmt.Sprintf("Room %d", i+1), store.SourceWAV, map[string]string{"path": wav}, doc.ID)
		sessions = append(sessions, startWAV(t, e, cl, room.ID).ID)
	}
	for i, id := range sessions {
		waitFor(t, 3*time.Minute, "session to finish", func() bool { v, _ := cl.session(id); return v.State == store.StateStopped })
		v, segs := cl.session(id)
		if v.RoomName != fmt.Sprintf("Room %d", i+1) {
			t.Fatalf("session %d belongs to %s", i, v.RoomName)
		}
		var got []domain.Interval
		for _, s := range segs {
			got = append(got, domain.Interval{Start: s.Start, End: s.End})
		}
		fit := make([]float64, len(truths))
		for j, tr := range truths {
			fit[j] = domain.OverlapSeconds(tr, got) / domain.TotalSeconds(tr)
		}
		t.Logf("room %d: %d segments; coverage of each consultation's speech: %.2f %.2f %.2f", i+1, len(segs), fit[0], fit[1], fit[2])
		if fit[i] < 0.9 {
			t.Errorf("room %d: segments cover %.0f%% of its consultation's speech", i+1, fit[i]*100)
		}
		for j := range truths {
			if j != i && precision(got, truths[j]) >= precision(got, truths[i]) {
				t.Errorf("room %d's segments fit consultation %d as well as its own", i+1, j+1)
			}
		}
	}
}

// precision is the share of segment time that lies on the truth's speech.
func precision(segs, truth []domain.Interval) float64 {
	return domain.OverlapSeconds(truth, segs) / max(domain.TotalSeconds(segs), 1e-9)
}

// TestSessionAudioNeverWrittenToDisk: during a live session on the real pipeline, no file
// in the data directory or the temp directory holds any piece of the room's audio (the
// default retention is "none": audio lives in memory only). The audio carries seeded
// noise so its bytes are recognisable and unique to this run.
func TestSessionAudioNeverWrittenToDisk(t *testing.T) {
	r := rendered(t, "day1_consultation02", 20)
	clip, err := audio.ReadFile(r.StereoPath)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for _, ch := range clip.Channels {
		for i := range ch {
			ch[i] += float32(rng.NormFloat64() * 0.01)
		}
	}
	micDir := t.TempDir()
	wav := filepath.Join(micDir, "room.wav")
	if err := audio.WriteWAVFile(wav, clip.Rate, clip.Channels); err != nil {
		t.Fatal(err)
	}
	// What the room "hears", as the pipeline receives it (float32) and as a device or WAV
	// would carry it (int16).
	source, err := audio.ReadFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	signature := pcmWindows(source.To16k().Channels)

	rt := realRuntime(t, 1, 2)
	e := newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = 2; d.Transcriber = rt.Pipeline })
	doc := e.user("gp", store.RoleClinician)
	cl := e.login("gp")
	room := e.room("Room 1", store.SourceWAV, map[string]string{"path": wav}, doc.ID)
	id := startWAV(t, e, cl, room.ID).ID
	scans := 0
	for {
		v, segs := cl.session(id)
		for _, dir := range []string{e.dir, os.TempDir()} {
			if f := findPCM(t, dir, wav, signature); f != "" {
				t.Fatalf("room audio found on disk in %s during the session", f)
			}
		}
		scans++
		if v.State == store.StateStopped {
			if len(segs) == 0 {
				t.Fatal("the session produced no segments: the pipeline did not run")
			}
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("scanned the data and temp directories %d times during the session", scans)
}

// pcmWindows indexes every 16-byte run of the samples' float32 and int16 encodings.
func pcmWindows(chans [][]float32) map[[16]byte]bool {
	out := map[[16]byte]bool{}
	for _, ch := range chans {
		f := make([]byte, 4*len(ch))
		s := make([]byte, 2*len(ch))
		r := make([]byte, 2*len(ch)) // rounded, as internal/audio writes WAVs
		for i, v := range ch {
			v = max(-1, min(1, v))
			binary.LittleEndian.PutUint32(f[4*i:], math.Float32bits(v))
			binary.LittleEndian.PutUint16(s[2*i:], uint16(int16(v*32767)))
			binary.LittleEndian.PutUint16(r[2*i:], uint16(int16(math.Round(float64(v)*32767))))
		}
		for i := 0; i+16 <= len(f); i += 4 {
			out[[16]byte(f[i:i+16])] = true
		}
		for _, b := range [][]byte{s, r} {
			for i := 0; i+16 <= len(b); i += 2 {
				if w := [16]byte(b[i : i+16]); w != ([16]byte{}) { // digital silence is not a signature
					out[w] = true
				}
			}
		}
	}
	return out
}

// findPCM returns a file under dir (other than skip) holding any indexed window.
func findPCM(t *testing.T, dir, skip string, sig map[[16]byte]bool) string {
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == skip || found != "" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for i := 0; i+16 <= len(b); i++ {
			if sig[[16]byte(b[i:i+16])] {
				found = p
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found
}
