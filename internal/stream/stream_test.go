package stream

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"scribe/internal/domain"
	"scribe/internal/stream/streamtest"
)

// A scripted conversation: words at known times, grouped into lines (the VAD's
// utterances), and a decoder that hears exactly the words whose sound lies in the audio it
// is given — except the one being spoken as the audio ends, which it gets wrong — and
// aligns each a little after its end, with jitter.
type spoken struct {
	text       string
	start, end float64
}

type script struct {
	lines [][]spoken
	rnd   *rand.Rand
	// wrongEnds makes the decoder get a line's last word wrong, the same way every time,
	// until it has heard the next line's speech (as tiny.en does jfk.wav's first phrase).
	wrongEnds bool
	// echo makes the decoder, once it is given a prompt, begin by saying a word that was
	// not said and the prompt's last three words again, squeezed into the first 0.3 s of
	// the audio: Whisper echoing its preceding text (seen with real tiny.en).
	echo bool
	// garble makes the decoder hear the committed words whose audio the buffer still
	// holds as other words, two for each (as tiny.en heard "to my day" again as "to date,
	// I'm gonna"), aligned inside their audio.
	garble bool
	st     *Stream // the stream being played, for garble
	// deaf is a line (index + 1) the decoder does not hear in audio that begins in an
	// earlier line (as real tiny.en once decoded 15 s of a consultation that began with
	// the end of the line before as that line's last word), or at all when deafAlways is
	// set (speech with no words in it: a cough, a laugh).
	deaf       int
	deafAlways bool
	// turn > 0: the clinician speaks until then, the patient after, and the attribution
	// labels each utterance so as it grows (a finished line says where the turn falls).
	turn float64
}

// spans labels [from, to) as the script's speakers, when it has a turn.
func (s *script) spans(from, to float64) []domain.SpeakerSpan {
	if s.turn <= 0 {
		return nil
	}
	var out []domain.SpeakerSpan
	if from < s.turn {
		out = append(out, domain.SpeakerSpan{Interval: domain.Interval{Start: from, End: min(to, s.turn)}, Speaker: domain.SpeakerClinician})
	}
	if to > s.turn {
		out = append(out, domain.SpeakerSpan{Interval: domain.Interval{Start: max(from, s.turn), End: to}, Speaker: domain.SpeakerPatient})
	}
	return out
}

// newScript makes n lines of words: 0.3 s words 0.1 s apart, lines pause apart.
func newScript(n int, pause float64, words func(i int) int) *script {
	s := &script{rnd: rand.New(rand.NewSource(7))}
	t, k := 0.5, 0
	for i := range n {
		var l []spoken
		for range words(i) {
			k++
			l = append(l, spoken{text: fmt.Sprintf("w%d", k), start: t, end: t + 0.3})
			t += 0.4
		}
		s.lines = append(s.lines, l)
		t += pause - 0.1
	}
	return s
}

func (s *script) all() []string {
	var out []string
	for _, l := range s.lines {
		for _, w := range l {
			out = append(out, w.text)
		}
	}
	return out
}

// bufferTime maps a stream time into job j's audio (-1 when the audio was dropped).
func bufferTime(j Job, t float64) float64 {
	smp := int64(t * domain.SampleRate)
	for _, sp := range j.spans {
		if smp >= sp.from && smp <= sp.from+int64(sp.n) {
			return float64(sp.at+int(smp-sp.from)) / domain.SampleRate
		}
	}
	return -1
}

