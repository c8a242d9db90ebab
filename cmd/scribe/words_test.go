package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/testmodels"
	"scribe/internal/textdiff"
)

// jfkReference is the reference text of ../shared/audio/jfk.wav (../shared/README.md).
const jfkReference = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."

func jfkPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(config.SharedDir(), "audio", "jfk.wav")
	if _, err := os.Stat(p); err != nil {
		t.Skip("../shared/audio/jfk.wav not available")
	}
	return p
}

func transcriptText(segs []domain.Segment) string {
	var parts []string
	for _, s := range segs {
		if s.Text != "" {
			parts = append(parts, s.Text)
		}
	}
	return strings.Join(parts, " ")
}

// The converted real tiny.en gives the reference sentence, word for word after
// normalisation (case, punctuation), through `scribe transcribe` and through whisper.cpp's
// own whisper-cli on the same file: the converter is right, and the pipeline (clean-up,
// Silero, per-utterance decoding) costs no words.
func TestJFKRealWordsThroughTranscribeAndWhisperCLI(t *testing.T) {
	model := testmodels.Real(t, "tiny.en")
	vad := testmodels.VAD(t)
	jfk := jfkPath(t)
	code, out, stderr := runCLI("transcribe", jfk, "--model", model, "--vad-model", vad, "--format", "json", "--threads", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var tr domain.Transcript
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	got := transcriptText(tr.Segments)
	if r := textdiff.WER(jfkReference, got); r.WER != 0 {
		t.Errorf("scribe transcribe: WER %.3f (%d errors): %q", r.WER, r.Errors(), got)
	}
	for _, s := range tr.Segments {
		if s.HasFlag(domain.FlagUntranscribed) {
			t.Errorf("segment %.2f–%.2f untranscribed with a real model", s.Start, s.End)
		}
	}

	cli, err := exec.LookPath("whisper-cli")
	if err != nil {
		t.Skip("whisper-cli not installed (Debian whisper.cpp-tools, in the sid root)")
	}
	b, err := exec.Command(cli, "-m", model, "-f", jfk, "-t", "2", "-np").Output()
	if err != nil {
		t.Fatalf("whisper-cli: %v", err)
	}
	var lines []string
	for _, m := range regexp.MustCompile(`(?m)^\[[^\]]*\]\s*(.*)$`).FindAllStringSubmatch(string(b), -1) {
		lines = append(lines, m[1])
	}
	if r := textdiff.WER(jfkReference, strings.Join(lines, " ")); r.WER != 0 {
		t.Errorf("whisper-cli: WER %.3f: %q", r.WER, lines)
	}
}

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
