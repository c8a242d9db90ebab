// Package stream is the live pipeline's commit policy: it decides which decoded words are
// stable enough to commit while people are still talking.
//
// The decoder is given a rolling buffer of the stream's speech — the VAD's utterances
// packed back to back, so Whisper hears the words around a pause — and decodes it again
// every Step seconds of new speech. Words are placed on the timeline by the decoder's
// cross-attention (DTW alignment). A word is committed when it is stable (see Policy);
// committed words are never changed, and the buffer is trimmed behind them, keeping
// Context seconds of already committed audio (with its text as the decoder's prompt) so
// the next words are still heard in context. Words not yet stable are shown as
// provisional text. The VAD still closes lines: when it calls the end of an utterance
// (a pause, a change of speaker on two-channel input, the length limit), the line's last
// words wait up to Grace for decodes that hear the next speech, then every word of the
// line is committed, and the next words start a new line.
//
// Speakers come from the room's attribution (package diarize), which labels each
// utterance as it is heard, again as it grows (Utterance.Speakers): a committed piece
// gets the speaker with the most time under it (diarize.Decide), and a line's last piece
// decides for the whole of its segment. Where the floor passes between speakers without
// a pause (in the labels heard so far, diarize.TurnCuts, and as the attribution finds it
// once the VAD closes the line, Utterance.Turns), the words not yet committed are split
// there into segments of their own.
//
// The package is pure Go and single-threaded: one goroutine owns a Stream and feeds it
// the segmenter's output (Push), asks what to decode (Due, Job) and hands back what the
// decoder said (Apply). Both return the events to publish, in order.
package stream

import (
	"fmt"
	"math"
	"strings"

	"scribe/internal/diarize"
	"scribe/internal/domain"
	"scribe/internal/transcribe"
)

// Policy decides when a decoded word is stable.
type Policy string

const (
	// PolicyAgreement is LocalAgreement-n (Macháček et al. 2023, whisper_streaming): a
	// word is committed once Agreement consecutive decodes of the growing buffer, each
	// having heard more speech than the one before, agree on it and on every word before
	// it (and no decode in between disagrees).
	PolicyAgreement Policy = "agreement"
	// PolicyHorizon commits, after each decode, the words whose last token the decoder's
	// cross-attention (DTW alignment) places more than Horizon seconds before the end of
	// the audio: the decoder has heard what follows them (the idea of AlignAtt, Papi et
	// al. 2023, applied to whole decodes).
	PolicyHorizon Policy = "horizon"
)

// Config holds the policy's choices. Times are seconds.
type Config struct {
	Policy    Policy
	Agreement int     // PolicyAgreement: decodes that must agree (2)
	Horizon   float64 // PolicyHorizon: how far from the end of the audio a word must be
	// Step is the new audio, with speech in it, between two decodes of a stream. Under
	// load decodes start later and each covers more: the step grows rather than a queue.
	Step float64
	// Context is the already committed audio kept at the start of the buffer.
	Context float64
	// MaxBuffer bounds the buffer (Whisper's window is 30 s).
	MaxBuffer float64
	// Settle: once speech has paused for this long its end is decoded without waiting for
	// a full Step, so the VAD's close of the line finds its words decoded.
	Settle float64
	// Grace is how long after the VAD closes a line its last words may wait to be
	// confirmed by decodes that hear what follows (the next line's speech); then they are
	// committed as they stand. 0 commits a line's words as soon as the VAD closes it.
	Grace      float64
	Thresholds transcribe.Thresholds
}

