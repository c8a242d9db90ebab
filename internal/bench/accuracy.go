package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"scribe/internal/app"
	"scribe/internal/audio"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/textdiff"
)

// FileAccuracy scores one recording's transcript against its ground truth.
//
// WER uses textdiff's normaliser (case, punctuation, numbers to digits, UK/US spelling;
// see the textdiff package documentation) over the whole transcript. Speaker accuracy is
// the share of segment time, among segments attributed to clinician or patient, whose
// speaker matches the truth utterance it overlaps most. VAD precision is the share of
// detected speech that is truly speech; recall the share of true speech detected.
// whisper-cli reports neither speakers nor speech, so those are absent from its rows.
type FileAccuracy struct {
	File      string `json:"file"`
	Source    string `json:"source"`    // "rendered" (truth JSON) or "primock57" (TextGrids)
	Mode      string `json:"mode"`      // file, live or whisper-cli
	Channels  string `json:"channels"`  // stereo (a microphone each) or mono (the mix)
	Condition string `json:"condition"` // clean, or the background noise and its SNR
	Voices    string `json:"voices"`    // espeak-ng voices, clinician first

	AudioSeconds    float64         `json:"audio_seconds"`
	WER             textdiff.Result `json:"-"`
	WERValue        float64         `json:"wer"`
	RefWords        int             `json:"ref_words"`
	HypWords        int             `json:"hyp_words"`
	Errors          int             `json:"errors"` // substitutions + deletions + insertions
	SpeakerAccuracy float64         `json:"speaker_accuracy"`
	SpeakerSeconds  float64         `json:"speaker_scored_seconds"`
	VADPrecision    float64         `json:"vad_precision"`
	VADRecall       float64         `json:"vad_recall"`
	DecodeS         float64         `json:"decode_s"`
	TotalS          float64         `json:"total_s"`
	// Seconds of speech found by both the VAD and the truth, by the VAD, by the truth
	// (what the pooled precision and recall are made of).
	VADHitS float64 `json:"vad_hit_s,omitempty"`
	VADHypS float64 `json:"vad_hyp_s,omitempty"`
	VADRefS float64 `json:"vad_ref_s,omitempty"`
}

// PoolAccuracy pools the files of one mode, channel layout, condition and voice pair.
type PoolAccuracy struct {
	Mode         string  `json:"mode"`
	Channels     string  `json:"channels"`
	Condition    string  `json:"condition"`
	Voices       string  `json:"voices"`
	Files        int     `json:"files"`
	AudioSeconds float64 `json:"audio_seconds"`
	// WallS is the time the mode took over all files; RTF that over the audio time.
	WallS           float64  `json:"wall_s"`
	RTF             float64  `json:"rtf"`
	WER             float64  `json:"wer"`
	RefWords        int      `json:"ref_words"`
	Errors          int      `json:"errors"`
	SpeakerAccuracy *float64 `json:"speaker_accuracy,omitempty"` // stereo only
	VADPrecision    *float64 `json:"vad_precision,omitempty"`    // scribe only
	VADRecall       *float64 `json:"vad_recall,omitempty"`
}

// AccuracyReport is the per-file and pooled result. The top-level pooled figures are
// scribe's file mode over every file.
type AccuracyReport struct {
	Model           string         `json:"model"`
	TestModel       bool           `json:"test_model"`
	Note            string         `json:"note,omitempty"`
	Corpus          string         `json:"corpus"`
	Settings        string         `json:"settings"` // clean-up, window, encoder context, decoding
	Measured        string         `json:"measured"` // date (UTC)
	WhisperCLIArgs  string         `json:"whisper_cli_args,omitempty"`
	LivePace        float64        `json:"live_pace,omitempty"`
	LoadAverage     [2]float64     `json:"load_average_1m"` // at start and end: other work skews the times
	Files           []FileAccuracy `json:"files"`
	Pools           []PoolAccuracy `json:"pools"`
	WER             float64        `json:"wer_pooled"`
	SpeakerAccuracy float64        `json:"speaker_accuracy_pooled"`
	VADPrecision    float64        `json:"vad_precision_pooled"`
	VADRecall       float64        `json:"vad_recall_pooled"`
}

// The ways a recording is transcribed.
const (
	ModeFile       = "file"        // scribe transcribe: packed windows (app.Runtime.TranscribeClip)
	ModeLive       = "live"        // the live pipeline, the recording replayed (app.Runtime.ReplayClip)
	ModeWhisperCLI = "whisper-cli" // whisper.cpp's own CLI on the same model and audio
)

