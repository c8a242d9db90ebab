package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"scribe/internal/app"
	"scribe/internal/config"
	"scribe/internal/corpus"
	"scribe/internal/diarize"
	"scribe/internal/domain"
)

func TestSummarise(t *testing.T) {
	s := Summarise([]float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10})
	if s.N != 10 || s.Min != 1 || s.Max != 10 || s.P50 != 5 || s.P95 != 10 || s.Mean != 5.5 {
		t.Errorf("%+v", s)
	}
	if math.Abs(s.Stddev-math.Sqrt(8.25)) > 1e-9 {
		t.Errorf("stddev %v", s.Stddev)
	}
	if (Summarise(nil) != Summary{}) {
		t.Error("empty sample")
	}
}

func TestProcFigures(t *testing.T) {
	cpu, err := parseStatCPU([]byte("1234 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0"))
	if err != nil || cpu != 3 {
		t.Errorf("cpu %v %v", cpu, err)
	}
	if _, err := parseStatCPU([]byte("1234 cmd")); err == nil {
		t.Error("garbage accepted")
	}
	if rss, err := RSSMB(); err != nil || rss <= 0 {
		t.Errorf("rss %v %v", rss, err)
	}
	if c, err := CPUSeconds(); err != nil || c < 0 {
		t.Errorf("cpu %v %v", c, err)
	}
}

func TestChartDraws(t *testing.T) {
	var buf bytes.Buffer
	c := Chart{Groups: [][]float64{{0.5, 1.2}, {0.7, 2.5}, {0.1, 0.2}}, Limit: 2}
	if err := c.Draw(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 260 {
		t.Errorf("size %v", b)
	}
	// With a title, a legend and group labels, the text is drawn (dark pixels) above the
	// plot and below the axis.
	c.Title, c.Series, c.Labels = "WER by condition", []string{"file", "whisper-cli"}, []string{"clean", "pink 10 dB", "pink 5 dB"}
	buf.Reset()
	if err := c.Draw(&buf); err != nil {
		t.Fatal(err)
	}
	labelled, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	b := labelled.Bounds()
	dark := func(y0, y1 int) bool {
		for y := y0; y < y1; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if r, g, bl, _ := labelled.At(x, y).RGBA(); r < 0x4000 && g < 0x4000 && bl < 0x4000 {
					return true
				}
			}
		}
		return false
	}
	if b.Dy() <= img.Bounds().Dy() || !dark(0, lineH+2) || !dark(b.Max.Y-lineH-4, b.Max.Y) {
		t.Errorf("labelled chart %v: no title or labels drawn", b)
	}
	// The tallest bar (2.5, group 1 series 1) reaches higher than the shortest.
	if err := (Chart{}).Draw(&buf); err == nil {
		t.Error("empty chart drawn")
	}
	if err := (Chart{Groups: [][]float64{{math.NaN()}}}).Draw(&buf); err == nil {
		t.Error("NaN drawn")
	}
}

func TestExcerptRotatesAudioAndTruth(t *testing.T) {
	n := 10 * domain.SampleRate
	ch := make([]float32, n)
	for i := range ch {
		ch[i] = float32(i)
	}
	rec := Recording{Name: "r", Channels: [][]float32{ch}, Truth: []corpus.TruthUtterance{
		{Start: 1, End: 2, Text: "one"}, {Start: 4.5, End: 5.5, Text: "cut"}, {Start: 7, End: 8, Text: "seven"}}}
	ex := rec.Excerpt(5, 8)
	if ex.Seconds() != 8 || ex.Channels[0][0] != float32(5*domain.SampleRate) {
		t.Fatalf("excerpt %v s starting at sample %v", ex.Seconds(), ex.Channels[0][0])
	}
	if len(ex.Truth) != 2 || ex.Truth[0].Text != "seven" || ex.Truth[0].Start != 2 || ex.Truth[1].Text != "one" || ex.Truth[1].Start != 6 {
		t.Errorf("truth %+v", ex.Truth)
	}
}