// DefaultConfig is LocalAgreement-2 with half-second steps and 4 s of context.
func DefaultConfig() Config {
	return Config{
		Policy:     PolicyAgreement,
		Agreement:  2,
		Horizon:    1.0,
		Step:       0.5,
		Context:    4,
		MaxBuffer:  28,
		Settle:     0.2,
		Grace:      1.0,
		Thresholds: transcribe.DefaultThresholds(),
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Policy != PolicyAgreement && c.Policy != PolicyHorizon:
		return fmt.Errorf("stream: unknown commit policy %q (agreement or horizon)", c.Policy)
	case c.Policy == PolicyAgreement && (c.Agreement < 2 || c.Agreement > 5):
		return fmt.Errorf("stream: agreement of %d decodes (want 2 to 5)", c.Agreement)
	case c.Policy == PolicyHorizon && c.Horizon <= 0:
		return fmt.Errorf("stream: horizon must be positive")
	case c.Grace < 0 || c.Grace > 10:
		return fmt.Errorf("stream: grace %.2f s (want 0 to 10 s)", c.Grace)
	case c.Step <= 0 || c.Step > 5:
		return fmt.Errorf("stream: step %.2f s (want 0 to 5 s)", c.Step)
	case c.Context < 0 || c.MaxBuffer > 30 || c.MaxBuffer < c.Context+5:
		return fmt.Errorf("stream: context %.1f s and buffer bound %.1f s (want the bound ≤ 30 s and ≥ context + 5 s)", c.Context, c.MaxBuffer)
	}
	return nil
}

// Kind says what a decode is for.
type Kind int

const (
	None Kind = iota
	// Step decodes the growing buffer: commits stable words, refreshes provisional text.
	Step
	// Close decodes the audio of a line the VAD has closed, whose words are due: committed
	// work, served before anyone's steps.
	Close
)

// hypothesis is what one decode said, on the stream's timeline.
type hypothesis struct {
	words []Word
	start float64 // stream time of the decoded audio's first sample
	heard float64 // seconds of speech the stream had heard when it was decoded
}

// line is one VAD utterance: a line of the transcript.
type line struct {
	seq        int
	start, end float64
	closed     bool
	closedAt   float64 // stream time when the VAD closed it
	cut        bool
	audio      *domain.Utterance
	pieces     int       // committed pieces of the current segment so far
	part       int       // the line's segment now being committed (a new one at each turn)
	partStart  float64   // where that segment begins
	words      int       // words committed of the whole line
	doneTo     float64   // where the line's committed words end
	turns      []float64 // where the floor passes to the other speaker, after doneTo
	shown      string    // the provisional text last published
	speechEnd  float64   // where the line's speech heard so far ends
	mustHear   float64   // once due: the decode that commits it must have heard this far (-1 before)
	again      bool      // to be decoded once more: a decode left its speech without words (hole)
	redone     bool      // decoded once more: its words are committed from that decode
}

// Stream is one live stream's commit state. Not safe for concurrent use.
type Stream struct {
	cfg Config
	buf *buffer

	lines     []*line              // not yet complete, oldest first (the one in progress last)
	lastSeq   int                  // the newest utterance seen
	committed []Word               // the committed words' tail (for the prompt and de-duplication)
	speakers  []domain.SpeakerSpan // who spoke when in the audio not yet committed
	doneTo    float64              // stream time the committed words reach
	trimTo    float64              // stream time up to which everything is committed (words or complete lines)
	hyps      []hypothesis
	cutHyp    bool    // the newest hypothesis had a repetition loop cut
	decoded   float64 // stream time the newest hypothesis's audio reached
	speechTo  float64 // end of the last speech heard
	speech    float64 // seconds of speech heard so far
	now       float64 // stream time heard so far
	decodes   int
}

// New makes a stream of nch channels.
func New(cfg Config, nch int) (*Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nch < 1 {
		return nil, fmt.Errorf("stream: %d channels", nch)
	}
	return &Stream{cfg: cfg, buf: newBuffer(nch), lastSeq: -1}, nil
}

