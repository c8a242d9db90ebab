package corpus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/domain"
	"scribe/internal/dsp"
)

func needEspeak(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not on PATH; run in the sid root: scripts/sidroot run go test ./internal/corpus/")
	}
}

// TestPlaceShiftsRunOnSpeech checks placement with made-up speech: a doctor utterance
// longer than its interval pushes the doctor's next one later, never the patient's.
func TestPlaceShiftsRunOnSpeech(t *testing.T) {
	const rate = domain.SampleRate
	tone := func(seconds float64) []float32 {
		x := make([]float32, int(seconds*rate))
		for i := range x {
			x[i] = 0.5
		}
		return x
	}
	c := &Consultation{ID: "t", Duration: 10}
	speech := []spoken{
		{Utterance{domain.SpeakerClinician, 1, 2, "a"}, tone(2.5), 300}, // runs on to 3.5
		{Utterance{domain.SpeakerPatient, 2.5, 4, "b"}, tone(1), 175},
		{Utterance{domain.SpeakerClinician, 3, 4, "c"}, tone(1), 175}, // must move to 3.7
		{Utterance{domain.SpeakerClinician, 8, 9.5, "d"}, tone(1), 175},
	}
	truth, ch := place(c, speech, 0)
	want := []TruthUtterance{
		{Speaker: domain.SpeakerClinician, Start: 1, End: 3.5, Text: "a", OrigStart: 1, OrigEnd: 2, SpeedWPM: 300},
		{Speaker: domain.SpeakerPatient, Start: 2.5, End: 3.5, Text: "b", OrigStart: 2.5, OrigEnd: 4, SpeedWPM: 175},
		{Speaker: domain.SpeakerClinician, Start: 3.7, End: 4.7, Text: "c", OrigStart: 3, OrigEnd: 4, SpeedWPM: 175},
		{Speaker: domain.SpeakerClinician, Start: 8, End: 9, Text: "d", OrigStart: 8, OrigEnd: 9.5, SpeedWPM: 175},
	}
	if len(truth.Utterances) != len(want) {
		t.Fatalf("got %d utterances", len(truth.Utterances))
	}
	for i, w := range want {
		g := truth.Utterances[i]
		if g.Speaker != w.Speaker || g.Text != w.Text || math.Abs(g.Start-w.Start) > 1e-9 || math.Abs(g.End-w.End) > 1e-9 || g.SpeedWPM != w.SpeedWPM {
			t.Errorf("utterance %d = %+v, want %+v", i, g, w)
		}
	}
	if truth.Duration != 10 || len(ch[0]) != 10*rate || len(ch[1]) != 10*rate {
		t.Errorf("duration %g, channel lengths %d %d", truth.Duration, len(ch[0]), len(ch[1]))
	}
	// The samples are where the truth says: doctor channel silent in the 3.5–3.7 s gap.
	if ch[0][int(3.6*rate)] != 0 || ch[0][int(3.8*rate)] == 0 || ch[1][int(3*rate)] == 0 || ch[1][int(5*rate)] != 0 {
		t.Error("channel samples do not match the placement")
	}

	// With a 5 s limit the utterance ending at 4.7 s stays, the one at 8 s goes.
	truth, ch = place(c, speech, 5)
	if len(truth.Utterances) != 3 || truth.Duration != 5 || len(ch[0]) != 5*rate {
		t.Errorf("limited: %d utterances, duration %g", len(truth.Utterances), truth.Duration)
	}
	// A limit that would cut an utterance drops it instead.
	truth, _ = place(c, speech, 4)
	for _, u := range truth.Utterances {
		if u.End > 4 {
			t.Errorf("utterance %+v extends past the 4 s limit", u)
		}
	}
	if len(truth.Utterances) != 2 {
		t.Errorf("4 s limit kept %d utterances, want 2", len(truth.Utterances))
	}
}