func TestDelaysUseLastOverlappingCommit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	truth := []corpus.TruthUtterance{{Start: 1, End: 3}, {Start: 5, End: 6}, {Start: 9, End: 10}}
	events := []emitted{
		{seg: domain.Segment{Start: 0.8, End: 2}, at: t0.Add(3200 * time.Millisecond)},
		{seg: domain.Segment{Start: 2, End: 3.2}, at: t0.Add(3500 * time.Millisecond)},
		{seg: domain.Segment{Start: 4.8, End: 6.2}, at: t0.Add(7 * time.Second)},
	}
	d, missed := Delays(truth, events, func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) })
	if missed != 1 || len(d) != 2 || math.Abs(d[0]-0.5) > 1e-9 || math.Abs(d[1]-1) > 1e-9 {
		t.Errorf("delays %v, missed %d", d, missed)
	}
}

func TestScore(t *testing.T) {
	truth := []corpus.TruthUtterance{
		{Speaker: domain.SpeakerClinician, Start: 0, End: 2, Text: "how can I help"},
		{Speaker: domain.SpeakerPatient, Start: 3, End: 5, Text: "I have a cough"}}
	tr := &domain.Transcript{AudioSeconds: 6,
		Speech: []domain.Interval{{Start: 0, End: 2}, {Start: 3, End: 6}},
		Segments: []domain.Segment{
			{Start: 0, End: 2, Speaker: domain.SpeakerClinician, Text: "How can I help?"},
			{Start: 3, End: 5, Speaker: domain.SpeakerClinician, Text: "I have a cold"}}}
	f := Score(truth, tr)
	if f.RefWords != 8 || f.WER.Errors() != 1 || f.SpeakerAccuracy != 0.5 || f.VADRecall != 1 || math.Abs(f.VADPrecision-0.8) > 1e-9 {
		t.Errorf("%+v", f)
	}
	// WDER: of the 8 aligned words, the patient's 4 went to the clinician.
	if f.WDERWords != 8 || f.WDER != 0.5 {
		t.Errorf("WDER %v over %d words, want 0.5 over 8", f.WDER, f.WDERWords)
	}
}

