package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scribe/internal/app"
	"scribe/internal/config"
	"scribe/internal/corpus"
	"scribe/internal/testmodels"
)

// fenceCeilings are the WER ceilings of the PriMock57 regression fence, per rendered
// consultation (the first 30 s, clean, scribe's default voices, stereo), in file mode with
// the real tiny.en and 2 threads. Each is the WER measured when the fence was set (pooled
// 34.1 %, per file 19–48 % and one outlier; `go test -v` logs each file's) plus 0.10,
// rounded up to 0.05: a regression fence, not a target. Re-measured at 965dadf (one
// window per libwhisper call): pooled 31.6 %, per file 19–40 %, and the ceilings of the
// two files that improved most lowered. day1_consultation03 ends on an utterance cut
// off at 30 s, which tiny.en sometimes decodes into a loop of invented sentences (0.77 at
// 1e56b07, 0.726 at 8cb5327; 0.39–0.44 in three logged runs between, under 0.60 in two
// more): its ceiling stays above that swing (lowered to 0.60 at 965dadf, which the 0.726
// run broke: back to 0.90). The swing was the render's: espeak-ng seeded the patient
// voice's breath noise from the clock, so each machine and CI run rendered other audio
// (renders of one commit a few seconds apart, one machine: 0.333–0.393 in three, 0.738
// in the fourth; pooled 0.308–0.311 and 0.339; day1_consultation01 0.362–0.483). Renders
// are the same everywhere since (corpus.speak, -D): 0.357 here, pooled 0.309.
// The fence was first set at 27.4 % pooled when file mode packed both speakers into one
// window; one speaker per window (transcribe.Packer) cost those 6.7 points and brought
// the words on the wrong speaker from 33 % to 1.5 % (fenceWDERCeiling).
// Lower a ceiling when a change improves a file; never raise one without a measurement
// that says why.
var fenceCeilings = map[string]float64{
	"day1_consultation01-30s": 0.50, "day1_consultation02-30s": 0.40, "day1_consultation03-30s": 0.90,
	"day1_consultation04-30s": 0.50, "day1_consultation05-30s": 0.35,
	"day2_consultation01-30s": 0.40, "day2_consultation02-30s": 0.40, "day2_consultation03-30s": 0.45,
	"day2_consultation04-30s": 0.45, "day2_consultation05-30s": 0.45,
	"day3_consultation01-30s": 0.40, "day3_consultation02-30s": 0.45, "day3_consultation03-30s": 0.45,
	"day3_consultation04-30s": 0.50, "day3_consultation05-30s": 0.40,
	"day4_consultation01-30s": 0.35, "day4_consultation02-30s": 0.50, "day4_consultation03-30s": 0.40,
	"day4_consultation04-30s": 0.30, "day4_consultation05-30s": 0.45,
}

// fencePooledCeiling bounds the WER pooled over all fence files (measured 0.316 at
// 965dadf, + 0.03; 0.341 when first set).
const fencePooledCeiling = 0.35

// fenceWDERCeiling bounds the word-level diarization error pooled over the fence files
// (microphone pair): the share of words given to the wrong speaker or to none (measured
// 0.015). Packing windows that mixed speakers once put 0.33 of the words on the wrong one.
const fenceWDERCeiling = 0.05

// The PriMock57 regression fence: the first 30 s of consultations 01–05 of days 1–4
// (scripts/make-test-audio), transcribed in file mode with the real tiny.en, stay under
// their measured WER ceilings, per file and pooled. Whatever costs words — clean-up,
// VAD, packing, prompts, decoding settings — fails here.
func TestPriMockWERFence(t *testing.T) {
	src, _ := filepath.Abs("../../testdata/audio/days1-4-30s")
	dir := t.TempDir()
	n := 0
	for name := range fenceCeilings {
		stem := filepath.Join(src, name)
		if _, err := os.Stat(stem + ".truth.json"); err != nil {
			if os.Getenv(testmodels.RequireEnv) != "" {
				t.Fatalf("%s missing: scripts/make-test-audio renders it", stem+".truth.json")
			}
			t.Skipf("%s missing (scripts/make-test-audio)", stem+".truth.json")
		}
		for _, ext := range []string{".truth.json", ".stereo.wav", ".mono.wav"} {
			if err := os.Symlink(stem+ext, filepath.Join(dir, name+ext)); err != nil {
				t.Fatal(err)
			}
		}
		n++
	}
	cfg := config.Default()
	cfg.Models.Whisper = testmodels.Real(t, "tiny.en")
	cfg.Models.VAD = testmodels.VAD(t)
	cfg.Models.Workers, cfg.Models.Threads = 1, 2
	cfg.DataDir = t.TempDir()
	rt, err := app.Load(cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	rep, err := RunAccuracy(context.Background(), rt, dir, AccuracyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != n {
		t.Fatalf("scored %d files of %d", len(rep.Files), n)
	}
	for _, f := range rep.Files {
		if f.Condition != "clean" || f.Voices != strings.Join(corpus.DefaultVoices[:], ",") {
			t.Errorf("%s: rendered %s with %s, the fence's ceilings are for clean audio and the default voices", f.File, f.Condition, f.Voices)
		}
		ceiling := fenceCeilings[f.File]
		t.Logf("%s: WER %.3f (%d/%d words), ceiling %.2f", f.File, f.WERValue, f.WER.Errors(), f.RefWords, ceiling)
		if f.WERValue > ceiling {
			t.Errorf("%s: WER %.3f above its ceiling %.2f", f.File, f.WERValue, ceiling)
		}
	}
	p := rep.Pools[0]
	t.Logf("pooled WER %.3f, ceiling %.2f; WDER %.3f, ceiling %.2f; speaker accuracy %.3f; VAD precision %.3f, recall %.3f",
		rep.WER, fencePooledCeiling, deref(p.WDER), fenceWDERCeiling, rep.SpeakerAccuracy, rep.VADPrecision, rep.VADRecall)
	if rep.WER > fencePooledCeiling {
		t.Errorf("pooled WER %.3f above its ceiling %.2f", rep.WER, fencePooledCeiling)
	}
	if len(rep.Pools) != 1 || p.WDER == nil || *p.WDER > fenceWDERCeiling {
		t.Errorf("pooled WDER %.3f above its ceiling %.2f (%d pools)", deref(p.WDER), fenceWDERCeiling, len(rep.Pools))
	}
}
