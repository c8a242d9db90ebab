package app

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"scribe/internal/audio"
	"scribe/internal/config"
	"scribe/internal/corpus"
	"scribe/internal/diarize"
	"scribe/internal/domain"
	"scribe/internal/dsp"
	"scribe/internal/vad"
	"scribe/internal/whisper"
)

const shared = "../../../shared"

func sharedFile(t testing.TB, rel string) string {
	t.Helper()
	p, _ := filepath.Abs(filepath.Join(shared, rel))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not available (tests expect ../shared beside the repo): %v", rel, err)
	}
	return p
}

// testConfig points at whisper.cpp's weightless tiny.en test model and the real Silero.
func testConfig(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.Models.Whisper = sharedFile(t, "models/for-tests-ggml-tiny.en.bin")
	cfg.Models.VAD = sharedFile(t, "models/for-tests-silero-v6.2.0-ggml.bin")
	cfg.Models.Workers, cfg.Models.Threads = 1, 2
	cfg.DataDir = t.TempDir()
	return cfg
}

var jfkPhrases = []domain.Interval{{Start: 0.32, End: 2.27}, {Start: 3.27, End: 4.41}, {Start: 5.38, End: 7.68}, {Start: 8.16, End: 10.62}}

// End to end on real libwhisper: jfk.wav through clean-up, Silero and the decoder. The
// test model's text is meaningless, so the test asserts what must hold whatever the
// words: every phrase is covered by a segment, nothing is invented outside speech, and
// no heard speech is dropped (empty decodes stay as untranscribed segments).
func TestTranscribeJFKEndToEnd(t *testing.T) {
	rt, err := Load(testConfig(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	clip, err := audio.ReadFile(sharedFile(t, "audio/jfk.wav"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rt.TranscribeClip(context.Background(), clip)
	if err != nil {
		t.Fatal(err)
	}
	if tr.AudioSeconds < 10.9 || tr.AudioSeconds > 11.1 {
		t.Errorf("audio_seconds %.2f", tr.AudioSeconds)
	}
	if len(tr.Segments) == 0 {
		t.Fatal("no segments")
	}
	var segs []domain.Interval
	for _, s := range tr.Segments {
		segs = append(segs, domain.Interval{Start: s.Start, End: s.End})
		// One microphone, one voice: voice clustering finds one speaker, whom the
		// first-speaker calibration names the clinician; never the patient.
		if s.Speaker == domain.SpeakerPatient {
			t.Errorf("a one-voice mono recording has a patient segment: %+v", s)
		}
		if s.Text == "" && !s.HasFlag(domain.FlagUntranscribed) {
			t.Errorf("empty segment without the untranscribed flag: %+v", s)
		}
	}
	if cov := domain.OverlapSeconds(jfkPhrases, segs) / domain.TotalSeconds(jfkPhrases); cov < 0.95 {
		t.Errorf("segments cover %.0f%% of the speech", cov*100)
	}
	// Outside speech there may only be each utterance's padding and the 0.48 s pause
	// between the last two phrases (shorter than the 0.6 s that ends an utterance).
	pad := rt.Config.Audio.Padding
	if out, bound := domain.TotalSeconds(segs)-domain.OverlapSeconds(jfkPhrases, segs), 2*pad*float64(len(tr.Speech))+0.48+0.1; out > bound {
		t.Errorf("%.2f s of segments lie outside speech (bound %.2f)", out, bound)
	}
	t.Logf("%d segments, speech %v, timings %+v", len(tr.Segments), tr.Speech, tr.Timings)
}

// The clean-up chain must not cost the VAD its speech: jfk.wav mixed with white and pink
// noise at 5 dB SNR, cleaned, then scored by the real Silero model.
func TestCleanedNoisySpeechKeepsVADRecall(t *testing.T) {
	clip, err := audio.ReadFile(sharedFile(t, "audio/jfk.wav"))
	if err != nil {
		t.Fatal(err)
	}
	speech := clip.To16k().Channels[0]
	v, err := whisper.LoadVAD(sharedFile(t, "models/for-tests-silero-v6.2.0-ggml.bin"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// Recall is measured as the pipeline cuts utterances for the decoder: with its 0.2 s
	// padding (a pause rule of 0.25 s keeps the phrases apart). The unpadded figure is
	// logged too: noise at 5 dB masks the quiet tails of words.
	cfg := vad.DefaultConfig()
	cfg.MinSilence, cfg.MaxUtterance = 0.25, 30
	tight := cfg
	tight.Padding = 0.03
	for _, noise := range []struct {
		name string
		gen  func(int, int64) []float32
	}{{"white", dsp.WhiteNoise}, {"pink", dsp.PinkNoise}} {
		noisy := dsp.MixAtSNR(speech, noise.gen(len(speech), 7), jfkPhrases, domain.SampleRate, 5)
		dcfg := dsp.DefaultConfig()
		dcfg.AGC = false
		cleaned := dsp.ProcessAll(dcfg, noisy)
		found, err := vad.Speech(cfg, v, cleaned)
		if err != nil {
			t.Fatal(err)
		}
		recall := domain.OverlapSeconds(jfkPhrases, found) / domain.TotalSeconds(jfkPhrases)
		v.Reset()
		foundTight, err := vad.Speech(tight, v, cleaned)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s noise: unpadded VAD recall %.1f%%", noise.name, domain.OverlapSeconds(jfkPhrases, foundTight)/domain.TotalSeconds(jfkPhrases)*100)
		before := dsp.SNR(noisy, jfkPhrases, domain.SampleRate)
		after := dsp.SNR(cleaned, jfkPhrases, domain.SampleRate)
		t.Logf("%s noise: SNR %.1f → %.1f dB, VAD recall %.1f%% (%v)", noise.name, before, after, recall*100, found)
		if recall < 0.95 {
			t.Errorf("%s noise: VAD recall on cleaned speech %.1f%% < 95%%", noise.name, recall*100)
		}
	}
}

// A rendered PriMock57 consultation (two espeak-ng voices on two channels, with exact
// ground truth) through the whole stack: speech is found, and each segment is given to
// the right speaker by channel energy. The words are not checked: the test model has no
// weights.
func TestTranscribeRenderedConsultation(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed (it is in the sid build root)")
	}
	corpusDir := sharedFile(t, "corpus/primock57")
	r, err := corpus.Render(context.Background(), corpusDir, "day1_consultation01", corpus.RenderOptions{OutDir: t.TempDir(), MaxSeconds: 75})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Transcription.TemperatureInc = 0 // fallback only repeats the test model's noise
	rt, err := Load(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	clip, err := audio.ReadFile(r.StereoPath)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rt.TranscribeClip(context.Background(), clip)
	if err != nil {
		t.Fatal(err)
	}
	var truth []domain.Interval
	for _, u := range r.Truth.Utterances {
		truth = append(truth, domain.Interval{Start: u.Start, End: u.End})
	}
	var segs []domain.Interval
	var agree, judged float64
	for _, s := range tr.Segments {
		iv := domain.Interval{Start: s.Start, End: s.End}
		segs = append(segs, iv)
		for _, u := range r.Truth.Utterances {
			ov := domain.OverlapSeconds([]domain.Interval{iv}, []domain.Interval{{Start: u.Start, End: u.End}})
			judged += ov
			if s.Speaker == u.Speaker {
				agree += ov
			}
		}
	}
	recall := domain.OverlapSeconds(truth, segs) / domain.TotalSeconds(truth)
	speakerAcc := agree / judged
	t.Logf("%d utterances in truth, %d segments; speech recall %.1f%%, speaker agreement %.1f%% of speech time; decode %.1f s for %.0f s of audio",
		len(truth), len(tr.Segments), recall*100, speakerAcc*100, tr.Timings.Decode.Seconds(), tr.AudioSeconds)
	if recall < 0.9 {
		t.Errorf("segments cover %.1f%% of the spoken time, want ≥ 90%%", recall*100)
	}
	if speakerAcc < 0.9 {
		t.Errorf("speaker attribution agrees on %.1f%% of speech time, want ≥ 90%%", speakerAcc*100)
	}
}

// roomRenders are the simulated-room consultations scripts/make-test-audio renders.
func roomRenders(t *testing.T) []string {
	t.Helper()
	paths, _ := filepath.Glob("../../testdata/audio/room/*-*cap-*.truth.json")
	if len(paths) == 0 {
		t.Skip("no room renders in testdata/audio/room (scripts/make-test-audio makes them; make test runs it)")
	}
	return paths
}

// Floors of time-weighted speaker attribution through the whole pipeline (clean-up,
// Silero, the attribution hook, the weightless test model's segments) on the rendered
// rooms, measured at 99–100 % (array) and 96–98 % (one capsule) when they were set; a
// fall below them is a regression, not noise.
const (
	arrayFloor  = 0.95
	singleFloor = 0.90
	unknownCeil = 0.10
)

// A consultation in a simulated consulting room (RT60 0.5–0.7 s, diffuse noise at 10 dB
// SNR) heard by a 2- or 4-capsule array on the desk, transcribed as a file is: speakers
// are attributed from directions of arrival (GCC-PHAT, calibrated by who speaks first)
// with the array, and by voice clustering from capsule 0 alone.
func TestRoomAttributionThroughPipeline(t *testing.T) {
	paths := roomRenders(t)
	cfg := testConfig(t)
	cfg.Transcription.TemperatureInc = 0
	cfg.Audio.Microphones.Kind = diarize.KindArray // no speaker-turn cuts by channel dominance
	cfg.Audio.Microphones.Capsules, cfg.Audio.Microphones.SpacingMM = 2, 65
	rt, err := Load(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for _, p := range paths {
		truth, err := corpus.ReadTruth(p)
		if err != nil {
			t.Fatal(err)
		}
		clip, err := audio.ReadFile(corpus.AudioPath(p, truth))
		if err != nil {
			t.Fatal(err)
		}
		var ref []domain.SpeakerSpan
		for _, u := range truth.Utterances {
			ref = append(ref, domain.SpeakerSpan{Interval: domain.Interval{Start: u.Start, End: u.End}, Speaker: u.Speaker})
		}
		arr := truth.Room.Array
		for _, c := range []struct {
			name  string
			setup diarize.Setup
			clip  *audio.Clip
			floor float64
		}{
			{"array", diarize.Setup{Kind: diarize.KindArray, Capsules: arr.Capsules, SpacingMM: arr.SpacingMM, Layout: arr.Layout, Clinician: diarize.ClinicianFirst}, clip, arrayFloor},
			{"single", diarize.Setup{Kind: diarize.KindSingle}, &audio.Clip{Rate: clip.Rate, Channels: clip.Channels[:1]}, singleFloor},
		} {
			tr, err := rt.TranscribeClip(diarize.WithSetup(context.Background(), c.setup), c.clip)
			if err != nil {
				t.Fatal(err)
			}
			spans := diarize.Score(ref, tr.Speakers)
			segs := diarize.Score(ref, SegmentSpans(tr.Segments))
			t.Logf("%s, %s: segments %.1f%% correct, %.1f%% unknown; attribution spans %.1f%% correct, %.1f%% unknown",
				filepath.Base(p), c.name, segs.Value()*100, segs.UnknownShare()*100, spans.Value()*100, spans.UnknownShare()*100)
			if segs.Value() < c.floor || segs.UnknownShare() > unknownCeil {
				t.Errorf("%s, %s: %.1f%% of attributed speech time correct (floor %.0f%%), %.1f%% unknown (ceiling %.0f%%)",
					filepath.Base(p), c.name, segs.Value()*100, c.floor*100, segs.UnknownShare()*100, unknownCeil*100)
			}
		}
	}
}
