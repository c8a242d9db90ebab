package corpus

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// NoSpeechClip is a recording of a consultation room in which nobody speaks.
type NoSpeechClip struct {
	Name string
	Path string
}

// NoSpeechClips makes, with sox in dir, seconds (a multiple of 30) each of what a
// consultation room sounds like when nobody speaks: digital silence, room tone
// (ventilation rumble and mains hum), pink noise at −40 dBFS RMS, and door slams with
// bursts of keyboard typing over room tone. Each clip is checked to be what it claims
// (levels by sox's stats), so a sox mistake cannot make a test or figure vacuous.
func NoSpeechClips(dir string, seconds int) ([]NoSpeechClip, error) {
	if _, err := exec.LookPath("sox"); err != nil {
		return nil, fmt.Errorf("no-speech clips: sox not installed: %w", err)
	}
	if seconds < 30 {
		return nil, fmt.Errorf("no-speech clips: %d s is shorter than the 30 s event pattern", seconds)
	}
	var failed error
	sox := func(args ...string) {
		if failed != nil {
			return
		}
		if out, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
			failed = fmt.Errorf("sox %v: %w\n%s", args, err, out)
		}
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	n := strconv.Itoa(seconds)
	gen := func(out string, effects ...string) {
		sox(append([]string{"-n", "-r", "16000", "-b", "16", "-c", "1", out}, effects...)...)
	}

	gen(f("silence.wav"), "trim", "0", n)
	gen(f("rumble.wav"), "synth", n, "brownnoise", "lowpass", "300", "gain", "-n", "-45")
	gen(f("hum.wav"), "synth", n, "sine", "50", "gain", "-n", "-55")
	sox("-m", f("rumble.wav"), f("hum.wav"), f("room-tone.wav"))
	// Pink noise scaled to −40 dBFS RMS: sox's stats give the RMS of what it made.
	gen(f("pink-raw.wav"), "synth", n, "pinknoise", "gain", "-n", "-20")
	if failed != nil {
		return nil, failed
	}
	rms, err := SoxStat(f("pink-raw.wav"), "RMS lev dB")
	if err != nil {
		return nil, err
	}
	sox(f("pink-raw.wav"), f("pink-40dBFS.wav"), "gain", fmt.Sprintf("%.2f", -40-rms))
	// A 30 s pattern: typing (8 s of key clicks at uneven gaps), a pause, a door slam
	// (a sharp low thump near full scale), a pause; repeated, then laid over room tone.
	gen(f("click.wav"), "synth", "0.012", "whitenoise", "highpass", "1500", "fade", "q", "0.001", "0.012", "0.01", "gain", "-n", "-12")
	var typing []string
	for i := range 40 {
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
	if failed != nil {
		return nil, failed
	}
	for _, c := range []struct {
		file, stat string
		lo, hi     float64
	}{{"room-tone.wav", "RMS lev dB", -60, -40}, {"pink-40dBFS.wav", "RMS lev dB", -40.5, -39.5},
		{"door-and-typing.wav", "Pk lev dB", -9, 0}, {"silence.wav", "Pk lev dB", -400, -90}} {
		v, err := SoxStat(f(c.file), c.stat)
		if err != nil {
			return nil, err
		}
		if v < c.lo || v > c.hi {
			return nil, fmt.Errorf("no-speech clips: %s: %s %.1f, want %.0f…%.0f", c.file, c.stat, v, c.lo, c.hi)
		}
	}
	return []NoSpeechClip{
		{"silence", f("silence.wav")}, {"room tone", f("room-tone.wav")},
		{"pink noise −40 dBFS", f("pink-40dBFS.wav")}, {"door slams and typing", f("door-and-typing.wav")},
	}, nil
}

// SoxStat reads one figure (e.g. "RMS lev dB", "Pk lev dB") from `sox FILE -n stats`;
// −inf (digital silence) reads as −300.
func SoxStat(path, name string) (float64, error) {
	out, err := exec.Command("sox", path, "-n", "stats").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("sox stats %s: %w", path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				break
			}
			if fs[0] == "-inf" {
				return -300, nil
			}
			if v, err := strconv.ParseFloat(fs[0], 64); err == nil {
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("no %q in sox stats of %s:\n%s", name, path, out)
}