func TestRenderOptionsRejected(t *testing.T) {
	for name, opt := range map[string]RenderOptions{
		"no out dir":   {},
		"bad noise":    {OutDir: "x", NoiseKind: "brown"},
		"negative max": {OutDir: "x", MaxSeconds: -1},
		"nan snr":      {OutDir: "x", NoiseKind: "pink", SNRdB: math.NaN()},
	} {
		if _, err := Render(context.Background(), corpusDir, "day1_consultation01", opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	_, err := Render(context.Background(), corpusDir, "day1_consultation01", RenderOptions{OutDir: t.TempDir(), Espeak: "/nonexistent/espeak-ng"})
	if !errors.Is(err, ErrNoEspeak) {
		t.Errorf("missing espeak-ng: %v", err)
	}
}

// energy sums squares of x over the samples where in is true.
func energy(x []float32, in []bool) float64 {
	var e float64
	for i, v := range x {
		if in[i] {
			e += float64(v) * float64(v)
		}
	}
	return e
}

func speakerMask(n int, utts []TruthUtterance, sp domain.Speaker) []bool {
	m := make([]bool, n)
	for _, u := range utts {
		if u.Speaker != sp {
			continue
		}
		for i := int(u.Start * domain.SampleRate); i < min(n, int(u.End*domain.SampleRate)); i++ {
			m[i] = true
		}
	}
	return m
}

func TestRenderExcerpt(t *testing.T) {
	needEspeak(t)
	dir := needCorpus(t)
	out := t.TempDir()
	opt := RenderOptions{OutDir: out, MaxSeconds: 45, Jobs: 2}
	began := time.Now()
	r, err := Render(context.Background(), dir, "day1_consultation01", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rendered 45 s excerpt in %v: %d utterances", time.Since(began), len(r.Truth.Utterances))
	if r.Cached {
		t.Error("first render reported as cached")
	}

	clip, err := audio.ReadFile(r.StereoPath)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Rate != 16000 || len(clip.Channels) != 2 {
		t.Fatalf("stereo file: %d Hz, %d channels", clip.Rate, len(clip.Channels))
	}
	if math.Abs(clip.Duration()-45) > 0.01 || math.Abs(r.Truth.Duration-45) > 0.01 {
		t.Errorf("duration: file %.3f s, truth %.3f s, want 45", clip.Duration(), r.Truth.Duration)
	}
	mono, err := audio.ReadFile(r.MonoPath)
	if err != nil || len(mono.Channels) != 1 || mono.Frames() != clip.Frames() {
		t.Fatalf("mono file: %v", err)
	}

	n := clip.Frames()
	doctor := speakerMask(n, r.Truth.Utterances, domain.SpeakerClinician)
	patient := speakerMask(n, r.Truth.Utterances, domain.SpeakerPatient)
	doctorOnly, patientOnly, silent := make([]bool, n), make([]bool, n), make([]bool, n)
	for i := range n {
		doctorOnly[i] = doctor[i] && !patient[i]
		patientOnly[i] = patient[i] && !doctor[i]
		silent[i] = !doctor[i] && !patient[i]
	}
	l, rt := clip.Channels[0], clip.Channels[1]
	if e0, e1 := energy(l, doctorOnly), energy(rt, doctorOnly); !(e0 > 1000*e1) || e0 == 0 {
		t.Errorf("doctor-only spans: left energy %g, right %g; want left ≫ right", e0, e1)
	}
	if e0, e1 := energy(l, patientOnly), energy(rt, patientOnly); !(e1 > 1000*e0) || e1 == 0 {
		t.Errorf("patient-only spans: left energy %g, right %g; want right ≫ left", e0, e1)
	}
	if e := energy(l, silent) + energy(rt, silent); e != 0 {
		t.Errorf("energy %g outside every utterance of a clean render", e)
	}

	speakers := map[domain.Speaker]float64{} // last end per speaker
	for i, u := range r.Truth.Utterances {
		if u.Start < 0 || u.End > r.Truth.Duration || u.End <= u.Start || u.Text == "" {
			t.Errorf("utterance %d out of range: %+v", i, u)
		}
		if u.Start < speakers[u.Speaker] {
			t.Errorf("utterance %d (%s) starts at %.3f before that speaker's previous end %.3f", i, u.Speaker, u.Start, speakers[u.Speaker])
		}
		speakers[u.Speaker] = u.End
		// Rendered speech starts where the transcript does unless an earlier one ran on.
		if u.Start < u.OrigStart-1.0/domain.SampleRate {
			t.Errorf("utterance %d starts at %.3f, before its transcript time %.3f", i, u.Start, u.OrigStart)
		}
		// Trimmed edges are audible.
		ch := l
		if u.Speaker == domain.SpeakerPatient {
			ch = rt
		}
		first := int(math.Round(u.Start * domain.SampleRate))
		if math.Abs(float64(ch[first])) < silenceLevel*0.5 {
			t.Errorf("utterance %d: first sample %g is silent: trim or placement off", i, ch[first])
		}
	}
	if len(speakers) != 2 {
		t.Errorf("speakers in the excerpt: %v", speakers)
	}

	// The truth file on disk matches what Render returned, with the documented fields.
	raw, err := os.ReadFile(r.TruthPath)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk struct {
		ID         string  `json:"id"`
		Duration   float64 `json:"duration"`
		Utterances []struct {
			Speaker    string
			Start, End float64
			Text       string
		} `json:"utterances"`
	}
	if err := json.Unmarshal(raw, &onDisk); err != nil || onDisk.ID != "day1_consultation01" || len(onDisk.Utterances) != len(r.Truth.Utterances) {
		t.Errorf("truth file: %v %+v", err, onDisk)
	}

	// Second render: cached, files untouched.
	st1, _ := os.Stat(r.StereoPath)
	r2, err := Render(context.Background(), dir, "day1_consultation01", opt)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(r.StereoPath)
	if !r2.Cached || !st1.ModTime().Equal(st2.ModTime()) || len(r2.Truth.Utterances) != len(r.Truth.Utterances) {
		t.Errorf("second render: cached=%v, stereo rewritten=%v", r2.Cached, !st1.ModTime().Equal(st2.ModTime()))
	}
	// A truth file from other options (a stale key) forces a re-render.
	stale := bytes.Replace(raw, []byte(r.Truth.RenderKey), []byte(strings.Repeat("0", 64)), 1)
	if err := os.WriteFile(r.TruthPath, stale, 0o644); err != nil {
		t.Fatal(err)
	}
	r3, err := Render(context.Background(), dir, "day1_consultation01", opt)
	if err != nil || r3.Cached {
		t.Errorf("render after a stale key: cached=%v err=%v", r3 != nil && r3.Cached, err)
	}
}

func TestRenderWithNoiseHitsSNR(t *testing.T) {
	needEspeak(t)
	dir := needCorpus(t)
	r, err := Render(context.Background(), dir, "day1_consultation01",
		RenderOptions{OutDir: t.TempDir(), MaxSeconds: 30, NoiseKind: "pink", SNRdB: 10})
	if err != nil {
		t.Fatal(err)
	}
	clip, err := audio.ReadFile(r.StereoPath)
	if err != nil {
		t.Fatal(err)
	}
	mono, err := audio.ReadFile(r.MonoPath)
	if err != nil {
		t.Fatal(err)
	}
	var all, doctor []domain.Interval
	for _, u := range r.Truth.Utterances {
		iv := domain.Interval{Start: u.Start, End: u.End}
		all = append(all, iv)
		if u.Speaker == domain.SpeakerClinician {
			doctor = append(doctor, iv)
		}
	}
	if got := dsp.SNR(mono.Channels[0], all, 16000); math.Abs(got-10) > 1.5 {
		t.Errorf("mono SNR = %.2f dB, want 10 ± 1.5", got)
	}
	// The left channel holds only the doctor's speech, so its SNR is measured over the
	// doctor's utterances; the level is set from both speakers, hence the wider margin.
	if got := dsp.SNR(clip.Channels[0], doctor, 16000); math.Abs(got-10) > 3 {
		t.Errorf("left channel SNR = %.2f dB, want 10 ± 3", got)
	}
	if !strings.Contains(r.StereoPath, "-30s-pink10dB.stereo.wav") {
		t.Errorf("stereo path %s does not name the options", r.StereoPath)
	}
}

func TestRunRenderCLI(t *testing.T) {
	needEspeak(t)
	dir := needCorpus(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := RunRenderCLI(context.Background(), []string{"-corpus", dir, "-out", out, "-ids", "day2_consultation01", "-max-seconds", "15"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, suffix := range []string{".stereo.wav", ".mono.wav", ".truth.json"} {
		if _, err := os.Stat(out + "/day2_consultation01-15s" + suffix); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(stdout.String(), "day2_consultation01: 15.0s") {
		t.Errorf("stdout = %q", stdout.String())
	}
	if err := RunRenderCLI(context.Background(), []string{"-noise", "brown", "-out", out, "-corpus", dir}, &stdout, &stderr); err == nil {
		t.Error("bad -noise accepted")
	}
	if err := RunRenderCLI(context.Background(), []string{"-jobs", "0"}, &stdout, &stderr); !errors.Is(err, ErrUsage) {
		t.Errorf("-jobs 0: %v", err)
	}
}

func BenchmarkRender60s(b *testing.B) {
	needEspeak(b)
	dir := needCorpus(b)
	for b.Loop() {
		r, err := Render(context.Background(), dir, "day1_consultation01", RenderOptions{OutDir: b.TempDir(), MaxSeconds: 60})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(r.Truth.Utterances)), "utterances")
	}
}

// TestSpeechIsTheSameAtAnyTime: espeak-ng seeds its random generator (the breath noise
// of voice variants such as the patient's +f3) from the clock unless told not to, so a
// render made a second later differed: every machine, and every CI run, tested other
// audio. The same utterance spoken in two different seconds must be the same samples.
func TestSpeechIsTheSameAtAnyTime(t *testing.T) {
	needEspeak(t)
	dir := t.TempDir()
	const text = "Oh hey, um, I've just had some diarrhoea for the last three days."
	var first []float32
	for i := range 2 {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // the clock's seconds move on
		}
		got, err := speak(context.Background(), "espeak-ng", DefaultVoices[1], baseSpeedWPM, text, dir+"/u.wav")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = got
			continue
		}
		if len(got) != len(first) {
			t.Fatalf("spoken twice: %d then %d samples", len(first), len(got))
		}
		var differ int
		for j := range got {
			if got[j] != first[j] {
				differ++
			}
		}
		if differ > 0 {
			t.Errorf("spoken twice a second apart, %d of %d samples differ", differ, len(got))
		}
	}
}
