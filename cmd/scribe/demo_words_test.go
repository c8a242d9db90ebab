package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"scribe/internal/domain"
	"scribe/internal/testmodels"
	"scribe/internal/textdiff"
)

// make run's demo, with no model installed, runs the real tiny.en from the model cache,
// says so, and its room transcribes real words: jfk.wav replayed through the live
// pipeline of a real server (clean-up, Silero, provisional and committed decoding, the
// store), read back through the API.
func TestDemoTranscribesRealWordsLive(t *testing.T) {
	model := testmodels.Real(t, "tiny.en")
	jfk := jfkPath(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "scribe.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("data_dir: %s\nlisten: 127.0.0.1:0\nmodels: {whisper: %s, workers: 1, threads: 2}\ndemo: {wavs: [%s]}\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "not-installed.bin"), jfk)), 0o600); err != nil {
		t.Fatal(err)
	}
	base, out := startServe(t, "--demo", "--config", cfgPath)
	if !strings.Contains(out, "real tiny.en") || !strings.Contains(out, model) {
		t.Errorf("the demo does not say it runs the real tiny.en (%s): %q", model, out)
	}
	pw := regexp.MustCompile(`password "([^"]+)"`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("no demo password in %q", out)
	}
	a := newAPIClient(t, base, "demo", pw[1])
	var rooms []struct {
		ID int64 `json:"id"`
	}
	a.call("GET", "/api/rooms", nil, &rooms)
	if len(rooms) == 0 {
		t.Fatal("no demo room")
	}
	var sess struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if st := a.call("POST", fmt.Sprintf("/api/rooms/%d/sessions", rooms[0].ID), map[string]any{"consent": true}, &sess); st != 201 {
		t.Fatalf("start: %d", st)
	}
	var v struct {
		Session  struct{ State string } `json:"session"`
		Segments []domain.Segment       `json:"segments"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for a.call("GET", "/api/sessions/"+sess.ID, nil, &v); v.Session.State != "stopped"; a.call("GET", "/api/sessions/"+sess.ID, nil, &v) {
		if time.Now().After(deadline) {
			t.Fatalf("session still %s", v.Session.State)
		}
		time.Sleep(300 * time.Millisecond)
	}
	got := transcriptText(v.Segments)
	if r := textdiff.WER(jfkReference, got); r.WER != 0 {
		t.Errorf("live demo room: WER %.3f: %q", r.WER, got)
	}
}
