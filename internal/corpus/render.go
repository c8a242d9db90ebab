package corpus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"scribe/internal/audio"
	"scribe/internal/domain"
	"scribe/internal/dsp"
)

// RenderOptions controls how a consultation is turned into audio.
type RenderOptions struct {
	OutDir     string    // where the WAV and JSON files go (created if missing)
	MaxSeconds float64   // render only this much of the start of the consultation; 0 = all
	NoiseKind  string    // "", "none", "white" or "pink"
	SNRdB      float64   // speech-to-noise ratio over speech, when NoiseKind is white or pink
	Voices     [2]string // espeak-ng voices for clinician and patient; empty = DefaultVoices
	Jobs       int       // espeak-ng processes run at once; 0 = 2
	Espeak     string    // espeak-ng executable; empty = "espeak-ng" from PATH
	Python     string    // room renders: python3 with pyroomacoustics; empty = "python3" from PATH
}

// DefaultVoices are two clearly different British English voices: a male Received
// Pronunciation clinician and a female Scottish patient.
var DefaultVoices = [2]string{"en-gb-x-rp+m3", "en-gb-scotland+f3"}

// TruthUtterance is where one utterance's speech really is in the rendered audio.
type TruthUtterance struct {
	Speaker   domain.Speaker `json:"speaker"`
	Start     float64        `json:"start"` // first audible sample, seconds
	End       float64        `json:"end"`   // just after the last audible sample, seconds
	Text      string         `json:"text"`
	OrigStart float64        `json:"orig_start"` // the interval in the PriMock57 transcript
	OrigEnd   float64        `json:"orig_end"`
	SpeedWPM  int            `json:"speed_wpm"` // espeak-ng speed used to fit the interval
}

// Truth is the ground truth of a rendered consultation.
type Truth struct {
	ID         string           `json:"id"`
	Duration   float64          `json:"duration"` // seconds of audio in the files
	SampleRate int              `json:"sample_rate"`
	Channels   []domain.Speaker `json:"channels"` // speaker on each channel of the stereo file
	Noise      string           `json:"noise"`
	SNRdB      float64          `json:"snr_db,omitempty"`
	Voices     [2]string        `json:"voices"`
	RenderKey  string           `json:"render_key"` // hash of inputs and options, for the cache
	// Room is set for a room render (RenderRoom): the simulated room and the microphone
	// array whose capsules are the channels of the .array.wav file.
	Room       *RoomInfo        `json:"room,omitempty"`
	Utterances []TruthUtterance `json:"utterances"`
}

// Rendered names a rendered consultation's files and carries its ground truth. A dry
// render has StereoPath and MonoPath, a room render ArrayPath.
type Rendered struct {
	StereoPath string // 16 kHz, clinician on channel 0, patient on channel 1
	MonoPath   string // 16 kHz, both speakers mixed
	ArrayPath  string // 16 kHz, one channel per capsule of the array on the desk
	TruthPath  string // JSON ground truth
	Truth      *Truth
	Cached     bool // true when the files were already up to date and nothing was rendered
}

const (
	// renderVersion is part of the cache key: bump it when the rendering changes.
	renderVersion = "corpus-render-2"
	baseSpeedWPM  = 175 // espeak-ng's default speaking rate
	// maxSpeedWPM is as fast as we push espeak-ng to fit an interval: much faster and
	// whisper stops understanding it, which would test the wrong thing.
	maxSpeedWPM = 300
	// minGap separates a run-on utterance from the same speaker's next one.
	minGap = 0.2
	// silenceLevel is the amplitude under which espeak-ng's output counts as silence when
	// trimming (about −54 dBFS); espeak-ng pads with exact zeros, so any low level works.
	silenceLevel = 0.002
	// tailPad is silence kept after the last utterance of a full-length render.
	tailPad = 0.5
)

// ErrNoEspeak is wrapped when the espeak-ng executable cannot be run.
var ErrNoEspeak = errors.New("espeak-ng not available")

func (o *RenderOptions) normalise() error {
	if o.OutDir == "" {
		return errors.New("render: no output directory")
	}
	if o.MaxSeconds < 0 || math.IsNaN(o.MaxSeconds) || math.IsInf(o.MaxSeconds, 0) {
		return fmt.Errorf("render: max seconds %g must be a finite number ≥ 0", o.MaxSeconds)
	}
	switch o.NoiseKind {
	case "", "none":
		o.NoiseKind, o.SNRdB = "none", 0
	case "white", "pink":
		if math.IsNaN(o.SNRdB) || math.IsInf(o.SNRdB, 0) {
			return fmt.Errorf("render: SNR %g dB is not a finite number", o.SNRdB)
		}
	default:
		return fmt.Errorf("render: noise %q: want white, pink or none", o.NoiseKind)
	}
	for i := range o.Voices {
		if o.Voices[i] == "" {
			o.Voices[i] = DefaultVoices[i]
		}
	}
	if o.Jobs <= 0 {
		o.Jobs = 2
	}
	if o.Espeak == "" {
		o.Espeak = "espeak-ng"
	}
	return nil
}

