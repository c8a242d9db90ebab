package transcribe

import (
	"context"
	"math"
	"slices"
	"testing"

	"scribe/internal/domain"
)

// run makes a finished utterance of seconds of audio at start on the recording, with
// chans channels whose every sample is the utterance's sequence number (so the packed
// audio shows which run went where).
func run(seq int, start, seconds float64, chans int) domain.Utterance {
	u := domain.Utterance{Seq: seq, Interval: domain.Interval{Start: start, End: start + seconds}, Final: true}
	for range chans {
		c := make([]float32, int(math.Round(seconds*domain.SampleRate)))
		for i := range c {
			c[i] = float32(seq)
		}
		u.Channels = append(u.Channels, c)
	}
	return u
}

func TestPackerFillsWindowsInOrder(t *testing.T) {
	p := NewPacker(30)
	var got []domain.Utterance
	add := func(u domain.Utterance) { got = append(got, p.Add(u)...) }
	add(run(0, 1, 12, 2))
	add(run(1, 14.5, 10, 2))
	if len(got) != 0 {
		t.Fatalf("22 s of speech should still be filling the first window, got %d windows", len(got))
	}
	cut := run(2, 30, 9, 2) // 31 s with the first two: starts the next window
	cut.Cut = true
	add(cut)
	add(run(3, 39, 35, 2)) // longer than a window: alone
	add(run(4, 80, 2, 1))  // a different channel count never shares a window
	if w, ok := p.Flush(); ok {
		got = append(got, w)
	}
	if _, ok := p.Flush(); ok {
		t.Error("a second Flush returned a window")
	}
	if len(got) != 4 {
		t.Fatalf("want 4 windows, got %d", len(got))
	}
	w := got[0]
	if w.Seq != 0 || got[3].Seq != 3 || !w.Final {
		t.Errorf("windows numbered %d…%d, final %v", w.Seq, got[3].Seq, w.Final)
	}
	want := []domain.Run{{At: 0, Interval: domain.Interval{Start: 1, End: 13}}, {At: 12, Interval: domain.Interval{Start: 14.5, End: 24.5}}}
	if len(w.Runs) != 2 || w.Runs[0] != want[0] || w.Runs[1] != want[1] {
		t.Errorf("runs %+v, want %+v", w.Runs, want)
	}
	if w.Start != 1 || w.End != 24.5 || w.Seconds() != 22 || len(w.Channels) != 2 {
		t.Errorf("window spans %.1f–%.1f with %.1f s of audio on %d channels", w.Start, w.End, w.Seconds(), len(w.Channels))
	}
	if c := w.Channels[1]; c[0] != 0 || c[12*domain.SampleRate-1] != 0 || c[12*domain.SampleRate] != 1 || c[len(c)-1] != 1 {
		t.Error("runs not back to back in the packed audio")
	}
	if !got[1].Cut || got[1].Seconds() != 9 || got[2].Seconds() != 35 || len(got[3].Channels) != 1 {
		t.Errorf("cut %v, windows of %.0f s and %.0f s, last %d channels", got[1].Cut, got[1].Seconds(), got[2].Seconds(), len(got[3].Channels))
	}
	// Speech() lists the runs, a plain utterance is its own run.
	if sp := w.Speech(); len(sp) != 2 || sp[1] != want[1].Interval {
		t.Errorf("Speech() = %+v", sp)
	}
	if sp := run(9, 3, 1, 1).Speech(); len(sp) != 1 || sp[0] != (domain.Interval{Start: 3, End: 4}) {
		t.Errorf("Speech() of a plain utterance = %+v", sp)
	}
}

func TestPackingAPackedUtteranceKeepsItsRuns(t *testing.T) {
	inner := NewPacker(30)
	inner.Add(run(0, 1, 2, 1))
	inner.Add(run(1, 5, 3, 1))
	w1, _ := inner.Flush()
	outer := NewPacker(30)
	outer.Add(run(7, 0, 1, 1))
	outer.Add(w1)
	w, _ := outer.Flush()
	want := []domain.Run{{At: 0, Interval: domain.Interval{Start: 0, End: 1}}, {At: 1, Interval: domain.Interval{Start: 1, End: 3}}, {At: 3, Interval: domain.Interval{Start: 5, End: 8}}}
	if len(w.Runs) != 3 || w.Runs[0] != want[0] || w.Runs[1] != want[1] || w.Runs[2] != want[2] {
		t.Errorf("runs %+v, want %+v", w.Runs, want)
	}
}

