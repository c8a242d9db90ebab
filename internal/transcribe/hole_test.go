package transcribe

import (
	"context"
	"strings"
	"testing"

	"scribe/internal/domain"
)

// earlyStopDecoder is a decoder that stops early on the first audio it is given, as the
// real tiny.en did on a packed window of a rendered consultation (hole.go): its first
// three words, aligned in the first second, then nothing, in one segment whose times run
// to the end of the window. Audio beginning later (a decode again) it hears as rest,
// aligned from its start; a nil rest is a decoder that hears no more there either.
type earlyStopDecoder struct {
	rest  []domain.DecodedSegment
	calls []call
}

type call struct {
	seconds float64
	prompt  string
}

func (d *earlyStopDecoder) Decode(_ context.Context, samples []float32, o domain.DecodeOptions) ([]domain.DecodedSegment, error) {
	d.calls = append(d.calls, call{float64(len(samples)) / domain.SampleRate, o.Prompt})
	if len(d.calls) > 1 {
		return d.rest, nil
	}
	return []domain.DecodedSegment{{Start: 0, End: float64(len(samples)) / domain.SampleRate, Text: " You missed morning.",
		Tokens: []domain.DecodedToken{word(" You", 0.3), word(" missed", 0.6), word(" morning", 0.9), word(".", -1)}}}, nil
}

func word(text string, at float64) domain.DecodedToken {
	return domain.DecodedToken{Text: text, LogProb: -0.2, At: at}
}

// consultationWindow is the packed window of the real failure: the end of the
// clinician's question (1.3 s), the patient's answer (11.42 s) and the start of the next
// question (2.28 s), 15 s of speech with the pauses between them dropped.
func consultationWindow() domain.Utterance {
	p := NewPacker(DefaultPackSeconds)
	for i, r := range []domain.Interval{{Start: 9.18, End: 10.48}, {Start: 12.24, End: 23.66}, {Start: 25.30, End: 27.58}} {
		p.Add(run(i, r.Start, r.End-r.Start, 1))
	}
	u, _ := p.Flush()
	return u
}