// baseName is the file name stem for a consultation rendered with these options, so
// different excerpts and noise settings of one consultation can sit side by side.
func (o RenderOptions) baseName(id string) string {
	name := id
	if o.MaxSeconds > 0 {
		name += "-" + strconv.FormatFloat(o.MaxSeconds, 'f', -1, 64) + "s"
	}
	if o.NoiseKind != "none" {
		name += "-" + o.NoiseKind + strconv.FormatFloat(o.SNRdB, 'f', -1, 64) + "dB"
	}
	if o.Voices != DefaultVoices {
		name += "-" + strings.NewReplacer("+", "", "-", "").Replace(o.Voices[0]+"."+o.Voices[1])
	}
	return name
}

// Render speaks consultation id of the PriMock57 corpus at corpusDir with espeak-ng and
// writes <OutDir>/<name>.stereo.wav, .mono.wav and .truth.json, where name is the id plus
// the excerpt length and noise setting. Each utterance starts at its transcript time;
// speech longer than its interval is sped up (up to 300 words a minute), and if it still
// runs on, the same speaker's following utterances move later so one speaker never
// overlaps themself. The truth records where the audible speech actually is. When the
// files exist and were made from the same transcripts with the same options and espeak-ng
// version, they are returned as they are.
func Render(ctx context.Context, corpusDir, id string, opt RenderOptions) (*Rendered, error) {
	if err := opt.normalise(); err != nil {
		return nil, err
	}
	doctorPath, patientPath, err := transcriptPaths(corpusDir, id)
	if err != nil {
		return nil, err
	}
	version, err := espeakVersion(ctx, opt.Espeak)
	if err != nil {
		return nil, err
	}
	key, err := renderKey(opt, version, doctorPath, patientPath)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", id, err)
	}
	base := filepath.Join(opt.OutDir, opt.baseName(id))
	out := &Rendered{StereoPath: base + ".stereo.wav", MonoPath: base + ".mono.wav", TruthPath: base + ".truth.json"}
	if truth, ok := cached(out, key); ok {
		out.Truth, out.Cached = truth, true
		return out, nil
	}

	c, err := LoadConsultation(corpusDir, id)
	if err != nil {
		return nil, err
	}
	utts := c.Utterances
	if opt.MaxSeconds > 0 {
		utts = nil
		for _, u := range c.Utterances {
			if u.Start < opt.MaxSeconds {
				utts = append(utts, u)
			}
		}
	}
	speech, err := synthesizeAll(ctx, utts, opt)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", id, err)
	}
	truth, channels := place(c, speech, opt.MaxSeconds)
	truth.Noise, truth.SNRdB, truth.Voices, truth.RenderKey = opt.NoiseKind, opt.SNRdB, opt.Voices, key
	mono := mixChannels(channels)
	if opt.NoiseKind != "none" {
		addNoise(id, opt, truth, channels, mono)
	}

	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("render %s: %w", id, err)
	}
	// The truth file is written last: its key marks the set complete for the cache.
	if err := writeWAVAtomic(out.StereoPath, channels); err != nil {
		return nil, fmt.Errorf("render %s: %w", id, err)
	}
	if err := writeWAVAtomic(out.MonoPath, [][]float32{mono}); err != nil {
		return nil, fmt.Errorf("render %s: %w", id, err)
	}
	if err := writeJSONAtomic(out.TruthPath, truth); err != nil {
		return nil, fmt.Errorf("render %s: %w", id, err)
	}
	out.Truth = truth
	return out, nil
}

// spoken is one utterance as synthesised: its audible samples at 16 kHz.
type spoken struct {
	Utterance
	samples []float32
	speed   int
}

// synthesizeAll runs espeak-ng for every utterance, opt.Jobs at a time.
func synthesizeAll(ctx context.Context, utts []Utterance, opt RenderOptions) ([]spoken, error) {
	tmp, err := os.MkdirTemp("", "scribe-espeak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]spoken, len(utts))
	work := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := range opt.Jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wavPath := filepath.Join(tmp, fmt.Sprintf("job%d.wav", w))
			for i := range work {
				voice := opt.Voices[0]
				if utts[i].Speaker == domain.SpeakerPatient {
					voice = opt.Voices[1]
				}
				s, err := fitUtterance(ctx, opt.Espeak, voice, wavPath, utts[i])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				out[i] = s
			}
		}()
	}
