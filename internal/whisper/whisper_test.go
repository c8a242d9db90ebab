package whisper

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/domain"
	"scribe/internal/testmodels"
	"scribe/internal/vad"
)

const shared = "../../../shared"

func sharedFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(shared, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not available (tests expect ../shared beside the repo): %v", rel, err)
	}
	return p
}

func jfk(t testing.TB) []float32 {
	t.Helper()
	clip, err := audio.ReadFile(sharedFile(t, "audio/jfk.wav"))
	if err != nil {
		t.Fatal(err)
	}
	return clip.To16k().Channels[0]
}

func loadVAD(t testing.TB) *VAD {
	t.Helper()
	v, err := LoadVAD(sharedFile(t, "models/for-tests-silero-v6.2.0-ggml.bin"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

var jfkPhrases = []domain.Interval{{Start: 0.32, End: 2.27}, {Start: 3.27, End: 4.41}, {Start: 5.38, End: 7.68}, {Start: 8.16, End: 10.62}}

func assertPhrases(t *testing.T, what string, got []domain.Interval) {
	t.Helper()
	if len(got) != len(jfkPhrases) {
		t.Fatalf("%s: found %d phrases %v, want %d", what, len(got), got, len(jfkPhrases))
	}
	for i, w := range jfkPhrases {
		if math.Abs(got[i].Start-w.Start) > 0.1 || math.Abs(got[i].End-w.End) > 0.1 {
			t.Errorf("%s: phrase %d at %.2f–%.2f, want %.2f–%.2f ±0.1", what, i, got[i].Start, got[i].End, w.Start, w.End)
		}
	}
	t.Logf("%s: %v", what, got)
}

// TestVADFindsJFKPhrases runs the real Silero model: libwhisper's whole-file segmentation
// and our streaming segmenter fed in 100 ms pieces must both find the four phrases.
func TestVADFindsJFKPhrases(t *testing.T) {
	samples := jfk(t)
	v := loadVAD(t)

	spans, err := v.Segments(samples, DefaultSegmentParams())
	if err != nil {
		t.Fatal(err)
	}
	var whole []domain.Interval
	for _, s := range spans {
		whole = append(whole, domain.Interval{Start: s.Start, End: s.End})
	}
	assertPhrases(t, "libwhisper segments", whole)

	cfg := vad.DefaultConfig()
	// Our hysteresis (speech ends below 0.35, not 0.5) is stricter than libwhisper's, so a
	// 0.25 s pause rule gives the same phrases as its 0.1 s one.
	cfg.MinSilence, cfg.Padding, cfg.MinSpeech, cfg.GrowEvery = 0.25, 0.03, 0.25, 0
	seg, err := vad.New(cfg, v, 1)
	if err != nil {
		t.Fatal(err)
	}
	var streamed []domain.Interval
	for i := 0; i < len(samples); i += 1600 {
		j := min(i+1600, len(samples))
		us, err := seg.Push(samples[i:j], [][]float32{samples[i:j]})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			streamed = append(streamed, u.Interval)
		}
	}
	us, _ := seg.Flush()
	for _, u := range us {
		streamed = append(streamed, u.Interval)
	}
	assertPhrases(t, "streaming segmenter", streamed)
}

// Streaming state: scoring in pieces gives the same probabilities as scoring at once.
func TestVADStreamingStateCarriesOver(t *testing.T) {
	samples := jfk(t)
	n := len(samples) / VADWindow * VADWindow
	v := loadVAD(t)
	v.Reset()
	whole, err := v.Probs(samples[:n])
	if err != nil {
		t.Fatal(err)
	}
	v.Reset()
	var pieces []float32
	for i := 0; i < n; i += 3 * VADWindow {
		p, err := v.Probs(samples[i:min(i+3*VADWindow, n)])
		if err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, p...)
	}
	if len(pieces) != len(whole) {
		t.Fatalf("%d vs %d probabilities", len(pieces), len(whole))
	}
	for i := range whole {
		if math.Abs(float64(whole[i]-pieces[i])) > 1e-4 {
			t.Fatalf("window %d: %.5f whole vs %.5f in pieces", i, whole[i], pieces[i])
		}
	}
	if _, err := v.Probs(samples[:100]); err == nil {
		t.Error("a partial window was accepted")
	}
}

func loadModel(t testing.TB) *Model {
	t.Helper()
	m, err := LoadModel(sharedFile(t, "models/for-tests-ggml-tiny.en.bin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// The test model has real shapes and no weights: decoding runs the full graph but its
// text is meaningless, so only structure and behaviour are asserted.
func TestDecodeRunsWithSharedModelAndParallelStates(t *testing.T) {
	m := loadModel(t)
	info := m.Info()
	if info.Type != "tiny" || info.AudioCtx != 1500 || info.Multilingual {
		t.Errorf("model info %+v", info)
	}
	samples := jfk(t)[:3*domain.SampleRate]
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		st, err := m.NewState()
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			segs, err := st.Decode(context.Background(), samples, domain.DecodeOptions{Threads: 1, AudioCtx: 256, Prompt: "Glossary: ramipril."})
			for _, s := range segs {
				if s.End < s.Start || s.NoSpeechProb < 0 || s.NoSpeechProb > 1 {
					err = errors.Join(err, errors.New("bad segment"))
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("state %d: %v", i, err)
		}
	}
	if err := m.Close(); err == nil {
		t.Error("model closed while states were open")
	}
}

func TestDecodeAbortsOnCancel(t *testing.T) {
	m := loadModel(t)
	st, err := m.NewState()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	// Beam search over the full window takes seconds on the test model; the abort callback
	// must stop it at the next graph boundary.
	_, err = st.Decode(ctx, jfk(t), domain.DecodeOptions{Threads: 1, BeamSize: 5})
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("want ErrAborted, got %v", err)
	}
	// The state is still usable afterwards.
	if _, err := st.Decode(context.Background(), jfk(t)[:domain.SampleRate*2], domain.DecodeOptions{Threads: 2, AudioCtx: 192}); err != nil {
		t.Fatalf("decode after abort: %v", err)
	}
}

func TestBadModelFilesGiveClearErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.bin")
	os.WriteFile(junk, make([]byte, 4096), 0o600)
	for _, p := range []string{filepath.Join(dir, "missing.bin"), junk, dir} {
		if _, err := LoadModel(p); !errors.Is(err, ErrModel) {
			t.Errorf("LoadModel(%s) = %v, want ErrModel", p, err)
		}
		if _, err := LoadVAD(p, 1); err == nil {
			t.Errorf("LoadVAD(%s) succeeded", p)
		}
	}
	// A whisper model is not a VAD model, nor the other way round (libwhisper itself
	// aborts the process on the latter; our header check must stop it first).
	if _, err := LoadVAD(sharedFile(t, "models/for-tests-ggml-tiny.en.bin"), 1); err == nil {
		t.Error("whisper model accepted as VAD")
	}
	if _, err := LoadModel(sharedFile(t, "models/for-tests-silero-v6.2.0-ggml.bin")); !errors.Is(err, ErrModel) {
		t.Errorf("VAD model as whisper model: %v", err)
	}
	// A real header with a weight type libwhisper cannot map, and a truncated header.
	b, _ := os.ReadFile(sharedFile(t, "models/for-tests-ggml-tiny.en.bin"))
	bad := append([]byte(nil), b...)
	bad[44] = 4 // ftype Q4_1_SOME_F16: no tensor type
	for name, content := range map[string][]byte{"ftype.bin": bad, "short.bin": append(b[:20:20], make([]byte, 2000)...)} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o600)
		if _, err := LoadModel(p); !errors.Is(err, ErrModel) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// One window decoded as a single segment is split at its timestamp tokens, and the audio
// left after the last timestamp is decoded again as a window of its own only when a second
// or more of it is left: libwhisper's own seek would decode a 100–150 ms remainder, and
// aligning a segment decoded there (DTW) aborts the process.
func TestSplitWindowNeverLeavesAShortWindow(t *testing.T) {
	word := func(s string) windowToken {
		return windowToken{tok: domain.DecodedToken{Text: s, At: -1}, noSpeech: 0.1}
	}
	stamp := func(at float64) windowToken { return windowToken{stamp: true, at: at} }
	cases := []struct {
		name    string
		toks    []windowToken
		seconds float64
		texts   []string
		used    float64
	}{
		{"closed 0.12 s before the end: nothing is left to decode", []windowToken{stamp(0), word(" Ask"), word(" not."), stamp(2), stamp(2), word(" What"), stamp(9.88)}, 10,
			[]string{" Ask not.", " What"}, 10},
		{"words after the last timestamp, 0.12 s left: kept, to the window's end", []windowToken{stamp(0), word(" Ask"), stamp(9.88), word(" not")}, 10,
			[]string{" Ask", " not"}, 10},
		{"words after the last timestamp, 4 s left: decoded again from it", []windowToken{stamp(0), word(" Ask"), stamp(6), word(" not")}, 10,
			[]string{" Ask"}, 6},
		{"the decoder stopped with 4 s left: decoded again from its last timestamp", []windowToken{stamp(0), word(" Ask"), stamp(6)}, 10,
			[]string{" Ask"}, 6},
		{"no timestamps: one segment, the whole window", []windowToken{word(" Ask"), word(" not")}, 10,
			[]string{" Ask not"}, 10},
		{"a last timestamp too near the start to decode again from", []windowToken{stamp(0), word(" Ask"), stamp(0.2), word(" not")}, 10,
			[]string{" Ask", " not"}, 10},
	}
	for _, c := range cases {
		segs, used := splitWindow(c.toks, c.seconds, false)
		var texts []string
		for _, s := range segs {
			texts = append(texts, s.Text)
			if s.End < s.Start || s.End > c.seconds || len(s.Tokens) == 0 || s.NoSpeechProb != 0.1 {
				t.Errorf("%s: bad segment %+v", c.name, s)
			}
		}
		if fmt.Sprint(texts) != fmt.Sprint(c.texts) || used != c.used {
			t.Errorf("%s: segments %q, used %.2f s; want %q, %.2f s", c.name, texts, used, c.texts, c.used)
		}
		if left := c.seconds - used; left > 0 && left < minRedecode {
			t.Errorf("%s: %.2f s left to decode as a window of its own", c.name, left)
		}
		// One window asked for: every word kept, nothing decoded again.
		segs, used = splitWindow(c.toks, c.seconds, true)
		words := 0
		for _, s := range segs {
			words += len(s.Tokens)
		}
		if want := countWords(c.toks); used != c.seconds || words != want {
			t.Errorf("%s, one window: %d of %d words kept, used %.2f s", c.name, words, want, used)
		}
	}
}

func countWords(toks []windowToken) (n int) {
	for _, t := range toks {
		if !t.stamp {
			n++
		}
	}
	return n
}

// With real tiny.en and DTW alignment, audio longer than one window is decoded window by
// window: jfk.wav three times over (36 s) comes out three times, each word aligned inside
// the audio and in order.
func TestDTWDecodeCoversAudioLongerThanAWindow(t *testing.T) {
	m, err := LoadModelWith(testmodels.Real(t, "tiny.en"), ModelOptions{DTW: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, err := m.NewState()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	one := jfk(t)
	var samples []float32
	for range 3 {
		samples = append(samples, one...)
		samples = append(samples, make([]float32, domain.SampleRate)...)
	}
	segs, err := st.Decode(context.Background(), samples, domain.DecodeOptions{Threads: 2, TokenTimestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	last := 0.0
	for _, s := range segs {
		text.WriteString(s.Text)
		for _, tk := range s.Tokens {
			if tk.At < last-0.5 || tk.At > float64(len(samples))/domain.SampleRate {
				t.Errorf("token %q aligned at %.2f s (the one before at %.2f s)", tk.Text, tk.At, last)
			}
			last = max(last, tk.At)
		}
	}
	got := strings.ToLower(text.String())
	if n := strings.Count(got, "fellow americans"); n != 3 {
		t.Errorf("%d × \"fellow Americans\" in %q, want 3", n, got)
	}
	if n := strings.Count(got, "for your country"); n != 3 {
		t.Errorf("%d × \"for your country\" in %q, want 3", n, got)
	}
}