// AccuracyOptions say how each recording is heard and transcribed.
type AccuracyOptions struct {
	Modes    []string // ModeFile (default), ModeLive, ModeWhisperCLI
	Channels []string // "stereo" (default) and/or "mono"
	LivePace float64  // live replay speed, × real time (0: as fast as the pipeline takes it)
	CLI      CLIRun   // for ModeWhisperCLI
}

// IsTestModel tells whisper.cpp's weightless test models by their file name.
func IsTestModel(path string) bool { return strings.HasPrefix(filepath.Base(path), "for-tests-") }

// truthSource is one recording to score: its audio and ground truth.
type truthSource struct {
	name, kind        string
	stereo, mono      string   // rendered WAV files
	channels          []string // separate per-speaker files (PriMock57 originals)
	condition, voices string
	truth             []corpus.TruthUtterance
}

// findAccuracySources reads rendered consultations (*.truth.json with .stereo.wav and
// .mono.wav) in dir and, when dir is a PriMock57 tree with audio, the original recordings
// with their TextGrid transcripts (audio/<id>_doctor.wav and _patient.wav).
func findAccuracySources(dir string) ([]truthSource, error) {
	var out []truthSource
	paths, err := FindRendered(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("bench accuracy: %w", err)
		}
		var t corpus.Truth
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("bench accuracy: %s: %w", p, err)
		}
		stem := strings.TrimSuffix(p, ".truth.json")
		out = append(out, truthSource{name: filepath.Base(stem), kind: "rendered", stereo: stem + ".stereo.wav", mono: stem + ".mono.wav",
			condition: NoiseCondition(t.Noise, t.SNRdB), voices: t.Voices[0] + "," + t.Voices[1], truth: t.Utterances})
	}
	if ids, err := corpus.ListConsultations(dir); err == nil {
		for _, id := range ids {
			doc := filepath.Join(dir, "audio", id+"_doctor.wav")
			pat := filepath.Join(dir, "audio", id+"_patient.wav")
			if _, err := os.Stat(doc); err != nil {
				continue
			}
			if _, err := os.Stat(pat); err != nil {
				continue
			}
			c, err := corpus.LoadConsultation(dir, id)
			if err != nil {
				return nil, err
			}
			src := truthSource{name: id, kind: "primock57", channels: []string{doc, pat}, condition: "recorded", voices: "actors"}
			for _, u := range c.Utterances {
				src.truth = append(src.truth, corpus.TruthUtterance{Speaker: u.Speaker, Start: u.Start, End: u.End, Text: u.Text})
			}
			out = append(out, src)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench accuracy: no *.truth.json (rendered) or PriMock57 audio+TextGrids in %s", dir)
	}
	return out, nil
}

// NoiseCondition names a render's background: "clean" or e.g. "pink 10 dB".
func NoiseCondition(kind string, snr float64) string {
	if kind == "" || kind == "none" {
		return "clean"
	}
	return fmt.Sprintf("%s %g dB", kind, snr)
}

// loadSource reads a source's audio as one clip: stereo (a channel per speaker) or mono.
func loadSource(s truthSource, channels string) (*audio.Clip, error) {
	if s.stereo != "" {
		if channels == "mono" {
			return audio.ReadFile(s.mono)
		}
		return audio.ReadFile(s.stereo)
	}
	var chans [][]float32
	for _, p := range s.channels {
		c, err := audio.ReadFile(p)
		if err != nil {
			return nil, err
		}
		c16 := c.To16k()
		chans = append(chans, domain.MixDown(c16.Channels))
	}
	n := len(chans[0])
	for _, c := range chans {
		n = min(n, len(c))
	}
	for i := range chans {
		chans[i] = chans[i][:n]
	}
	if channels == "mono" {
		chans = [][]float32{domain.MixDown(chans)}
	}
	return &audio.Clip{Rate: domain.SampleRate, Channels: chans}, nil
}