func (s *script) decode(j Job) []domain.DecodedSegment {
	var toks []domain.DecodedToken
	for li, l := range s.lines {
		for wi, w := range l {
			a, b := bufferTime(j, w.start), bufferTime(j, w.end)
			if a < 0 && b < 0 || li+1 == s.deaf && (j.start() < l[0].start-0.3 || s.deafAlways) {
				continue
			}
			text := w.text
			at := b + 0.05 + (s.rnd.Float64()-0.5)*0.12
			switch {
			case b < 0 && w.start < j.end: // being spoken as the audio ends
				text, at = w.text+"?", float64(len(j.Samples))/domain.SampleRate
			case b < 0:
				continue
			case a < 0: // cut by a trim: heard in part, decoded all the same
			}
			if s.garble && w.end <= s.st.doneTo {
				toks = append(toks, domain.DecodedToken{Text: " g" + text, At: at - 0.35, LogProb: -0.1})
				text, at = "h"+text, at-0.25
			}
			if s.wrongEnds && wi == len(l)-1 && li+1 < len(s.lines) && j.end < s.lines[li+1][0].start+0.15 {
				text += "-wrong"
			}
			toks = append(toks, domain.DecodedToken{Text: " " + text, At: at, LogProb: -0.1})
		}
	}
	if prompt := strings.Fields(j.Context); s.echo && len(prompt) >= 3 {
		// Aligned before the first word heard: the alignment is monotonic.
		first := 0.3
		if len(toks) > 0 {
			first = min(first, max(toks[0].At, 0))
		}
		echo := append([]string{"uh"}, prompt[len(prompt)-3:]...)
		var pre []domain.DecodedToken
		for i, w := range echo {
			pre = append(pre, domain.DecodedToken{Text: " " + w, At: first * float64(i) / float64(len(echo)), LogProb: -0.1})
		}
		toks = append(pre, toks...)
	}
	return []domain.DecodedSegment{{Tokens: toks}}
}

var debugPlay func(string, ...any)

type run struct {
	events  []domain.LiveEvent
	maxBuf  float64
	decodes int
}

// play feeds the script to a stream as the segmenter would (growth every 0.1 s, a line
// closed after 0.6 s of silence) and decodes whenever the stream asks, instantly.
func (s *script) play(t *testing.T, cfg Config) run {
	t.Helper()
	st, err := New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.st = st
	var r run
	const tick, pad, minSilence = 0.1, 0.2, 0.6
	end := s.lines[len(s.lines)-1][len(s.lines[len(s.lines)-1])-1].end + 3
	li, emitted := 0, 0.0
	for now := tick; now <= end; now += tick {
		if li < len(s.lines) {
			l := s.lines[li]
			from, speech := l[0].start-pad, l[len(l)-1].end
			if now > from {
				start := max(from, emitted)
				n := int(math.Round((now - start) * domain.SampleRate))
				heard := 0.0 // no speech yet: the padding before it
				for _, w := range l {
					if w.start < now {
						heard = min(now, w.end)
					}
				}
				u := domain.Utterance{Seq: li, Interval: domain.Interval{Start: from, End: now},
					Channels: [][]float32{make([]float32, n)}, SpeechEnd: heard, Speakers: s.spans(from, now)}
				r.events = append(r.events, st.Push(u)...)
				emitted = now
				if now >= speech+minSilence {
					fin := domain.Utterance{Seq: li, Interval: domain.Interval{Start: from, End: speech + pad}, Final: true,
						Channels: [][]float32{make([]float32, int(math.Round((speech+pad-from)*domain.SampleRate)))},
						Speakers: s.spans(from, speech+pad)}
					if s.turn > from && s.turn < speech+pad {
						fin.Turns = []float64{s.turn}
					}
					r.events = append(r.events, st.Push(fin)...)
					li++
				}
			}
		}
		r.events = append(r.events, st.Advance(now)...)
		r.decode(st, s)
	}
	r.events = append(r.events, st.Advance(math.Inf(1))...)
	r.decode(st, s)
	if k := st.Due(); k != None {
		t.Fatalf("still due (%v) at the end", k)
	}
	return r
}

func (r *run) decode(st *Stream, s *script) {
	for k := st.Due(); k != None; k = st.Due() {
		j := st.Job(k)
		r.maxBuf = max(r.maxBuf, j.Seconds())
		r.decodes++
		segs := s.decode(j)
		if debugPlay != nil {
			var b strings.Builder
			for _, tk := range segs[0].Tokens {
				fmt.Fprintf(&b, "%s@%.2f ", tk.Text, tk.At)
			}
			debugPlay("decode %v end %.2f heard %.2f spans %v: %s", k, j.end, j.heard, j.spans, b.String())
		}
		r.events = append(r.events, st.Apply(j, segs)...)
	}
}

// committed checks the committed events (streamtest.Read) and returns their words and
// the number of lines.
func (r run) committed(t *testing.T) (words []string, lines int) {
	t.Helper()
	c, err := streamtest.Read(r.events)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Pieces {
		words = append(words, strings.Fields(p)...)
	}
	return words, len(c.Lines)
}