// Push takes the segmenter's output: a growing utterance's new audio (Final false: the
// samples since the last push) or a finished utterance (Final true, all its audio). It
// returns the events that follow at once: a closed line whose words the newest decode
// covers is committed without another decode once its grace has run.
func (s *Stream) Push(u domain.Utterance) []domain.LiveEvent {
	if len(u.Channels) > 0 && len(u.Channels[0]) > 0 {
		s.buf.add(int64(u.AudioStart()*domain.SampleRate+0.5), u.Channels)
	}
	s.now = max(s.now, u.End)
	l := s.lineFor(u)
	s.label(u)
	s.speechTo = max(s.speechTo, u.SpeechEnd)
	if l != nil && u.SpeechEnd > l.start {
		if l.speechEnd == 0 {
			s.speech += vadWindow // the speech began within the VAD's last window
		} else {
			s.speech += max(0, u.SpeechEnd-l.speechEnd)
		}
		l.speechEnd = max(l.speechEnd, u.SpeechEnd)
	}
	if !u.Final {
		return nil
	}
	if l != nil && !l.closed {
		l.end, l.closed, l.closedAt, l.cut = u.End, true, s.now, u.Cut
		a := u
		l.audio = &a
		for _, t := range u.Turns {
			if t > l.doneTo {
				l.turns = append(l.turns, t)
			}
		}
	}
	return s.forceDue()
}

// Advance tells the stream how far it has been heard (seconds), speech or not: a closed
// line whose grace has run out is committed. At the end of the stream, Advance(math.Inf(1)).
func (s *Stream) Advance(now float64) []domain.LiveEvent {
	s.now = max(s.now, now)
	return s.forceDue()
}

// lineFor finds or opens the line of utterance u.
func (s *Stream) lineFor(u domain.Utterance) *line {
	for _, l := range s.lines {
		if l.seq == u.Seq {
			return l
		}
	}
	if u.Seq <= s.lastSeq {
		return nil // already committed and gone
	}
	s.lastSeq = u.Seq
	// Its first decode is shown even when it has no words yet: speech is being heard.
	l := &line{seq: u.Seq, start: u.Start, partStart: u.Start, mustHear: -1, shown: "\x00"}
	s.lines = append(s.lines, l)
	return l
}

// due says whether line l's words must be committed now, stable or not: its grace has
// run out, or the buffer is full.
func (s *Stream) due(l *line) bool {
	if !l.closed || s.now < l.closedAt+s.cfg.Grace && !s.Full() {
		return false
	}
	if l.mustHear < 0 {
		// Its words are committed from a decode that heard every word said by now: any of
		// the next line's speech heard during the grace period is context for them.
		l.mustHear = max(l.end, min(s.speechTo, s.buf.endTime()))
	}
	return true
}

// Full says the buffer has reached MaxBuffer: more audio must wait (the caller holds it)
// until decodes have committed and trimmed what is there.
func (s *Stream) Full() bool { return s.buf.endTime()-s.buf.startTime() >= s.cfg.MaxBuffer }

// Due says whether a decode should run now, and of what kind.
func (s *Stream) Due() Kind {
	if s.redo() {
		return Close
	}
	if len(s.lines) > 0 && s.due(s.lines[0]) && s.decoded < s.lines[0].mustHear {
		return Close // due, and no decode has heard all it must
	}
	if len(s.lines) == 0 || s.speechTo <= s.decoded {
		return None // nothing new has been said since the last decode
	}
	end := s.buf.endTime()
	if end-s.decoded >= s.cfg.Step || end >= s.speechTo+s.cfg.Settle {
		return Step
	}
	return None
}

// Job is one decode: the buffer's mono audio and the text committed before it.
type Job struct {
	Kind    Kind
	Samples []float32
	// Context is the committed text just before the buffer's audio, for the decoder's
	// prompt.
	Context string
	end     float64 // stream time the audio reaches
	heard   float64 // seconds of speech heard
	spans   []span
	again   bool // decodes again a line the last decode left a hole in
}

// End is the stream time the job's audio reaches.
func (j Job) End() float64 { return j.end }

// start is the stream time of the job's first sample.
func (j Job) start() float64 {
	if len(j.spans) == 0 {
		return 0
	}
	return float64(j.spans[0].from) / domain.SampleRate
}

// Seconds is the length of the job's audio.
func (j Job) Seconds() float64 { return float64(len(j.Samples)) / domain.SampleRate }