// realRuntime loads the weightless test model with the real Silero VAD.
func realRuntime(t *testing.T) *app.Runtime {
	t.Helper()
	cfg := config.Default()
	cfg.Models.Whisper = config.SharedTestModel("for-tests-ggml-tiny.en.bin")
	cfg.Models.VAD = config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin")
	for _, p := range []string{cfg.Models.Whisper, cfg.Models.VAD} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("test model missing: %v", err)
		}
	}
	cfg.Models.Workers, cfg.Models.Threads = 1, 2
	cfg.Transcription.TemperatureInc = 0
	cfg.DataDir = t.TempDir()
	rt, err := app.Load(cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

func renderedExcerpt(t *testing.T) string {
	p, _ := filepath.Abs("../../testdata/audio/day1_consultation01-60s.truth.json")
	if _, err := os.Stat(p); err != nil {
		t.Skip("rendered excerpt missing (scripts/make-test-audio)")
	}
	return p
}

// Two rooms, a few seconds each, replayed 8× faster than real time into a real server
// watched over its websocket: checks the report's structure, not its speed.
func TestRunLiveStructure(t *testing.T) {
	rec, err := LoadRendered(renderedExcerpt(t))
	if err != nil {
		t.Fatal(err)
	}
	rt := realRuntime(t)
	rep, err := RunLive(context.Background(), rt, LiveOptions{Rooms: 2, Seconds: 16, Pace: 8, Recordings: []Recording{rec}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.PerRoom) != 2 || rep.PerRoom[0].Room == rep.PerRoom[1].Room || rep.RSSPeakMB <= 0 || rep.CPUCores <= 0 {
		t.Fatalf("%+v", rep)
	}
	for _, r := range rep.PerRoom {
		if r.Utterances == 0 || r.Delay.N+r.Missed != r.Utterances {
			t.Errorf("room %+v", r)
		}
		// Each segment reaches the websocket client after the pipeline emitted it, so
		// every order statistic of the websocket delays is at least the pipeline's.
		if r.PipelineDelay.N != r.Delay.N || r.Delay.P50 < r.PipelineDelay.P50 || r.Delay.Max < r.PipelineDelay.Max || len(r.Slowest) == 0 {
			t.Errorf("websocket vs pipeline delays: %+v vs %+v", r.Delay, r.PipelineDelay)
		}
	}
	b, err := json.Marshal(rep)
	if err != nil || !bytes.Contains(b, []byte(`"worst_room_p95_s"`)) {
		t.Errorf("json %s %v", b, err)
	}
	var png bytes.Buffer
	if err := rep.Chart(1).Draw(&png); err != nil {
		t.Fatal(err)
	}
}

func TestRunAccuracyLabelsTestModel(t *testing.T) {
	src := renderedExcerpt(t)
	dir := t.TempDir()
	base := filepath.Base(src[:len(src)-len(".truth.json")])
	for _, ext := range []string{".truth.json", ".stereo.wav", ".mono.wav"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(src), base+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, base+ext), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rt := realRuntime(t)
	rep, err := RunAccuracy(context.Background(), rt, dir, AccuracyOptions{Modes: []string{ModeFile, ModeLive}, Channels: []string{"stereo", "mono"}, WithoutCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	// One dry render: file and live, heard as a microphone pair and as the mono mix, with
	// and without the clean-up chain.
	if !rep.TestModel || rep.Note == "" || len(rep.Files) != 8 || len(rep.Pools) != 8 {
		t.Fatalf("%+v", rep)
	}
	for _, f := range rep.Files {
		// The test model decodes no words, so every reference word is deleted; the VAD
		// figures are real and the speech is rendered cleanly.
		if f.RefWords == 0 || f.HypWords != 0 || f.WERValue != 1 || f.VADRecall < 0.5 || f.VADPrecision < 0.5 || f.Condition != "clean" {
			t.Errorf("%+v", f)
		}
		// The pair tells the speakers apart by its two microphones; the mix by voices.
		want := map[string]string{"stereo": "pair", "mono": "single"}[f.Channels]
		if f.Microphones != want || (f.Channels == "stereo" && (f.SpeakerSeconds == 0 || f.AttributionAccuracy < 0.9)) {
			t.Errorf("%s %s: microphones %q, attribution %.2f over %.1f s", f.Mode, f.Channels, f.Microphones, f.AttributionAccuracy, f.SpeakerSeconds)
		}
	}
	for _, p := range rep.Pools {
		if p.Files != 1 || p.VADRecall == nil || p.SpeakerAccuracy == nil || p.WDER == nil || p.RTF <= 0 {
			t.Errorf("pool %+v", p)
		}
	}
	c := rep.Chart()
	if len(c.Groups) != 2 || len(c.Labels) != 2 || len(c.Series) != 4 || c.Labels[0] != "clean stereo" || c.Series[1] != "file (no clean-up)" {
		t.Errorf("chart: %d groups %v, series %v", len(c.Groups), c.Labels, c.Series)
	}
	var png bytes.Buffer
	if err := c.Draw(&png); err != nil || png.Len() == 0 {
		t.Errorf("chart: %v", err)
	}
	if _, err := RunAccuracy(context.Background(), rt, t.TempDir(), AccuracyOptions{}); err == nil {
		t.Error("empty corpus accepted")
	}
	if _, err := RunAccuracy(context.Background(), rt, dir, AccuracyOptions{Modes: []string{"guess"}}); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestParseWhisperCLIJSON(t *testing.T) {
	segs, err := parseCLIJSON([]byte(`{"transcription":[{"timestamps":{"from":"00:00:00,000","to":"00:00:02,500"},"offsets":{"from":0,"to":2500},"text":" And so my fellow Americans"},{"offsets":{"from":2500,"to":4000},"text":" ask not"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || segs[0].End != 2.5 || segs[1].Start != 2.5 || segs[1].Text != " ask not" {
		t.Errorf("%+v", segs)
	}
	if _, err := parseCLIJSON([]byte("not json")); err == nil {
		t.Error("bad output accepted")
	}
}

func TestRoomsMemoryComparesNMinusOneWithN(t *testing.T) {
	var asked []int
	run := func(k int) (*LiveReport, error) {
		asked = append(asked, k)
		return &LiveReport{Rooms: k, RSSSteadyMB: 300 + 7*float64(k), RSSPeakMB: 320 + 9*float64(k), ReplayAudioMB: 2 * float64(k)}, nil
	}
	rep, err := RoomsMemory(3, 10, run, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked[0] != 2 || asked[1] != 3 || rep.PerExtraRoomMB != 7 || rep.PerExtraRoomPeakMB != 9 || rep.PerExtraRoomServedMB != 5 {
		t.Errorf("asked %v, report %+v", asked, rep)
	}
	if _, err := RoomsMemory(1, 10, run, nil); err == nil {
		t.Error("one room accepted: there is no N−1 run to compare with")
	}
}

func TestSpeechRunsMergeOverlapsAndShortPauses(t *testing.T) {
	truth := []corpus.TruthUtterance{{Start: 2.5, End: 10}, {Start: 3.9, End: 4.9}, {Start: 12.6, End: 23.2}, {Start: 23.5, End: 25}, {Start: 26, End: 27}}
	runs := SpeechRuns(truth, 0.6)
	want := [][2]float64{{2.5, 10}, {12.6, 25}, {26, 27}}
	if len(runs) != len(want) {
		t.Fatalf("runs %+v", runs)
	}
	for i, w := range want {
		if runs[i].Start != w[0] || runs[i].End != w[1] {
			t.Errorf("run %d: %+v, want %v", i, runs[i], w)
		}
	}
}

// Reports measured in parts (scribe's modes, then whisper-cli's) and read back from JSON
// join into one, pooled from the counts: all errors over all reference words.
func TestJoinAccuracyPoolsFromCounts(t *testing.T) {
	a := &AccuracyReport{Model: "m", Settings: "scribe", Measured: "2026-12-05", Files: []FileAccuracy{
		{File: "x", Mode: ModeFile, Channels: "stereo", Condition: "clean", Cleanup: true, RefWords: 100, Errors: 20,
			Speaker: diarize.Accuracy{SpeechSeconds: 10, Correct: 10}, WDERWords: 90, WDERWrong: 0, VADHitS: 9, VADHypS: 10, VADRefS: 9},
		{File: "y", Mode: ModeFile, Channels: "stereo", Condition: "clean", Cleanup: true, RefWords: 300, Errors: 30,
			Speaker: diarize.Accuracy{SpeechSeconds: 12, Correct: 5, Wrong: 5, UnknownSeconds: 2}, WDERWords: 270, WDERWrong: 36, VADHitS: 9, VADHypS: 9, VADRefS: 12}}}
	b := &AccuracyReport{Model: "m", WhisperCLIArgs: "-bs 5", Files: []FileAccuracy{
		{File: "x", Mode: ModeWhisperCLI, Channels: "mono", Condition: "clean", RefWords: 100, Errors: 10}}}
	var parts []*AccuracyReport
	for _, r := range []*AccuracyReport{a, b} {
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back AccuracyReport
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, &back)
	}
	j, err := JoinAccuracy(parts)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Files) != 3 || len(j.Pools) != 2 || j.WhisperCLIArgs != "-bs 5" {
		t.Fatalf("%+v", j)
	}
	f, cli := j.Pools[0], j.Pools[1]
	if f.WER != 0.125 || f.Errors != 50 || *f.SpeakerAccuracy != 0.75 || *f.SpeakerUnknown != 2.0/22 || *f.WDER != 0.1 ||
		*f.VADPrecision != 18.0/19 || *f.VADRecall != 18.0/21 || j.WER != 0.125 || j.SpeakerAccuracy != 0.75 {
		t.Errorf("file pool %+v", f)
	}
	if cli.WER != 0.1 || cli.SpeakerAccuracy != nil || cli.WDER != nil || cli.VADRecall != nil {
		t.Errorf("whisper-cli pool %+v", cli)
	}
	if _, err := JoinAccuracy([]*AccuracyReport{a, {Model: "other"}}); err == nil {
		t.Error("reports of two models joined")
	}
}