func TestAgreementCommitsEveryWordOnceAcrossTrims(t *testing.T) {
	// Long lines, short pauses: the buffer is trimmed many times inside lines and across
	// them, and the alignment jitters.
	s := newScript(12, 0.9, func(i int) int { return 5 + (i*7)%23 })
	for _, grace := range []float64{0, 1} {
		cfg := DefaultConfig()
		cfg.Grace = grace
		r := s.play(t, cfg)
		got, lines := r.committed(t)
		if strings.Join(got, " ") != strings.Join(s.all(), " ") {
			t.Errorf("grace %.0f: committed\n%s\nwant\n%s", grace, strings.Join(got, " "), strings.Join(s.all(), " "))
		}
		if lines != len(s.lines) {
			t.Errorf("grace %.0f: %d lines, want %d", grace, lines, len(s.lines))
		}
		// The buffer holds the context, the words in progress and a step, never the whole
		// conversation.
		if r.maxBuf > cfg.Context+12 {
			t.Errorf("grace %.0f: buffer reached %.1f s", grace, r.maxBuf)
		}
		t.Logf("grace %.0f: %d words, %d decodes, buffer ≤ %.1f s", grace, len(got), r.decodes, r.maxBuf)
	}
}

// Whisper may begin a decode by echoing its prompt, the committed text just before the
// audio. With context kept in the buffer the echo comes before the re-decoded committed
// words and is dropped with them; without it (a buffer trimmed to the committed words'
// end, as a full buffer is), the echo is all the decoder says before the new words, and
// must be recognised as the committed words again — not committed a second time.
func TestPromptEchoIsNotCommittedAgain(t *testing.T) {
	s := newScript(4, 0.9, func(i int) int { return 20 + 3*i })
	for _, c := range []float64{4, 0} {
		s.rnd = rand.New(rand.NewSource(7))
		s.echo = false
		cfg := DefaultConfig()
		cfg.Context = c
		plain, _ := s.play(t, cfg).committed(t)
		if strings.Join(plain, " ") != strings.Join(s.all(), " ") {
			t.Fatalf("context %.0f s, no echo: committed\n%s\nwant\n%s", c, strings.Join(plain, " "), strings.Join(s.all(), " "))
		}
		s.rnd = rand.New(rand.NewSource(7))
		s.echo = true
		got, lines := s.play(t, cfg).committed(t)
		if strings.Join(got, " ") != strings.Join(s.all(), " ") || lines != len(s.lines) {
			t.Errorf("context %.0f s, the decoder echoing its prompt: %d lines committed\n%s\nwant\n%s", c, lines, strings.Join(got, " "), strings.Join(s.all(), " "))
		}
	}
}

// The committed words at the start of the buffer, decoded again as other words (so the
// text alignment cannot match them up), are not new: the alignment puts them inside the
// committed words' audio.
func TestCommittedAudioDecodedAsOtherWordsIsNotNew(t *testing.T) {
	s := newScript(4, 0.9, func(i int) int { return 20 + 3*i })
	s.garble = true
	got, lines := s.play(t, DefaultConfig()).committed(t)
	if strings.Join(got, " ") != strings.Join(s.all(), " ") || lines != len(s.lines) {
		t.Errorf("%d lines committed\n%s\nwant\n%s", lines, strings.Join(got, " "), strings.Join(s.all(), " "))
	}
}

// A decode that leaves a stretch of a closing line's speech without words (the decoder
// skipped it) is not committed as it is: the line is decoded once more, from where its
// uncommitted speech begins. Speech the decoder finds no words in either way is committed
// as it is (an empty line is flagged untranscribed), after one more decode.
func TestSpeechLeftWithoutWordsIsDecodedAgain(t *testing.T) {
	for _, c := range []struct {
		pause  float64 // before the next line: within the grace, decodes agree on its words
		always bool
	}{{2, false}, {0.9, false}, {2, true}, {0.9, true}} {
		s := newScript(3, c.pause, func(i int) int { return []int{30, 12, 8}[i] })
		s.deaf, s.deafAlways = 2, c.always
		r := s.play(t, DefaultConfig())
		got, lines := r.committed(t)
		want, wantFlagged := s.all(), 0
		if c.always {
			want, wantFlagged = append(append([]string(nil), want[:30]...), want[42:]...), 1
		}
		if strings.Join(got, " ") != strings.Join(want, " ") || lines != len(s.lines) {
			t.Errorf("pause %.1f s, deaf always %v: %d lines committed\n%s\nwant\n%s", c.pause, c.always, lines, strings.Join(got, " "), strings.Join(want, " "))
		}
		flagged := 0
		for _, ev := range r.events {
			if ev.Kind == domain.EventCommitted && ev.Segment.HasFlag(domain.FlagUntranscribed) {
				flagged++
			}
		}
		if flagged != wantFlagged {
			t.Errorf("pause %.1f s, deaf always %v: %d lines flagged untranscribed, want %d", c.pause, c.always, flagged, wantFlagged)
		}
	}
}