// Job makes the decode Due asked for, from the buffer as it is now. A decode again of a
// line whose speech the last one left without words (hole) is given the buffer from
// where the line's uncommitted speech begins: given a buffer that began inside the line
// before, Whisper has been seen to decode that line's last phrase and stop (real tiny.en,
// 15 s of a consultation decoded as one word); from the line's own start it heard it all.
func (s *Stream) Job(k Kind) Job {
	from, again := 0, s.redo()
	if again {
		if i := s.buf.index(max(s.lines[0].start, s.doneTo)); i < s.buf.len() {
			from = i
		}
	}
	j := Job{
		Kind:    k,
		Samples: append([]float32(nil), s.buf.mix[from:]...),
		end:     s.buf.endTime(),
		heard:   s.speech,
		spans:   s.buf.spansFrom(from),
		again:   again,
	}
	j.Context = s.context(j.start())
	return j
}

// context is the tail of the committed text whose audio ends before start.
func (s *Stream) context(start float64) string {
	var texts []string
	for _, w := range s.committed {
		if w.End <= start {
			texts = append(texts, w.Text)
		}
	}
	return transcribe.ContextTail(texts)
}

// Apply takes what the decoder made of job and returns the events: committed pieces
// (each line's words, in order; a line's last piece carries its audio) and the
// provisional text of the line in progress.
func (s *Stream) Apply(job Job, segs []domain.DecodedSegment) []domain.LiveEvent {
	s.decodes++
	if job.again && s.redo() {
		s.lines[0].redone = true
	}
	words, cut := decodedWords(segs)
	tb := buffer{spans: job.spans}
	for i := range words {
		w := &words[i]
		w.Start, w.End = min(tb.streamTime(w.Start), job.end), min(tb.streamTime(w.End), job.end)
	}
	s.decoded = max(s.decoded, job.end)
	s.hyps = append(s.hyps, hypothesis{words: words, start: job.start(), heard: job.heard})
	s.cutHyp = cut
	if keep := 4 * s.cfg.Agreement; len(s.hyps) > keep {
		s.hyps = s.hyps[len(s.hyps)-keep:]
	}
	evs := s.commitStable(job.end)
	evs = append(evs, s.forceDue()...)
	evs = append(evs, s.provisional()...)
	s.trim()
	return evs
}

// jitter is how far the alignment of the same word moves between decodes.
const jitter = 0.1

// lead is how far past the start of the next line's audio a word of a closed line may
// still be aligned. DTW places a word a little after its sound, but a closed line's audio
// runs on for the VAD's pause before the next line's begins, and the next line's starts
// with the VAD's padding, so a small margin suffices.
const lead = 0.1

// reach is how far past the committed words' end a re-decoded committed word may be
// aligned: a word aligned at the very end of the audio moves later once more is heard.
const reach = 0.6

// fresh is a hypothesis without the words already committed. The decoded audio begins
// with committed speech (the context), which the decoder decodes again, not always to
// the same words; so the hypothesis's first words are aligned, by edit distance, with the
// committed words whose audio it heard, and the fresh words are those after the best
// match — among equally good matches, the one ending nearest the committed words' end,
// and never past it by more than reach. Any repeat of the last committed words is dropped
// too (the same words, decoded again a little later), and so is an echo of the prompt
// (unecho).
func (s *Stream) fresh(h hypothesis) []Word {
	ws := h.words
	var ctx []Word // committed words the decoder heard again
	for _, w := range s.committed {
		if w.End > h.start+jitter {
			ctx = append(ctx, w)
		}
	}
	if len(ctx) == 0 {
		// No committed audio to align an echo of the prompt with; the audio not yet
		// committed begins where the buffer or the committed words end.
		ws = s.unecho(ws, max(h.start, s.doneTo))
	}
	limit := 0 // the hypothesis's words that may be committed ones
	for limit < len(ws) && ws[limit].End <= s.doneTo+reach {
		limit++
	}
	p := 0
	if len(ctx) == 0 {
		for p < limit && ws[p].End < s.doneTo-jitter {
			p++
		}
	} else {
		// row[j]: edit distance between ctx and a run of words ending at ws[j-1]. Words
		// before that run cost nothing: they were decoded before the committed audio the
		// buffer holds (an echo of the prompt, or the end of a word the trim cut), so they
		// are not new either.
		row := make([]int, limit+1)
		for i := range ctx {
			prev := row[0]
			row[0] = i + 1
			for j := 1; j <= limit; j++ {
				cur := row[j]
				sub := prev
				if ctx[i].norm != ws[j-1].norm {
					sub++
				}
				row[j] = min(sub, row[j]+1, row[j-1]+1)
				prev = cur
			}
		}
		gap := func(j int) float64 {
			if j == 0 {
				return math.Abs(h.start - s.doneTo)
			}
			return math.Abs(ws[j-1].End - s.doneTo)
		}
		for j := 1; j <= limit; j++ {
			if row[j] < row[p] || row[j] == row[p] && gap(j) < gap(p)-jitter {
				p = j
			}
		}
		// Words the alignment ends inside the committed words' audio were heard there:
		// a re-decoding that the text alignment did not recognise, not new words.
		for p < limit && ws[p].End < s.doneTo-jitter {
			p++
		}
	}
	ws = ws[p:]
	for n := 1; n <= min(5, len(s.committed), len(ws)); n++ {
		if sameWords(s.committed[len(s.committed)-n:], ws[:n]) {
			return ws[n:]
		}
	}
	return ws
}

