package app

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/domain"
	"scribe/internal/dsp"
	"scribe/internal/vad"
	"scribe/internal/whisper"
)

// benchClips are the recordings the transcription benchmarks use: jfk.wav, and a rendered
// consultation excerpt when scripts/make-test-audio has made one (it has pauses, which
// the VAD skips and whisper-cli decodes).
func benchClips(b *testing.B) []string {
	clips := []string{sharedFile(b, "audio/jfk.wav")}
	if m, _ := filepath.Glob("../../testdata/audio/*.mono.wav"); len(m) > 0 {
		clips = append(clips, m[0])
	}
	return clips
}

// BenchmarkFrontEnd measures clean-up plus Silero VAD on one core: seconds of audio
// processed per second of wall time ("xRT"; above 1 keeps up with a live room).
func BenchmarkFrontEnd(b *testing.B) {
	clip, err := audio.ReadFile(sharedFile(b, "audio/jfk.wav"))
	if err != nil {
		b.Fatal(err)
	}
	speech := clip.To16k().Channels[0]
	v, err := whisper.LoadVAD(sharedFile(b, "models/for-tests-silero-v6.2.0-ggml.bin"), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	cfg := vad.DefaultConfig()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		v.Reset()
		cleaned := dsp.ProcessAll(dsp.DefaultConfig(), speech)
		if _, err := vad.Speech(cfg, v, cleaned); err != nil {
			b.Fatal(err)
		}
	}
	audioSec := float64(len(speech)) / domain.SampleRate * float64(b.N)
	b.ReportMetric(audioSec/time.Since(start).Seconds(), "xRT")
}

// BenchmarkTranscribeVsWhisperCLI times scribe's file transcription against Debian's
// whisper-cli on the same file, model and threads. Both report wall seconds per run;
// the ratio is scribe/whisper-cli (below 1: scribe is faster, mainly because the VAD
// keeps silence from the decoder).
func BenchmarkTranscribeVsWhisperCLI(b *testing.B) {
	cli, err := exec.LookPath("whisper-cli")
	if err != nil {
		b.Skip("whisper-cli not installed (Debian whisper.cpp-tools)")
	}
	cfg := testConfig(b)
	threads := 2
	if s := os.Getenv("SCRIBE_BENCH_THREADS"); s != "" {
		threads, _ = strconv.Atoi(s)
	}
	cfg.Models.Threads = threads
	// Temperature fallback off on both sides: on the weightless test model every decode
	// fails the quality checks and is redone five times, which measures nothing real.
	cfg.Transcription.TemperatureInc = 0
	rt, err := Load(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	for _, path := range benchClips(b) {
		clip, err := audio.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(path), func(b *testing.B) {
			var ours, theirs time.Duration
			for range b.N {
				t0 := time.Now()
				if _, err := rt.TranscribeClip(context.Background(), clip); err != nil {
					b.Fatal(err)
				}
				ours += time.Since(t0)
				t1 := time.Now()
				// Greedy decoding, no fallback, on both sides (whisper-cli defaults to beam search).
				out, err := exec.Command(cli, "-m", cfg.Models.Whisper, "-f", path, "-t", strconv.Itoa(threads), "-bs", "1", "-bo", "1", "-nf", "-np").CombinedOutput()
				if err != nil {
					b.Fatalf("whisper-cli: %v\n%s", err, out)
				}
				theirs += time.Since(t1)
			}
			n := float64(b.N)
			b.ReportMetric(ours.Seconds()/n, "scribe-s/op")
			b.ReportMetric(theirs.Seconds()/n, "whispercli-s/op")
			b.ReportMetric(ours.Seconds()/theirs.Seconds(), "ratio")
			b.ReportMetric(clip.Duration()/(ours.Seconds()/n), "scribe-xRT")
		})
	}
}