feed:
	for i := range utts {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// fitUtterance speaks u at the normal rate and, when that is longer than the
// transcript's interval, once more at the rate that should fit.
func fitUtterance(ctx context.Context, espeak, voice, wavPath string, u Utterance) (spoken, error) {
	samples, err := speak(ctx, espeak, voice, baseSpeedWPM, u.Text, wavPath)
	if err != nil {
		return spoken{}, err
	}
	s := spoken{Utterance: u, samples: samples, speed: baseSpeedWPM}
	avail := u.End - u.Start
	got := float64(len(samples)) / domain.SampleRate
	if avail > 0 && got > avail {
		// Speech time scales roughly inversely with the rate; aim 3 % short for the part
		// that does not (pauses at punctuation).
		speed := min(maxSpeedWPM, int(math.Ceil(baseSpeedWPM*got/avail*1.03)))
		if speed > baseSpeedWPM {
			faster, err := speak(ctx, espeak, voice, speed, u.Text, wavPath)
			if err != nil {
				return spoken{}, err
			}
			s.samples, s.speed = faster, speed
		}
	}
	return s, nil
}

// speak runs espeak-ng once and returns the audible part of its speech at 16 kHz mono.
// The text goes in on stdin so that nothing in it can be taken for an option. -D fixes
// espeak-ng's random seed, which it otherwise takes from the clock: voice variants with
// breath noise (the patient's +f3) came out different every second, so each render, and
// each CI run, tested other audio.
func speak(ctx context.Context, espeak, voice string, speed int, text, wavPath string) ([]float32, error) {
	cmd := exec.CommandContext(ctx, espeak, "-D", "-v", voice, "-s", strconv.Itoa(speed), "-b", "1", "-w", wavPath, "--stdin")
	cmd.Stdin = strings.NewReader(text)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrNoEspeak, err)
		}
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "invalid option") {
			msg += " (espeak-ng 1.52 or later is needed: -D makes its speech the same every time)"
		}
		return nil, fmt.Errorf("espeak-ng -v %s: %w: %s", voice, err, msg)
	}
	clip, err := audio.ReadFile(wavPath)
	if err != nil {
		return nil, fmt.Errorf("read espeak-ng output: %w", err)
	}
	if len(clip.Channels) == 0 {
		return nil, nil
	}
	pcm := audio.Resample(clip.Channels[0], clip.Rate, domain.SampleRate)
	if pcm == nil && clip.Frames() > 0 {
		return nil, fmt.Errorf("espeak-ng wrote audio at %d Hz, which cannot be resampled", clip.Rate)
	}
	return trimSilence(pcm), nil
}

// trimSilence drops leading and trailing samples below silenceLevel.
func trimSilence(x []float32) []float32 {
	lo, hi := 0, len(x)
	for lo < hi && math.Abs(float64(x[lo])) < silenceLevel {
		lo++
	}
	for hi > lo && math.Abs(float64(x[hi-1])) < silenceLevel {
		hi--
	}
	return x[lo:hi]
}

// place lays the synthesised utterances on two channels at their transcript times,
// pushing a speaker's utterance later when their previous one ran on, and drops those
// that would not end within maxSeconds (when set), so the truth never describes speech
// that was cut. It returns the truth (without options filled in) and the two channels.
func place(c *Consultation, speech []spoken, maxSeconds float64) (*Truth, [][]float32) {
	const rate = domain.SampleRate
	type placed struct {
		spoken
		at int // first sample
	}
	var laid []placed
	nextFree := map[domain.Speaker]int{} // first sample a speaker may use again
	lastEnd := 0
	for _, s := range speech {
		if len(s.samples) == 0 {
			continue
		}
		at := max(int(math.Round(s.Start*rate)), nextFree[s.Speaker])
		end := at + len(s.samples)
		if maxSeconds > 0 && float64(end) > maxSeconds*rate {
			// Nothing later of this speaker can fit either: it would start after this end.
			nextFree[s.Speaker] = math.MaxInt / 2
			continue
		}
		nextFree[s.Speaker] = end + int(minGap*rate)
		lastEnd = max(lastEnd, end)
		laid = append(laid, placed{s, at})
	}

	duration := max(c.Duration, float64(lastEnd)/rate+tailPad)
	if maxSeconds > 0 {
		duration = min(duration, maxSeconds)
	}
	n := int(math.Round(duration * rate))
	n = max(n, lastEnd)
	channels := [][]float32{make([]float32, n), make([]float32, n)}
	truth := &Truth{ID: c.ID, Duration: float64(n) / rate, SampleRate: rate,
		Channels: []domain.Speaker{domain.SpeakerClinician, domain.SpeakerPatient}, Utterances: []TruthUtterance{}}
	for _, p := range laid {
		ch := channels[0]
		if p.Speaker == domain.SpeakerPatient {
			ch = channels[1]
		}
		copy(ch[p.at:], p.samples)
		truth.Utterances = append(truth.Utterances, TruthUtterance{
			Speaker: p.Speaker, Start: float64(p.at) / rate, End: float64(p.at+len(p.samples)) / rate,
			Text: p.Text, OrigStart: p.Start, OrigEnd: p.End, SpeedWPM: p.speed,
		})
	}
	sort.SliceStable(truth.Utterances, func(i, j int) bool { return truth.Utterances[i].Start < truth.Utterances[j].Start })
	return truth, channels
}