// Whisper sometimes begins a decode by echoing its prompt, the committed text before the
// audio, garbled: a few words it did not hear, then the prompt's last words again (seen
// with real tiny.en once a full buffer had been trimmed to the committed words' end). With
// committed audio in the buffer the echo is aligned with it and dropped (fresh); without,
// unecho looks for it. echoWords bounds where the echo may end in the hypothesis,
// echoReach how far past the new audio's start; echoMin is the fewest committed words it
// must repeat to be taken for an echo rather than speech.
const (
	echoWords = 12
	echoReach = 2.0
	echoMin   = 3
)

// unecho drops an echo of the prompt from the start of ws, a hypothesis whose audio holds
// no committed speech and starts at from: the longest run (echoMin to 5 words) of the last
// committed words — ending at the last, or one or two before it (a trim may leave the last
// committed word's end in the buffer, and so out of the prompt) — found again among ws's
// first echoWords words and ending within echoReach of from, with everything before it.
// The cost: a speaker who repeats three or more of the last committed words within two
// seconds of a new line's start (a read-back after a long pause) loses the repeat, as
// one who repeats them as the first words always has (fresh).
func (s *Stream) unecho(ws []Word, from float64) []Word {
	for n := min(5, len(s.committed)); n >= echoMin; n-- {
		for e := len(s.committed); e >= max(n, len(s.committed)-2); e-- {
			tail := s.committed[e-n : e]
			for q := 0; q+n <= min(echoWords, len(ws)) && ws[q+n-1].End <= from+echoReach; q++ {
				if sameWords(tail, ws[q:q+n]) {
					return ws[q+n:]
				}
			}
		}
	}
	return ws
}

func sameWords(a, b []Word) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].norm != b[i].norm {
			return false
		}
	}
	return true
}

// ofLine is how many of ws, from the first, belong to line i: a closed line owns every
// word aligned before the next line's audio begins; the line in progress owns the rest.
func (s *Stream) ofLine(i int, ws []Word) int {
	if i+1 >= len(s.lines) || !s.lines[i].closed {
		return len(ws)
	}
	limit := s.lines[i+1].start + lead
	n := 0
	for n < len(ws) && ws[n].End < limit {
		n++
	}
	return n
}

// newest is the newest hypothesis, without what is committed.
func (s *Stream) newest() []Word {
	if len(s.hyps) == 0 {
		return nil
	}
	return s.fresh(s.hyps[len(s.hyps)-1])
}

// vadWindow is the length of the VAD's window (Silero: 512 samples).
const vadWindow = 512.0 / domain.SampleRate

// newSpeech is how much more speech a decode must have heard than the one before for
// their agreement to count: two decodes of the same speech (a pause growing behind it)
// agreeing say little, and tend to agree on the same mistake.
const newSpeech = 0.1