func TestOnRecordingMapsPackedTimesToTheRecording(t *testing.T) {
	p := NewPacker(30)
	p.Add(run(0, 10, 2, 1))
	p.Add(run(1, 20, 3, 1))
	u, _ := p.Flush()
	cases := []struct {
		t    float64
		end  bool
		want float64
	}{
		{0, false, 10}, {1.5, false, 11.5}, {1.5, true, 11.5},
		{2, false, 20}, // a start on the boundary belongs to the later run
		{2, true, 12},  // an end on the boundary to the earlier
		{4, true, 22}, {5, true, 23}, {9, true, 23}, {-1, false, 10},
	}
	for _, c := range cases {
		if got := u.OnRecording(c.t, c.end); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("OnRecording(%v, end %v) = %v, want %v", c.t, c.end, got, c.want)
		}
	}
	plain := run(0, 10, 2, 1)
	if got := plain.OnRecording(1.25, true); got != 11.25 {
		t.Errorf("plain utterance: OnRecording(1.25) = %v", got)
	}
}

// A packed window decodes to segments on the recording's timeline, with the speaker
// the room's attribution found; a run no decoded text covers stays as an untranscribed
// segment.
func TestPackedWindowSegmentsOnTheRecording(t *testing.T) {
	p := NewPacker(30)
	for i, r := range []struct{ start, secs float64 }{{10, 2}, {20, 3}, {40, 2}} {
		p.Add(speakerRun(i, r.start, r.secs, domain.SpeakerClinician))
	}
	u, _ := p.Flush()
	d := &scriptedDecoder{out: []domain.DecodedSegment{
		{Start: 0, End: 3.5, Text: " How long has it hurt?", Tokens: []domain.DecodedToken{tok(-0.1)}},
		{Start: 3.5, End: 5, Text: " [BLANK_AUDIO]"},
	}}
	segs, _, err := engine(t, d).Transcribe(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.lens) != 1 || d.lens[0] != 7*domain.SampleRate {
		t.Fatalf("want one decode of the 7 s window, got %v samples", d.lens)
	}
	if len(segs) != 2 {
		t.Fatalf("want the text and one untranscribed run, got %+v", segs)
	}
	if s := segs[0]; s.Start != 10 || s.End != 21.5 || s.Text != "How long has it hurt?" || s.Speaker != domain.SpeakerClinician {
		t.Errorf("text segment %+v: want 10–21.5 s, clinician", s)
	}
	if s := segs[1]; s.Start != 40 || s.End != 42 || s.Text != "" || !s.HasFlag(domain.FlagUntranscribed) || s.Speaker != domain.SpeakerClinician {
		t.Errorf("unheard run %+v: want 40–42 s untranscribed, clinician", s)
	}
	if segs[0].ID == segs[1].ID {
		t.Errorf("segment ids repeat: %q", segs[0].ID)
	}
	// A failed decode leaves every run visible.
	if un := Untranscribed(u); len(un) != 3 || un[1].Start != 20 || un[1].End != 23 || !un[2].HasFlag(domain.FlagUntranscribed) {
		t.Errorf("Untranscribed = %+v", un)
	}
}

// speakerRun is a run attributed to one speaker, as the pipeline's attributor leaves it.
func speakerRun(seq int, start, seconds float64, sp domain.Speaker) domain.Utterance {
	u := run(seq, start, seconds, 2)
	u.Speakers = []domain.SpeakerSpan{{Interval: u.Interval, Speaker: sp}}
	return u
}