func TestAgreementCommitsInsideLinesAndTrims(t *testing.T) {
	s := newScript(3, 2, func(int) int { return 30 }) // 12 s lines
	st, err := New(DefaultConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	_ = st
	r := s.play(t, DefaultConfig())
	pieces, prompted := 0, false
	for _, ev := range r.events {
		if ev.Kind == domain.EventCommitted && ev.Continues {
			pieces++
		}
	}
	if pieces < 3*5 {
		t.Errorf("%d later pieces in three 12 s lines: words are not committed while the line goes on", pieces)
	}
	// Replay and watch the prompt: once the buffer is trimmed, the committed text before it
	// is the decoder's preceding text.
	st, _ = New(DefaultConfig(), 1)
	for _, l := range s.lines[:1] {
		from := l[0].start - 0.2
		for now := from + 0.1; now < l[len(l)-1].end; now += 0.1 {
			st.Push(domain.Utterance{Seq: 0, Interval: domain.Interval{Start: from, End: now},
				Channels: [][]float32{make([]float32, domain.SampleRate/10)}, SpeechEnd: now})
			for k := st.Due(); k != None; k = st.Due() {
				j := st.Job(k)
				if j.Context != "" {
					prompted = true
					if !strings.HasPrefix(s.all()[0]+" ", strings.Fields(j.Context)[0]+" ") && !strings.Contains(strings.Join(s.all(), " "), j.Context) {
						t.Fatalf("prompt %q is not committed text", j.Context)
					}
				}
				st.Apply(j, s.decode(j))
			}
		}
	}
	if !prompted {
		t.Error("a 12 s line never trimmed its buffer to give committed text as the prompt")
	}
}

// A line's last word is decoded wrong until the decoder hears what follows. Decodes that
// heard no more speech than the one before do not count as agreeing, so the mistake is
// not committed; with a grace period the next line's first decodes settle it. Without
// one the VAD's close commits whatever the newest decode said: the trade between latency
// and words that README measures.
func TestGraceLetsTheNextWordsSettleALinesEnd(t *testing.T) {
	s := newScript(6, 0.9, func(i int) int { return 4 + i%3 })
	s.wrongEnds = true
	for _, c := range []struct {
		grace float64
		right bool
	}{{1.5, true}, {0, false}} {
		cfg := DefaultConfig()
		cfg.Grace = c.grace
		got, _ := s.play(t, cfg).committed(t)
		right := strings.Join(got, " ") == strings.Join(s.all(), " ")
		if right != c.right {
			t.Errorf("grace %.1f: committed %q (want right: %v)", c.grace, strings.Join(got, " "), c.right)
		}
	}
}

func TestHorizonCommitsEveryWordOnce(t *testing.T) {
	s := newScript(8, 1.2, func(i int) int { return 3 + (i*5)%17 })
	cfg := DefaultConfig()
	cfg.Policy = PolicyHorizon
	r := s.play(t, cfg)
	got, lines := r.committed(t)
	if strings.Join(got, " ") != strings.Join(s.all(), " ") || lines != len(s.lines) {
		t.Errorf("committed %d lines:\n%s\nwant\n%s", lines, strings.Join(got, " "), strings.Join(s.all(), " "))
	}
}

// Provisional text is the words not yet committed: it never repeats a committed word, and
// a line's provisional text ends when the line is complete.
func TestProvisionalIsTheUncommittedTail(t *testing.T) {
	s := newScript(5, 1, func(int) int { return 8 })
	r := s.play(t, DefaultConfig())
	seen := map[string]bool{}
	for _, ev := range r.events {
		switch ev.Kind {
		case domain.EventCommitted:
			for _, w := range strings.Fields(ev.Segment.Text) {
				seen[w] = true
			}
		case domain.EventProvisional:
			for _, w := range strings.Fields(ev.Segment.Text) {
				if seen[w] {
					t.Fatalf("provisional %q repeats committed %q", ev.Segment.Text, w)
				}
			}
		}
	}
}

// When decoding fails for good, the closed lines are kept, empty and flagged, so the
// clinician sees that speech was heard.
func TestUndecodedLinesStayVisible(t *testing.T) {
	st, _ := New(DefaultConfig(), 1)
	st.Push(domain.Utterance{Seq: 0, Interval: domain.Interval{Start: 1, End: 3}, SpeechEnd: 2.8, Final: true, Channels: [][]float32{make([]float32, 2*domain.SampleRate)}})
	if k := st.Due(); k != Step {
		t.Fatalf("due %v before the grace ran out, want a step", k)
	}
	st.Advance(10)
	if k := st.Due(); k != Close {
		t.Fatalf("due %v, want a close", k)
	}
	evs := st.Undecoded()
	if len(evs) != 1 || !evs[0].Segment.HasFlag(domain.FlagUntranscribed) || evs[0].Audio == nil || evs[0].Segment.End != 3 {
		t.Fatalf("events %+v", evs)
	}
	if k := st.Due(); k != None {
		t.Errorf("still due %v", k)
	}
	// A decode that heard none of a 5 s line asks for another; that one failing too
	// leaves the line visible, and nothing more due.
	st, _ = New(DefaultConfig(), 1)
	st.Push(domain.Utterance{Seq: 0, Interval: domain.Interval{Start: 1, End: 6}, SpeechEnd: 5.8, Final: true, Channels: [][]float32{make([]float32, 5*domain.SampleRate)}})
	st.Advance(10)
	for _, ev := range st.Apply(st.Job(st.Due()), nil) {
		if ev.Kind == domain.EventCommitted {
			t.Fatalf("a decode with no words committed %+v", ev)
		}
	}
	if k := st.Due(); k != Close {
		t.Fatalf("due %v after a decode with no words, want a close", k)
	}
	if evs := st.Undecoded(); len(evs) != 1 || !evs[0].Segment.HasFlag(domain.FlagUntranscribed) {
		t.Fatalf("events %+v", evs)
	}
	if k := st.Due(); k != None {
		t.Errorf("still due %v after the decode again failed", k)
	}
}

// One line in which the floor passes from the clinician to the patient without a pause:
// every committed piece gets the attributed speaker, and the words after the turn go into
// a segment of their own, so no segment holds both speakers' words.
func TestTurnsSplitALineBySpeaker(t *testing.T) {
	s := newScript(2, 1.2, func(int) int { return 16 })
	first := s.lines[0]
	s.turn = (first[7].end + first[8].start) / 2 // words w1–w8 the clinician's, w9–w16 the patient's
	r := s.play(t, DefaultConfig())
	got, _ := r.committed(t)
	if strings.Join(got, " ") != strings.Join(s.all(), " ") {
		t.Fatalf("committed\n%s\nwant\n%s", strings.Join(got, " "), strings.Join(s.all(), " "))
	}
	speakerOf := map[string]domain.Speaker{}
	for _, l := range s.lines {
		for _, w := range l {
			speakerOf[w.text] = domain.SpeakerClinician
			if w.start > s.turn {
				speakerOf[w.text] = domain.SpeakerPatient
			}
		}
	}
	segs := map[string]domain.Speaker{}
	for _, ev := range r.events {
		if ev.Kind != domain.EventCommitted {
			continue
		}
		for _, w := range strings.Fields(ev.Segment.Text) {
			if want := speakerOf[w]; ev.Segment.Speaker != want {
				t.Errorf("%s in piece %q of %s committed as %q, want %q", w, ev.Segment.Text, ev.Segment.ID, ev.Segment.Speaker, want)
			}
			if sp, ok := segs[ev.Segment.ID]; ok && sp != speakerOf[w] {
				t.Errorf("segment %s holds words of both speakers (%s)", ev.Segment.ID, w)
			}
			segs[ev.Segment.ID] = speakerOf[w]
		}
	}
	if segs["u0-0"] != domain.SpeakerClinician || segs["u0-1"] != domain.SpeakerPatient {
		t.Errorf("segments of the first line: %v, want u0-0 the clinician's and u0-1 the patient's", segs)
	}
}