// stable is how many words of the newest hypothesis h the policy finds stable.
func (s *Stream) stable(h []Word, end float64) int {
	n := 0
	switch s.cfg.Policy {
	case PolicyAgreement:
		// The newest decode and the Agreement-1 before it that each heard more speech than
		// the one before them must agree, and so must every decode in between: a decode
		// of the same speech adds no evidence, but its disagreement still counts.
		newest := s.hyps[len(s.hyps)-1]
		heard, agree := newest.heard, 1
		n = len(h)
		for i := len(s.hyps) - 2; i >= 0 && agree < s.cfg.Agreement; i-- {
			prev := s.hyps[i]
			p := s.fresh(prev)
			k := 0
			for k < min(n, len(p)) && p[k].norm == h[k].norm {
				k++
			}
			n = k
			if prev.heard <= heard-newSpeech {
				heard = prev.heard
				agree++
			}
		}
		if agree < s.cfg.Agreement {
			return 0
		}
	case PolicyHorizon:
		for n < len(h) && h[n].End <= end-s.cfg.Horizon {
			n++
		}
	}
	return n
}

// commitStable commits the stable words of the newest hypothesis, line by line. A closed
// line is complete when the stable words run on into the next line: decodes that heard
// what followed agree on where it ends (and leave no hole in its speech: else it is
// decoded again first, as in forceDue). Otherwise its grace runs out: forceDue.
func (s *Stream) commitStable(end float64) []domain.LiveEvent {
	if len(s.hyps) == 0 {
		return nil
	}
	h := s.newest()
	n := s.stable(h, end)
	var evs []domain.LiveEvent
	for len(s.lines) > 0 {
		l := s.lines[0]
		k := s.ofLine(0, h)
		take := min(k, n)
		complete := l.closed && n > k
		if take == 0 && !complete {
			break
		}
		if complete && s.decodeAgain(l, h[:k]) {
			break
		}
		evs = append(evs, s.commit(l, h[:take], complete)...)
		h, n = h[take:], n-take
		if !complete {
			break
		}
		s.lines = s.lines[1:]
	}
	return evs
}

// forceDue commits, stable or not, every closed line whose grace has run out and whose
// end the newest hypothesis has heard — unless that hypothesis left a stretch of the
// line's speech without words: then the line is decoded once more first (redo), and
// committed as that decode has it.
func (s *Stream) forceDue() []domain.LiveEvent {
	var evs []domain.LiveEvent
	for len(s.lines) > 0 && !s.redo() && (s.lines[0].redone || s.due(s.lines[0]) && s.decoded >= s.lines[0].mustHear) {
		l, h := s.lines[0], s.newest()
		ws := h[:s.ofLine(0, h)]
		if s.decodeAgain(l, ws) {
			break
		}
		evs = append(evs, s.commit(l, ws, true)...)
		s.lines = s.lines[1:]
	}
	if len(evs) > 0 {
		s.trim()
	}
	return evs
}

// decodeAgain asks for line l, the oldest, to be decoded once more (redo), and says so,
// when ws, its words in the newest hypothesis, leave a hole in its speech and it has not
// been decoded again yet.
func (s *Stream) decodeAgain(l *line, ws []Word) bool {
	if l.again || s.hole(l, ws) <= transcribe.MaxHole {
		return false
	}
	l.again = true
	return true
}

// redo says the oldest line is to be decoded again (decodeAgain) and that decode has not
// been applied yet.
func (s *Stream) redo() bool {
	return len(s.lines) > 0 && s.lines[0].again && !s.lines[0].redone
}

// hole is the longest stretch of line l's speech not yet committed in which no word of
// ws ends.
func (s *Stream) hole(l *line, ws []Word) float64 {
	at := max(l.start, s.doneTo)
	to := l.end
	if l.speechEnd > 0 {
		to = min(to, l.speechEnd)
	}
	longest := 0.0
	for _, w := range ws {
		longest = max(longest, w.End-at)
		at = max(at, w.End)
	}
	return max(longest, to-at)
}