// A window holds one speaker: a change of speaker, as the room's attribution gives it,
// starts a new window, and an utterance in which the floor passed without a pause is cut
// at its turn, each part going to its speaker's window. Whisper's segments follow
// sentences, not turns: a window mixing speakers put words on the wrong one.
func TestPackerKeepsOneSpeakerPerWindow(t *testing.T) {
	p := NewPacker(30)
	var got []domain.Utterance
	got = append(got, p.Add(speakerRun(0, 10, 2, domain.SpeakerClinician))...)
	got = append(got, p.Add(speakerRun(1, 13, 2, domain.SpeakerClinician))...)
	got = append(got, p.Add(speakerRun(2, 20, 2, domain.SpeakerPatient))...)
	turn := run(3, 24, 4, 2) // the patient, then the clinician without a pause
	turn.Speakers = []domain.SpeakerSpan{{Interval: domain.Interval{Start: 24, End: 25.5}, Speaker: domain.SpeakerPatient},
		{Interval: domain.Interval{Start: 25.5, End: 28}, Speaker: domain.SpeakerClinician}}
	turn.Turns = []float64{25.5}
	got = append(got, p.Add(turn)...)
	got = append(got, p.Add(run(4, 30, 2, 2))...) // nobody attributed: a window of its own
	if w, ok := p.Flush(); ok {
		got = append(got, w)
	}
	want := []struct {
		sp   domain.Speaker
		runs []domain.Interval
	}{
		{domain.SpeakerClinician, []domain.Interval{{Start: 10, End: 12}, {Start: 13, End: 15}}},
		{domain.SpeakerPatient, []domain.Interval{{Start: 20, End: 22}, {Start: 24, End: 25.5}}},
		{domain.SpeakerClinician, []domain.Interval{{Start: 25.5, End: 28}}},
		{domain.SpeakerUnknown, []domain.Interval{{Start: 30, End: 32}}},
	}
	if len(got) != len(want) {
		t.Fatalf("want %d windows, got %d: %+v", len(want), len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if speakerOf(g) != w.sp || len(g.Turns) != 0 || !slices.Equal(g.Speech(), w.runs) {
			t.Errorf("window %d: %s, turns %v, runs %v; want %s, runs %v", i, speakerOf(g), g.Turns, g.Speech(), w.sp, w.runs)
		}
	}
	if got[1].Seconds() != 3.5 {
		t.Errorf("the patient's window holds %.2f s of audio, want 2 + 1.5", got[1].Seconds())
	}
	if !Joinable(got[0], speakerRun(9, 40, 1, domain.SpeakerClinician)) || Joinable(got[0], got[1]) || Joinable(got[0], turn) {
		t.Error("Joinable disagrees with the windows")
	}
}

// With MixSpeakers (transcription.file_mix_speakers) one window holds the turns of both
// speakers, and its decoded segments are cut where the floor passes, by each word's
// alignment read alignLate earlier: a sentence of whisper's that runs across the turn
// becomes the clinician's words and the patient's.
func TestMixedWindowIsCutAtTheTurns(t *testing.T) {
	p := NewPacker(30)
	p.MixSpeakers = true
	var got []domain.Utterance
	got = append(got, p.Add(speakerRun(0, 10, 2, domain.SpeakerClinician))...)
	got = append(got, p.Add(speakerRun(1, 13, 3, domain.SpeakerPatient))...)
	w, ok := p.Flush()
	if len(got) != 0 || !ok || len(w.Runs) != 2 {
		t.Fatalf("windows %+v then %+v: want one window of both runs", got, w)
	}
	// The window: the clinician 0–2 s, the patient 2–5 s. Whisper's one segment runs
	// across the turn; "How" is aligned at 2.1 s, late, but said before the turn.
	d := &scriptedDecoder{out: []domain.DecodedSegment{{Start: 0, End: 5, Text: " And how are you? Fine thanks.",
		Tokens: []domain.DecodedToken{word(" And", 0.8), word(" how", 1.4), word(" are", 1.7), word(" you", 2.1), word("?", -1), word(" Fine", 3.0), word(" thanks", 3.6), word(".", -1)}}}}
	segs, _, err := engine(t, d).Transcribe(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 {
		t.Fatalf("segments %+v: want the turn cut", segs)
	}
	for i, want := range []struct {
		text string
		sp   domain.Speaker
		iv   domain.Interval
	}{
		{"And how are you?", domain.SpeakerClinician, domain.Interval{Start: 10, End: 12}},
		{"Fine thanks.", domain.SpeakerPatient, domain.Interval{Start: 13, End: 16}},
	} {
		if s := segs[i]; s.Text != want.text || s.Speaker != want.sp || s.Start != want.iv.Start || s.End != want.iv.End {
			t.Errorf("segment %d: %q %s %.2f–%.2f; want %q %s %v", i, s.Text, s.Speaker, s.Start, s.End, want.text, want.sp, want.iv)
		}
	}
	// Without the mix, the same runs are two windows.
	q := NewPacker(30)
	if n := len(q.Add(speakerRun(0, 10, 2, domain.SpeakerClinician))) + len(q.Add(speakerRun(1, 13, 3, domain.SpeakerPatient))); n != 1 {
		t.Errorf("one speaker per window: %d windows closed at the change, want 1", n)
	}
}
