package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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

// transcribeJSON runs `scribe transcribe FILE --format json` on 2 threads and reads it.
func transcribeJSON(t *testing.T, file, model, vad string) domain.Transcript {
	t.Helper()
	code, out, stderr := runCLI("transcribe", file, "--model", model, "--vad-model", vad, "--format", "json", "--threads", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var tr domain.Transcript
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	return tr
}

// The converted real tiny.en gives the reference sentence, word for word after
// normalisation (case, punctuation), through `scribe transcribe` and through whisper.cpp's
// own whisper-cli on the same file: the converter is right, and the pipeline (clean-up,
// Silero, decoding in packed windows) costs no words.
func TestJFKRealWordsThroughTranscribeAndWhisperCLI(t *testing.T) {
	model := testmodels.Real(t, "tiny.en")
	vad := testmodels.VAD(t)
	jfk := jfkPath(t)
	tr := transcribeJSON(t, jfk, model, vad)
	got := domain.Text(tr.Segments)
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