// Undecoded commits every closed line with what is committed of it so far — nothing,
// if it was never decoded, flagged untranscribed: the decoder failed, and the speech must
// stay visible to the reviewer.
func (s *Stream) Undecoded() []domain.LiveEvent {
	var evs []domain.LiveEvent
	for len(s.lines) > 0 && s.lines[0].closed {
		evs = append(evs, s.commit(s.lines[0], nil, true)...)
		s.lines = s.lines[1:]
	}
	return evs
}

// label keeps u's speaker spans: they label the whole utterance as heard so far (a
// finished one's learnt from all of it) and replace what was said of it before. A
// growing utterance without spans leaves them as they are.
func (s *Stream) label(u domain.Utterance) {
	if u.Final || len(u.Speakers) > 0 {
		kept := s.speakers[:0]
		for _, sp := range s.speakers {
			if sp.End <= u.Start || sp.Start >= u.End {
				kept = append(kept, sp)
			}
		}
		s.speakers = kept
	}
	s.speakers = append(s.speakers, u.Speakers...)
}

// commit publishes words as the next pieces of line l (its last when complete): one
// piece, or more where a turn falls among the words.
func (s *Stream) commit(l *line, ws []Word, complete bool) []domain.LiveEvent {
	if !l.closed {
		// Still growing: the turns its labels show so far (a closed line's came with it).
		l.turns = l.turns[:0]
		for _, c := range diarize.TurnCuts(s.speakers, domain.Interval{Start: l.start, End: s.now}) {
			if c > l.doneTo {
				l.turns = append(l.turns, c)
			}
		}
	}
	var evs []domain.LiveEvent
	for {
		// Turns before these words end the segment committed so far.
		for len(l.turns) > 0 && len(ws) > 0 && ws[0].mid() >= l.turns[0] {
			if l.pieces > 0 {
				l.part, l.pieces = l.part+1, 0
			}
			l.partStart = l.turns[0]
			l.turns = l.turns[1:]
		}
		k := len(ws)
		if len(l.turns) > 0 {
			k = 0
			for k < len(ws) && ws[k].mid() < l.turns[0] {
				k++
			}
		}
		if k == len(ws) {
			return append(evs, s.piece(l, ws, complete))
		}
		evs = append(evs, s.piece(l, ws[:k], false))
		ws = ws[k:]
	}
}

// piece publishes words as the next piece of line l's current segment.
func (s *Stream) piece(l *line, ws []Word, complete bool) domain.LiveEvent {
	seg := domain.Segment{ID: fmt.Sprintf("u%d-%d", l.seq, l.part), Text: joinWords(ws)}
	switch {
	case len(ws) > 0 && l.pieces > 0:
		seg.Start, seg.End = ws[0].Start, ws[len(ws)-1].End
	case len(ws) > 0:
		seg.Start, seg.End = min(l.partStart, ws[0].Start), ws[len(ws)-1].End
	default:
		seg.Start, seg.End = l.partStart, l.partStart
	}
	if complete {
		seg.End = max(seg.End, l.end)
	}
	from := l.partStart // the segment's speaker: decided over all of it so far
	if l.pieces > 0 && !complete {
		from = seg.Start // a middle piece: over its own words
	}
	sp, uncertain := diarize.Decide(s.speakers, from, max(seg.End, from+vadWindow))
	seg.Speaker = sp
	if uncertain {
		seg.Flags = append(seg.Flags, domain.FlagOverlap)
	}
	if len(ws) > 0 {
		var lp, ns float64
		for _, w := range ws {
			lp += w.LogProb
			ns = max(ns, w.NoSpeech)
		}
		seg.AvgLogProb, seg.NoSpeechProb = lp/float64(len(ws)), ns
		if ns > s.cfg.Thresholds.NoSpeech && seg.AvgLogProb < s.cfg.Thresholds.LogProb {
			seg.Flags = append(seg.Flags, domain.FlagNoSpeech)
		} else if seg.AvgLogProb < s.cfg.Thresholds.LogProb {
			seg.Flags = append(seg.Flags, domain.FlagLowConfidence)
		}
		if s.cutHyp {
			seg.Flags = append(seg.Flags, domain.FlagRepetition)
		}
		s.committed = append(s.committed, ws...)
		if k := len(s.committed) - 200; k > 0 {
			s.committed = append(s.committed[:0], s.committed[k:]...)
		}
		s.doneTo = max(s.doneTo, ws[len(ws)-1].End)
		l.doneTo = max(l.doneTo, ws[len(ws)-1].End)
		l.words += len(ws)
	}
	if complete {
		s.trimTo = max(s.trimTo, l.end)
		if l.words == 0 {
			// The VAD heard speech but no words were decoded: keep the gap visible.
			seg.Flags = append(seg.Flags, domain.FlagUntranscribed)
		}
		if l.cut {
			seg.Flags = append(seg.Flags, domain.FlagTruncated)
		}
	}
	l.shown = "\x00" // a committed event clears the line's provisional text
	ev := domain.LiveEvent{Kind: domain.EventCommitted, Utterance: l.seq, Segment: seg, Continues: l.pieces > 0}
	if complete {
		ev.Audio = l.audio
	}
	l.pieces++
	return ev
}

