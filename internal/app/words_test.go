package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/source"
	"scribe/internal/testmodels"
)

// realConfig is testConfig on the real tiny.en converted from PyPI.
func realConfig(t testing.TB) config.Config {
	cfg := testConfig(t)
	cfg.Models.Whisper = testmodels.Real(t, "tiny.en")
	return cfg
}

// transcribeLive runs clip through the live pipeline as a room does (provisional text
// on, 0.1 s reads), as fast as the decoder allows, and returns the committed segments.
func transcribeLive(t testing.TB, rt *Runtime, clip *audio.Clip) []domain.Segment {
	t.Helper()
	c16 := clip.To16k()
	src, err := source.NewClip(c16.Channels, 100*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := rt.NewPipeline(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var segs []domain.Segment
	err = p.Transcribe(context.Background(), src, 0, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventCommitted {
			segs = append(segs, ev.Segment)
		}
	})
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return segs
}

func words(segs []domain.Segment) (n int, text []string) {
	for _, s := range segs {
		if f := strings.Fields(s.Text); len(f) > 0 {
			n += len(f)
			text = append(text, fmt.Sprintf("%.1f–%.1f %q", s.Start, s.End, s.Text))
		}
	}
	return n, text
}

// noSpeechClips makes five minutes each of what a consultation room sounds like when
// nobody speaks, with sox: digital silence, room tone (ventilation rumble and mains hum),
// pink noise at −40 dBFS RMS, and door slams with bursts of keyboard typing over room tone.
func noSpeechClips(t testing.TB, seconds int) map[string]string {
	t.Helper()
	if _, err := exec.LookPath("sox"); err != nil {
		t.Skip("sox not installed (it is in the sid build root)")
	}
	dir := t.TempDir()
	sox := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
			t.Fatalf("sox %v: %v\n%s", args, err, out)
		}
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	n := strconv.Itoa(seconds)
	fmtArgs := []string{"-r", "16000", "-b", "16", "-c", "1"}
	gen := func(out string, effects ...string) {
		sox(append(append([]string{"-n"}, fmtArgs...), append([]string{out}, effects...)...)...)
	}

	gen(f("silence.wav"), "trim", "0", n)
	gen(f("rumble.wav"), "synth", n, "brownnoise", "lowpass", "300", "gain", "-n", "-45")
	gen(f("hum.wav"), "synth", n, "sine", "50", "gain", "-n", "-55")
	sox("-m", f("rumble.wav"), f("hum.wav"), f("room-tone.wav"))
	// Pink noise scaled to −40 dBFS RMS: sox's stats give the RMS of what it made.
	gen(f("pink-raw.wav"), "synth", n, "pinknoise", "gain", "-n", "-20")
	sox(f("pink-raw.wav"), f("pink-40dBFS.wav"), "gain", fmt.Sprintf("%.2f", -40-soxStat(t, f("pink-raw.wav"), "RMS lev dB")))
	// A 30 s pattern: typing (8 s of key clicks at uneven gaps), a pause, a door slam
	// (a sharp low thump near full scale), a pause; repeated, then laid over room tone.
	gen(f("click.wav"), "synth", "0.012", "whitenoise", "highpass", "1500", "fade", "q", "0.001", "0.012", "0.01", "gain", "-n", "-12")
	var typing []string
	for i := 0; i < 40; i++ {
		gap := f(fmt.Sprintf("gap%d.wav", i))
		gen(gap, "trim", "0", fmt.Sprintf("%.3f", 0.09+0.05*float64((i*7)%5)))
		typing = append(typing, f("click.wav"), gap)
	}
	sox(append(typing, f("typing.wav"))...)
	gen(f("slam.wav"), "synth", "0.5", "brownnoise", "lowpass", "600", "fade", "q", "0.002", "0.5", "0.45", "gain", "-n", "-1")
	gen(f("pause1.wav"), "trim", "0", "10")
	gen(f("pause2.wav"), "trim", "0", "11.5")
	sox(f("typing.wav"), f("pause1.wav"), f("slam.wav"), f("pause2.wav"), f("pattern.wav"))
	sox(f("pattern.wav"), f("events.wav"), "repeat", strconv.Itoa(seconds/30), "trim", "0", n)
	sox("-m", f("events.wav"), f("room-tone.wav"), f("door-and-typing.wav"))
	// The clips are what they claim to be (a sox mistake must not make the test vacuous).
	for _, c := range []struct {
		file, stat string
		lo, hi     float64
	}{{"room-tone.wav", "RMS lev dB", -60, -40}, {"pink-40dBFS.wav", "RMS lev dB", -40.5, -39.5},
		{"door-and-typing.wav", "Pk lev dB", -9, 0}, {"silence.wav", "Pk lev dB", -200, -90}} {
		if v := soxStat(t, f(c.file), c.stat); v < c.lo || v > c.hi {
			t.Fatalf("%s: %s %.1f, want %.0f…%.0f", c.file, c.stat, v, c.lo, c.hi)
		}
	}
	return map[string]string{
		"silence": f("silence.wav"), "room tone": f("room-tone.wav"),
		"pink noise −40 dBFS": f("pink-40dBFS.wav"), "door slams and typing": f("door-and-typing.wav"),
	}
}

// soxStat reads one figure (e.g. "RMS lev dB", "Pk lev dB") from `sox FILE -n stats`.
func soxStat(t testing.TB, path, name string) float64 {
	t.Helper()
	out, err := exec.Command("sox", path, "-n", "stats").CombinedOutput()
	if err != nil {
		t.Fatalf("sox stats %s: %v", path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				break
			}
			if fs[0] == "-inf" {
				return -300
			}
			v, err := strconv.ParseFloat(fs[0], 64)
			if err == nil {
				return v
			}
		}
	}
	t.Fatalf("no %q in sox stats of %s:\n%s", name, path, out)
	return 0
}

// Hallucination guard with a real model: five minutes each of silence, room tone, pink
// noise at −40 dBFS, and door slams with keyboard typing commit no words at all, in file
// mode or through the live pipeline. (whisper-cli's output on the same clips is in
// `scribe bench hallucination` and the README.)
func TestNoWordsFromRoomsWithoutSpeech(t *testing.T) {
	clips := noSpeechClips(t, 300)
	rt, err := Load(realConfig(t), Options{Provisional: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for name, path := range clips {
		clip, err := audio.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := rt.TranscribeClip(context.Background(), clip)
		if err != nil {
			t.Fatal(err)
		}
		if n, text := words(tr.Segments); n > 0 {
			t.Errorf("%s, file mode: %d words committed: %s", name, n, strings.Join(text, "; "))
		}
		live := transcribeLive(t, rt, clip)
		if n, text := words(live); n > 0 {
			t.Errorf("%s, live: %d words committed: %s", name, n, strings.Join(text, "; "))
		}
		t.Logf("%s: %.0f s, VAD speech %v, %d file segments, %d live segments", name, tr.AudioSeconds, tr.Speech, len(tr.Segments), len(live))
	}
}
