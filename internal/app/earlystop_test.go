package app

import (
	"context"
	"testing"

	"scribe/internal/domain"
	"scribe/internal/textdiff"
	"scribe/internal/transcribe"
)

// A packed window on which the real tiny.en stops early: the end of the clinician's
// question, the patient's 10 s answer and the start of the next question, with the pauses
// between them dropped, as file mode and the second pass pack them (runs from a live
// failure's trace, rendered consultation 01). Decoded once, with the vocabulary prompt,
// it came back as "You missed morning." in one segment spanning the whole window: the
// answer counted as decoded, no word of it and no flag. The answer's words must be in
// the transcript.
func TestFileModeDecodesAgainWhereTheDecoderStoppedRealWeights(t *testing.T) {
	rt, _ := realJFK(t)
	truth, chans, ok := consultation01(t)
	if !ok {
		t.Skip("rendered consultation missing (scripts/make-test-audio)")
	}
	x := chans[0]
	runs := []domain.Interval{{Start: 9.18, End: 10.48}, {Start: 12.24, End: 23.66}, {Start: 25.30, End: 27.58}}
	var answer string
	for _, u := range truth.Utterances {
		if u.Start >= runs[1].Start && u.End <= runs[1].End {
			answer = u.Text
		}
	}
	if answer == "" {
		t.Fatal("the patient's answer is not in the rendered truth where the runs were taken")
	}
	p := transcribe.NewPacker(transcribe.DefaultPackSeconds)
	for i, r := range runs {
		p.Add(domain.Utterance{Seq: i, Final: true, Interval: r, Channels: [][]float32{x[int(r.Start*domain.SampleRate):int(r.End*domain.SampleRate)]}})
	}
	window, _ := p.Flush()
	_, threads := rt.Config.Parallelism()
	cfg, err := engineConfig(rt.Config, rt.Model, threads)
	if err != nil {
		t.Fatal(err)
	}
	d := &countingDecoder{Decoder: rt.states[0]}
	eng, err := transcribe.NewEngine(cfg, []transcribe.Decoder{d})
	if err != nil {
		t.Fatal(err)
	}
	segs, took, err := eng.Transcribe(context.Background(), window)
	if err != nil {
		t.Fatal(err)
	}
	hyp := domain.Text(segs)
	ref := textdiff.Normalise(answer, textdiff.DefaultOptions)
	_, _, dels, _ := textdiff.Align(ref, textdiff.Normalise(hyp, textdiff.DefaultOptions)).Counts()
	t.Logf("%d decodes in %v; %d of the answer's %d words missing: %q", d.n, took.Round(1e6), dels, len(ref), hyp)
	if dels > len(ref)/3 {
		t.Errorf("%d of the patient's %d words missing from the window's transcript %q", dels, len(ref), hyp)
	}
}

type countingDecoder struct {
	transcribe.Decoder
	n int
}

func (c *countingDecoder) Decode(ctx context.Context, samples []float32, o domain.DecodeOptions) ([]domain.DecodedSegment, error) {
	c.n++
	return c.Decoder.Decode(ctx, samples, o)
}