// provisional publishes the uncommitted words of the oldest unfinished line when they
// changed (the page shows them after the line's committed words).
func (s *Stream) provisional() []domain.LiveEvent {
	if len(s.lines) == 0 || len(s.hyps) == 0 {
		return nil
	}
	l := s.lines[0]
	h := s.newest()
	text := joinWords(h)
	if text == l.shown {
		return nil
	}
	l.shown = text
	seg := domain.Segment{Start: l.start, End: l.start, Speaker: domain.SpeakerUnknown, Text: text}
	if len(h) > 0 {
		seg.Start, seg.End = h[0].Start, h[len(h)-1].End
	}
	return []domain.LiveEvent{{Kind: domain.EventProvisional, Utterance: l.seq, Segment: seg}}
}

// trim drops committed audio from the buffer's start, keeping Context seconds of it
// before the first uncommitted word, and keeps the buffer within MaxBuffer. It cuts where
// the VAD dropped a silence (the packed audio jumps) if there is one near, else where a
// committed word ends, else at the mark itself (committed audio: at worst the first
// context word is clipped).
func (s *Stream) trim() {
	if len(s.buf.spans) == 0 {
		return
	}
	done := max(s.doneTo, s.trimTo)
	keepFrom := done - s.cfg.Context
	if over := s.buf.endTime() - s.cfg.MaxBuffer; over > keepFrom {
		keepFrom = min(over, done)
	}
	start := s.buf.startTime()
	if keepFrom <= start {
		return
	}
	best := -1.0
	for _, w := range s.committed {
		if w.End <= keepFrom && w.End > start {
			best = max(best, w.End)
		}
	}
	for _, sp := range s.buf.spans[1:] {
		if t := float64(sp.from) / domain.SampleRate; t <= keepFrom && t > best-1 {
			best = t
		}
	}
	at := keepFrom
	if best >= keepFrom-2 {
		at = best
	}
	s.buf.dropBefore(s.buf.index(at))
	start = s.buf.startTime()
	kept := s.speakers[:0]
	for _, sp := range s.speakers {
		if sp.End > start || len(s.lines) > 0 && sp.End > s.lines[0].start {
			kept = append(kept, sp)
		}
	}
	s.speakers = kept
}

// Stats describe a stream's work so far.
type Stats struct {
	Decodes       int     `json:"decodes"`
	BufferSeconds float64 `json:"buffer_seconds"`
}

// Stats reports the decodes applied and the buffer's length now.
func (s *Stream) Stats() Stats {
	return Stats{Decodes: s.decodes, BufferSeconds: float64(s.buf.len()) / domain.SampleRate}
}

// Text is the committed words' tail, for tests and diagnostics.
func (s *Stream) Text() string {
	var b strings.Builder
	for i, w := range s.committed {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.Text)
	}
	return b.String()
}
