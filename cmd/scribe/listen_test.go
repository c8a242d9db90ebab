package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"scribe/internal/audio"
	"scribe/internal/config"
)

// scribe listen on a "microphone": the default ALSA device reads jfk.wav (as raw float32,
// what PortAudio negotiates with a file PCM; see internal/capture's tests). The live
// transcript of its four phrases is printed as committed lines.
func TestListenPrintsLiveTranscript(t *testing.T) {
	model, vad := testModels(t)
	if _, err := os.Stat("/usr/share/alsa/alsa.conf"); err != nil {
		t.Skip("ALSA configuration not installed")
	}
	clip, err := audio.ReadFile(filepath.Join(config.SharedDir(), "audio", "jfk.wav"))
	if err != nil {
		t.Fatal(err)
	}
	speech := clip.To16k().Channels[0]
	dir := t.TempDir()
	raw := filepath.Join(dir, "mic.raw")
	b := make([]byte, 4*len(speech))
	for i, v := range speech {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	os.WriteFile(raw, b, 0o600)
	conf := filepath.Join(dir, "asound.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("pcm.!default { type file slave.pcm \"null\" file \"/dev/null\" infile %q format \"raw\" }\n", raw)), 0o600)
	t.Setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf:"+conf)

	cfgPath := filepath.Join(dir, "scribe.yaml")
	os.WriteFile(cfgPath, []byte("transcription: {temperature_inc: 0}\n"), 0o600) // fallback only repeats the test model's noise
	code, out, stderr := runCLI("listen", "--config", cfgPath, "--model", model, "--vad-model", vad, "--seconds", "2", "--threads", "2", "--rate", "16000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// One voice on one microphone: voice clustering names it the clinician (the first
	// voice) or leaves it unknown, never the patient.
	lines := regexp.MustCompile(`(?m)^\[00:00:\d\d\] (clinician|unknown): .+$`).FindAllString(out, -1)
	t.Logf("%d committed lines:\n%s\nstderr: %s", len(lines), out, stderr)
	if len(lines) < 3 {
		t.Errorf("want the jfk phrases as committed lines, got %q", out)
	}
	if !regexp.MustCompile(`RECORDING`).MatchString(stderr) {
		t.Errorf("no recording indicator on stderr: %q", stderr)
	}
}