// monoFile is a WAV file of the source's mono mix, for whisper-cli (which mixes stereo
// down itself), and a function removing it if it had to be written.
func monoFile(s truthSource) (string, func(), error) {
	if s.mono != "" {
		return s.mono, func() {}, nil
	}
	clip, err := loadSource(s, "mono")
	if err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp("", "scribe-acc-*.wav")
	if err != nil {
		return "", nil, err
	}
	f.Close()
	if err := audio.WriteWAVFile(f.Name(), clip.Rate, clip.Channels); err != nil {
		os.Remove(f.Name())
		return "", nil, err
	}
	return f.Name(), func() { os.Remove(f.Name()) }, nil
}

// RunAccuracy transcribes every recording in dir in each mode and channel layout of opt
// and scores it. whisper-cli hears the mono mix once per recording (it mixes stereo
// down itself).
func RunAccuracy(ctx context.Context, rt *app.Runtime, dir string, opt AccuracyOptions) (*AccuracyReport, error) {
	if len(opt.Modes) == 0 {
		opt.Modes = []string{ModeFile}
	}
	if len(opt.Channels) == 0 {
		opt.Channels = []string{"stereo"}
	}
	for _, m := range opt.Modes {
		if m != ModeFile && m != ModeLive && m != ModeWhisperCLI {
			return nil, fmt.Errorf("bench accuracy: unknown mode %q (file, live, whisper-cli)", m)
		}
	}
	for _, c := range opt.Channels {
		if c != "stereo" && c != "mono" {
			return nil, fmt.Errorf("bench accuracy: unknown channel layout %q (stereo, mono)", c)
		}
	}
	sources, err := findAccuracySources(dir)
	if err != nil {
		return nil, err
	}
	rep := &AccuracyReport{Model: rt.Model.Path(), TestModel: IsTestModel(rt.Model.Path()), Corpus: dir, Settings: settings(rt),
		Measured: time.Now().UTC().Format("2006-01-02")}
	rep.LoadAverage[0] = LoadAverage()
	if rep.TestModel {
		rep.Note = "test model: WER meaningless (weightless model decodes no words); timings, speaker and VAD figures are real"
	}
	if slices.Contains(opt.Modes, ModeWhisperCLI) {
		rep.WhisperCLIArgs = strings.Join(opt.CLI.Args, " ")
	}
	if slices.Contains(opt.Modes, ModeLive) {
		rep.LivePace = opt.LivePace
	}
	for _, s := range sources {
		for _, mode := range opt.Modes {
			for _, ch := range opt.Channels {
				if mode == ModeWhisperCLI && ch != "mono" && slices.Contains(opt.Channels, "mono") {
					continue // the same audio as its mono row
				}
				tr, err := transcribeAs(ctx, rt, s, mode, ch, opt)
				if err != nil {
					return nil, fmt.Errorf("bench accuracy: %s (%s, %s): %w", s.name, mode, ch, err)
				}
				fa := Score(s.truth, tr)
				fa.File, fa.Source, fa.Mode, fa.Channels, fa.Condition, fa.Voices = s.name, s.kind, mode, ch, s.condition, s.voices
				if mode == ModeWhisperCLI {
					fa.Channels = "mono"
				}
				rep.Files = append(rep.Files, fa)
			}
		}
	}
	rep.LoadAverage[1] = LoadAverage()
	rep.pool()
	return rep, nil
}

// pool fills the pooled figures from the files.
func (r *AccuracyReport) pool() {
	r.Pools = poolAccuracy(r.Files)
	var file []FileAccuracy
	for _, f := range r.Files {
		if f.Mode == ModeFile {
			file = append(file, f)
		}
	}
	if p := pool(file); p != nil {
		r.WER = p.WER
		r.SpeakerAccuracy, r.VADPrecision, r.VADRecall = deref(p.SpeakerAccuracy), deref(p.VADPrecision), deref(p.VADRecall)
	}
}