// mixChannels sums the channels: each holds one person's close-talk track, so the sum is
// what one microphone between them would hear (clipped only when writing, on overlaps).
func mixChannels(chans [][]float32) []float32 {
	out := make([]float32, len(chans[0]))
	for _, ch := range chans {
		for i, v := range ch {
			out[i] += v
		}
	}
	return out
}

// addNoise adds independent noise of one level to each channel and to the mix. The level
// is set from the mix's speech power over all utterances, so the stated SNR holds for the
// mix and, as each speaker's track carries that speaker at the same level, for each
// channel over its own speaker's utterances.
func addNoise(id string, opt RenderOptions, truth *Truth, channels [][]float32, mono []float32) {
	var ivs []domain.Interval
	for _, u := range truth.Utterances {
		ivs = append(ivs, domain.Interval{Start: u.Start, End: u.End})
	}
	var ps float64
	var count int
	for _, iv := range ivs {
		lo := int(math.Round(iv.Start * domain.SampleRate))
		hi := min(len(mono), int(math.Round(iv.End*domain.SampleRate)))
		for _, v := range mono[lo:hi] {
			ps += float64(v) * float64(v)
			count++
		}
	}
	if count == 0 {
		return
	}
	ps /= float64(count)
	targetRMS := math.Sqrt(ps / math.Pow(10, opt.SNRdB/10))
	h := fnv.New64a()
	h.Write([]byte(id))
	seed := int64(h.Sum64() >> 1)
	for k, dst := range [][]float32{channels[0], channels[1], mono} {
		var noise []float32
		if opt.NoiseKind == "white" {
			noise = dsp.WhiteNoise(len(dst), seed+int64(k))
		} else {
			noise = dsp.PinkNoise(len(dst), seed+int64(k))
		}
		var pn float64
		for _, v := range noise {
			pn += float64(v) * float64(v)
		}
		if pn == 0 {
			continue
		}
		scale := targetRMS / math.Sqrt(pn/float64(len(noise)))
		for i, v := range noise {
			dst[i] += float32(scale * float64(v))
		}
	}
}

// espeakVersion runs `espeak-ng --version`; the answer goes into the cache key, and a
// missing executable is reported here, before any work.
func espeakVersion(ctx context.Context, espeak string) (string, error) {
	out, err := exec.CommandContext(ctx, espeak, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s --version: %w (install the espeak-ng package)", ErrNoEspeak, espeak, err)
	}
	// Drop the data path, which says where espeak-ng is installed, not what it says.
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), "Data at:")
	return strings.TrimSpace(v), nil
}

func renderKey(opt RenderOptions, espeakVersion string, transcripts ...string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", renderVersion, espeakVersion)
	params, _ := json.Marshal(struct {
		MaxSeconds float64
		Noise      string
		SNR        float64
		Voices     [2]string
	}{opt.MaxSeconds, opt.NoiseKind, opt.SNRdB, opt.Voices})
	h.Write(params)
	for _, p := range transcripts {
		b, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("%w: %w", ErrNotFound, err)
			}
			return "", err
		}
		sum := sha256.Sum256(b)
		h.Write(sum[:])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cached returns the stored truth when the truth and every audio file of r exist and the
// truth's key matches.
func cached(r *Rendered, key string) (*Truth, bool) {
	b, err := os.ReadFile(r.TruthPath)
	if err != nil {
		return nil, false
	}
	var t Truth
	if json.Unmarshal(b, &t) != nil || t.RenderKey != key {
		return nil, false
	}
	for _, p := range []string{r.StereoPath, r.MonoPath, r.ArrayPath} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			return nil, false
		}
	}
	return &t, true
}

func writeWAVAtomic(path string, channels [][]float32) error {
	tmp := path + ".tmp"
	if err := audio.WriteWAVFile(tmp, domain.SampleRate, channels); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
