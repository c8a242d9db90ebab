package diarize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"scribe/internal/audio"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/dsp"
)

// roomDir holds the room renders scripts/make-test-audio makes (SCRIBE_ROOM_DIR overrides).
func roomDir() string {
	if d := os.Getenv("SCRIBE_ROOM_DIR"); d != "" {
		return d
	}
	return "../../testdata/audio/room"
}

type roomRender struct {
	name  string
	truth *corpus.Truth
	chans [][]float32
}

func loadRoomRenders(t *testing.T) []roomRender {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(roomDir(), "*.truth.json"))
	sort.Strings(paths)
	var out []roomRender
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var tr corpus.Truth
		if err := json.Unmarshal(b, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.Room == nil {
			continue
		}
		clip, err := audio.ReadFile(corpus.AudioPath(p, &tr))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, roomRender{name: strings.TrimSuffix(filepath.Base(p), ".truth.json"), truth: &tr, chans: clip.To16k().Channels})
	}
	if len(out) == 0 {
		t.Skipf("no room renders in %s (scripts/make-test-audio makes them; make test runs it)", roomDir())
	}
	return out
}

func truthSpans(tr *corpus.Truth) []domain.SpeakerSpan {
	var out []domain.SpeakerSpan
	for _, u := range tr.Utterances {
		out = append(out, domain.SpeakerSpan{Interval: domain.Interval{Start: u.Start, End: u.End}, Speaker: u.Speaker})
	}
	return out
}

// speechCuts is what a VAD would cut: the truth's speech padded by 0.2 s, split at
// pauses of 0.6 s, as the pipeline's segmenter does.
func speechCuts(tr *corpus.Truth) []domain.Interval {
	var ivs []domain.Interval
	for _, u := range tr.Utterances {
		ivs = append(ivs, domain.Interval{Start: max(0, u.Start-0.2), End: min(tr.Duration, u.End+0.2)})
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].Start < ivs[j].Start })
	var out []domain.Interval
	for _, iv := range ivs {
		if n := len(out); n > 0 && iv.Start < out[n-1].End+0.2 {
			out[n-1].End = max(out[n-1].End, iv.End)
			continue
		}
		out = append(out, iv)
	}
	return out
}

// attributeRecording feeds a recording's utterances, cleaned per channel as the
// pipeline cleans them, to an attributor in order and returns every span.
func attributeRecording(a Attributor, chans [][]float32, cuts []domain.Interval) []domain.SpeakerSpan {
	cleaned := make([][]float32, len(chans))
	for c, x := range chans {
		cleaned[c] = dsp.ProcessAll(dsp.DefaultConfig(), x)
	}
	var spans []domain.SpeakerSpan
	for i, iv := range cuts {
		lo, hi := int(iv.Start*domain.SampleRate), min(len(cleaned[0]), int(iv.End*domain.SampleRate))
		u := domain.Utterance{Seq: i, Interval: iv, Final: true}
		for _, c := range cleaned {
			u.Channels = append(u.Channels, c[lo:hi])
		}
		spans = append(spans, a.Attribute(u, true)...)
	}
	return spans
}

func setupFor(tr *corpus.Truth) Setup {
	arr := tr.Room.Array
	return Setup{Kind: KindArray, Capsules: arr.Capsules, SpacingMM: arr.SpacingMM, Layout: arr.Layout, Clinician: ClinicianFirst}
}

func TestRoomRendersTuning(t *testing.T) {
	for _, r := range loadRoomRenders(t) {
		cuts := speechCuts(r.truth)
		truth := truthSpans(r.truth)
		arr := Score(truth, attributeRecording(New(setupFor(r.truth), len(r.chans)), r.chans, cuts))
		one := Score(truth, attributeRecording(New(Setup{Kind: KindSingle}, 1), r.chans[:1], cuts))
		t.Logf("%-55s array %.1f%% (unknown %.1f%%)  single %.1f%% (unknown %.1f%%)", r.name,
			arr.Value()*100, arr.UnknownShare()*100, one.Value()*100, one.UnknownShare()*100)
	}
}