// JoinAccuracy joins reports of the same model measured in parts (say scribe's modes
// and whisper-cli's, run at different times) into one, pooled afresh. Settings, notes
// and load averages are kept from each part.
func JoinAccuracy(parts []*AccuracyReport) (*AccuracyReport, error) {
	if len(parts) == 0 {
		return nil, errors.New("bench accuracy: nothing to join")
	}
	out := *parts[0]
	out.Files = nil
	var settings, cli []string
	for _, p := range parts {
		if p.Model != out.Model {
			return nil, fmt.Errorf("bench accuracy: cannot join reports of %s and %s", out.Model, p.Model)
		}
		for _, f := range p.Files {
			if f.Errors == 0 && f.WERValue > 0 { // a report from before the count was kept
				f.Errors = int(math.Round(f.WERValue * float64(f.RefWords)))
			}
			out.Files = append(out.Files, f)
		}
		if !slices.Contains(settings, p.Settings) {
			settings = append(settings, p.Settings)
		}
		if p.WhisperCLIArgs != "" {
			cli = append(cli, p.WhisperCLIArgs)
		}
		out.LivePace = max(out.LivePace, p.LivePace)
		out.LoadAverage[0], out.LoadAverage[1] = max(out.LoadAverage[0], p.LoadAverage[0]), max(out.LoadAverage[1], p.LoadAverage[1])
		out.Measured = max(out.Measured, p.Measured)
	}
	out.Settings, out.WhisperCLIArgs = strings.Join(settings, "; "), strings.Join(cli, "; ")
	out.pool()
	return &out, nil
}

// transcribeAs transcribes one source in one mode and channel layout.
func transcribeAs(ctx context.Context, rt *app.Runtime, s truthSource, mode, channels string, opt AccuracyOptions) (*domain.Transcript, error) {
	if mode == ModeWhisperCLI {
		path, done, err := monoFile(s)
		if err != nil {
			return nil, err
		}
		defer done()
		return opt.CLI.Transcribe(ctx, path)
	}
	clip, err := loadSource(s, channels)
	if err != nil {
		return nil, err
	}
	if mode == ModeLive {
		return rt.ReplayClip(ctx, clip, opt.LivePace)
	}
	return rt.TranscribeClip(ctx, clip)
}

// settings describes the runtime's choices that move the figures.
func settings(rt *app.Runtime) string {
	c := rt.Config
	on := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("high-pass %s, noise suppression %s, AGC %s, file window %gs, shrink audio ctx %s, beam %d, temperature inc %g, threads %d",
		on(c.Audio.HighPass), on(c.Audio.NoiseSuppression), on(c.Audio.AGC), c.Transcription.FileWindow,
		on(c.Transcription.ShrinkAudioCtx), c.Transcription.BeamSize, c.Transcription.TemperatureInc, c.Models.Threads)
}

// poolAccuracy pools files by mode, channels, condition and voices, in the order first seen.
func poolAccuracy(files []FileAccuracy) []PoolAccuracy {
	type key struct{ mode, ch, cond, voices string }
	var order []key
	groups := map[key][]FileAccuracy{}
	for _, f := range files {
		k := key{f.Mode, f.Channels, f.Condition, f.Voices}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], f)
	}
	out := make([]PoolAccuracy, 0, len(order))
	for _, k := range order {
		out = append(out, *pool(groups[k]))
	}
	return out
}

// pool sums files' words, errors, times and speech into one row (nil for none).
func pool(files []FileAccuracy) *PoolAccuracy {
	if len(files) == 0 {
		return nil
	}
	f0 := files[0]
	p := &PoolAccuracy{Mode: f0.Mode, Channels: f0.Channels, Condition: f0.Condition, Voices: f0.Voices, Files: len(files)}
	var spkOK, spkAll, hit, hyp, ref float64
	for _, f := range files {
		// Pooled WER is all errors over all reference words (textdiff.Totals), from the
		// counts, which survive a report read back from JSON.
		p.RefWords += f.RefWords
		p.Errors += f.Errors
		p.AudioSeconds += f.AudioSeconds
		p.WallS += f.TotalS
		spkOK += f.SpeakerAccuracy * f.SpeakerSeconds
		spkAll += f.SpeakerSeconds
		hit, hyp, ref = hit+f.VADHitS, hyp+f.VADHypS, ref+f.VADRefS
	}
	p.WER = float64(p.Errors) / float64(max(p.RefWords, 1))
	p.RTF = ratio(p.WallS, p.AudioSeconds)
	if spkAll > 0 {
		p.SpeakerAccuracy = ptr(spkOK / spkAll)
	}
	if hyp > 0 {
		p.VADPrecision, p.VADRecall = ptr(hit/hyp), ptr(ratio(hit, ref))
	}
	return p
}