// A decode that leaves 2.5 s or more of the audio without a word is decoded once more
// from the end of the last word before that stretch; the words it finds there are kept.
// Where it finds no more, the segment that claimed the stretch ends with its words, and
// the speech without words is flagged untranscribed rather than counted as decoded.
func TestSpeechLeftWithoutWordsIsDecodedAgainInFileMode(t *testing.T) {
	heard := []domain.DecodedSegment{
		{Start: 1.5, End: 7.2, Text: " I've had diarrhoea for the last three days.",
			Tokens: []domain.DecodedToken{word(" I've", 2.0), word(" had", 2.3), word(" diarrhoea", 3.1), word(" for", 3.5), word(" the", 3.7), word(" last", 4.2), word(" three", 4.6), word(" days", 5.2), word(".", -1)}},
		{Start: 7.2, End: 14.1, Text: " I need to stay close to the toilet.",
			Tokens: []domain.DecodedToken{word(" I", 7.6), word(" need", 8.0), word(" to", 8.2), word(" stay", 8.7), word(" close", 9.2), word(" to", 9.4), word(" the", 9.6), word(" toilet", 10.2), word(".", -1)}},
	}
	t.Run("heard on the decode again", func(t *testing.T) {
		d := &earlyStopDecoder{rest: heard}
		segs, _, err := engine(t, d).Transcribe(context.Background(), consultationWindow())
		if err != nil {
			t.Fatal(err)
		}
		if len(d.calls) != 2 {
			t.Fatalf("decodes: %+v, want the window and once more", d.calls)
		}
		if got := d.calls[1].seconds; got < 14.0 || got > 14.2 {
			t.Errorf("decoded again %.2f s of audio, want the 14.1 s after the last word (0.9 s)", got)
		}
		if !strings.HasSuffix(d.calls[1].prompt, "You missed morning.") {
			t.Errorf("decode again not given the words before it: prompt %q", d.calls[1].prompt)
		}
		text := strings.Join(texts(segs), " | ")
		if text != "You missed morning. | I've had diarrhoea for the last three days. | I need to stay close to the toilet." {
			t.Fatalf("segments: %q", text)
		}
		for _, s := range segs {
			if s.HasFlag(domain.FlagUntranscribed) {
				t.Errorf("flagged untranscribed though every word was heard: %+v", s)
			}
		}
		// The decode again's times are on the recording: it began 0.9 s into the window
		// (10.08 s), so its 1.5 s is the window's 2.4 s: 1.1 s into the answer (12.24 s).
		if s := segs[0]; s.Start != 9.18 || s.End > 10.1 {
			t.Errorf("first segment %.2f–%.2f, want 9.18 to the end of its words (10.08)", s.Start, s.End)
		}
		if s := segs[1]; s.Start < 13.33 || s.Start > 13.35 {
			t.Errorf("second segment starts at %.2f, want 13.34", s.Start)
		}
	})
	t.Run("not heard again", func(t *testing.T) {
		d := &earlyStopDecoder{}
		segs, _, err := engine(t, d).Transcribe(context.Background(), consultationWindow())
		if err != nil {
			t.Fatal(err)
		}
		if len(d.calls) != 2 {
			t.Fatalf("decodes: %+v, want the window and once more", d.calls)
		}
		if len(segs) != 3 || segs[0].Text != "You missed morning." || segs[0].End > 10.1 {
			t.Fatalf("segments %+v: want the three words ending at 10.08, then the two runs after", segs)
		}
		for i, want := range []domain.Interval{{Start: 12.24, End: 23.66}, {Start: 25.30, End: 27.58}} {
			s := segs[i+1]
			if !s.HasFlag(domain.FlagUntranscribed) || s.Start != want.Start || s.End != want.End {
				t.Errorf("run %v: got %+v, want it flagged untranscribed", want, s)
			}
		}
	})
}

// A decode whose words keep coming, or whose tokens carry no alignment (a model loaded
// without it), is decoded once.
func TestDecodeWithoutAHoleIsDecodedOnce(t *testing.T) {
	for name, at := range map[string]float64{"words every 2 s": 0, "no alignment": -1} {
		t.Run(name, func(t *testing.T) {
			var toks []domain.DecodedToken
			for i := range 8 {
				a := at
				if at == 0 {
					a = 0.5 + 2*float64(i)
				}
				toks = append(toks, word(" word", a))
			}
			d := &scriptedDecoder{out: []domain.DecodedSegment{{Start: 0, End: 15, Text: strings.Repeat(" word", 8), Tokens: toks}}}
			if _, _, err := engine(t, d).Transcribe(context.Background(), consultationWindow()); err != nil {
				t.Fatal(err)
			}
			if len(d.got) != 1 {
				t.Errorf("decoded %d times, want once", len(d.got))
			}
		})
	}
}

// A segment cut where its last word is aligned keeps a span of its own, however close to
// its start that word is: an empty span would be read as the whole window's.
func TestCutSegmentKeepsASpan(t *testing.T) {
	segs := []domain.DecodedSegment{{Start: 5, End: 14, Text: " Yes. And", Tokens: []domain.DecodedToken{word(" Yes", 5), word(".", -1), word(" And", 13)}}}
	before, after := splitDecoded(segs, 5)
	if len(before) != 1 || before[0].Text != " Yes." || before[0].End <= before[0].Start || before[0].End > 5.1 || after != 1 {
		t.Fatalf("cut at 5 s: %+v, %d words after; want \" Yes.\" over a short span from 5 s and one word after", before, after)
	}
}

func texts(segs []domain.Segment) []string {
	var out []string
	for _, s := range segs {
		out = append(out, s.Text)
	}
	return out
}