func ptr(v float64) *float64 { return &v }

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// Score compares one transcript with its ground truth.
func Score(truth []corpus.TruthUtterance, tr *domain.Transcript) FileAccuracy {
	var ref, hyp []string
	for _, u := range truth {
		ref = append(ref, u.Text)
	}
	for _, s := range tr.Segments {
		if s.Text != "" {
			hyp = append(hyp, s.Text)
		}
	}
	res := textdiff.WER(strings.Join(ref, " "), strings.Join(hyp, " "))
	fa := FileAccuracy{AudioSeconds: tr.AudioSeconds, WER: res, WERValue: res.WER, RefWords: res.RefWords, HypWords: res.HypWords, Errors: res.Errors(),
		DecodeS: tr.Timings.Decode.Seconds(), TotalS: tr.Timings.Total.Seconds()}

	var ok float64
	for _, s := range tr.Segments {
		if s.Speaker != domain.SpeakerClinician && s.Speaker != domain.SpeakerPatient {
			continue
		}
		best, bestOverlap := domain.Speaker(""), 0.0
		for _, u := range truth {
			if o := min(s.End, u.End) - max(s.Start, u.Start); o > bestOverlap {
				best, bestOverlap = u.Speaker, o
			}
		}
		if bestOverlap == 0 {
			continue // no speech there in the truth: a VAD false alarm, scored by precision
		}
		d := s.End - s.Start
		fa.SpeakerSeconds += d
		if best == s.Speaker {
			ok += d
		}
	}
	fa.SpeakerAccuracy = ratio(ok, fa.SpeakerSeconds)

	if tr.Speech != nil { // whisper-cli reports none
		ref2 := mergeIntervals(truthIntervals(truth))
		hyp2 := mergeIntervals(tr.Speech)
		fa.VADHitS, fa.VADHypS, fa.VADRefS = domain.OverlapSeconds(hyp2, ref2), total(hyp2), total(ref2)
		fa.VADPrecision, fa.VADRecall = ratio(fa.VADHitS, fa.VADHypS), ratio(fa.VADHitS, fa.VADRefS)
	}
	return fa
}

// Chart shows WER per condition (noise, channels, voices — one group each, in the
// JSON's order) with one bar per mode: file mode, live, whisper-cli.
func (r *AccuracyReport) Chart() Chart {
	c := Chart{Title: "WER by condition: " + filepath.Base(r.Model), Step: 0.1}
	type key struct{ cond, ch, voices string }
	var order []key
	at := map[key]int{}
	var modes []string
	for _, p := range r.Pools {
		if !slices.Contains(modes, p.Mode) {
			modes = append(modes, p.Mode)
		}
	}
	for _, p := range r.Pools {
		k := key{p.Condition, p.Channels, p.Voices}
		i, ok := at[k]
		if !ok {
			i = len(order)
			at[k] = i
			order = append(order, k)
			c.Groups = append(c.Groups, make([]float64, len(modes)))
			label := p.Condition + " " + p.Channels
			if voices := r.distinctVoices(); voices > 1 {
				label = accentOf(p.Voices)
			}
			c.Labels = append(c.Labels, label)
		}
		c.Groups[i][slices.Index(modes, p.Mode)] = min(p.WER, 2)
	}
	c.Series = modes
	return c
}

// distinctVoices counts the voice pairs among the pools.
func (r *AccuracyReport) distinctVoices() int {
	seen := map[string]bool{}
	for _, p := range r.Pools {
		seen[p.Voices] = true
	}
	return len(seen)
}

// accentOf names a voice pair by its first voice without the variant ("en-gb-scotland").
func accentOf(voices string) string {
	if i := strings.IndexAny(voices, "+,"); i >= 0 {
		return voices[:i]
	}
	return voices
}

func truthIntervals(truth []corpus.TruthUtterance) []domain.Interval {
	out := make([]domain.Interval, 0, len(truth))
	for _, u := range truth {
		out = append(out, domain.Interval{Start: u.Start, End: u.End})
	}
	return out
}

// mergeIntervals sorts and joins overlapping intervals (the two speakers' truth overlaps).
func mergeIntervals(in []domain.Interval) []domain.Interval {
	s := append([]domain.Interval(nil), in...)
	sort.Slice(s, func(i, j int) bool { return s[i].Start < s[j].Start })
	var out []domain.Interval
	for _, iv := range s {
		if iv.End <= iv.Start {
			continue
		}
		if n := len(out); n > 0 && iv.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, iv.End)
			continue
		}
		out = append(out, iv)
	}
	return out
}

func total(ivs []domain.Interval) float64 {
	var s float64
	for _, iv := range ivs {
		s += iv.Duration()
	}
	return s
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}
