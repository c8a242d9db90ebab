package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"scribe/internal/app"
	"scribe/internal/audio"
	"scribe/internal/corpus"
	"scribe/internal/diarize"
	"scribe/internal/domain"
	"scribe/internal/pipeline"
	"scribe/internal/textdiff"
)

// FileAccuracy scores one recording, transcribed one way and heard one way, against its
// ground truth.
//
// WER uses textdiff's normaliser (case, punctuation, numbers to digits, UK/US spelling;
// see the textdiff package documentation) over the whole transcript. Speaker accuracy is
// time-weighted (diarize.Score): over the time in which exactly one person speaks, the
// share of the time given to clinician or patient that went to the right one; the
// unknown share is the share given to neither. It is taken twice: from the transcript's
// segments (what the clinician sees) and from the attribution's own spans. WDER, the
// word-level diarization error of Shafey et al. (2019), is the share of aligned words
// (correct or substituted) whose segment's speaker is not the reference word's (unknown
// counts as wrong). VAD precision is the share of detected speech that is truly speech;
// recall the share of true speech detected. whisper-cli reports neither speakers nor
// speech, so those are absent from its rows.
type FileAccuracy struct {
	File   string `json:"file"`
	Source string `json:"source"` // "rendered" (truth JSON) or "primock57" (TextGrids)
	Mode   string `json:"mode"`   // file, live or whisper-cli
	// Channels is what was heard: stereo (a microphone each), mono (the mix), an array's
	// capsules ("2-capsule array") or one of them ("capsule 0").
	Channels    string  `json:"channels"`
	Microphones string  `json:"microphones,omitempty"` // the attribution's set-up: pair, array or single
	Condition   string  `json:"condition"`             // clean, the background noise and its SNR, the room
	Voices      string  `json:"voices"`                // espeak-ng voices, clinician first
	Cleanup     bool    `json:"cleanup"`               // the clean-up chain was on
	Room        string  `json:"room,omitempty"`
	RT60        float64 `json:"rt60_s,omitempty"` // measured on the simulated room
	Capsules    int     `json:"capsules,omitempty"`

	AudioSeconds float64         `json:"audio_seconds"`
	WER          textdiff.Result `json:"-"`
	WERValue     float64         `json:"wer"`
	RefWords     int             `json:"ref_words"`
	HypWords     int             `json:"hyp_words"`
	Errors       int             `json:"errors"` // substitutions + deletions + insertions

	Speaker             diarize.Accuracy `json:"speaker"`
	SpeakerAccuracy     float64          `json:"speaker_accuracy"`
	SpeakerUnknown      float64          `json:"speaker_unknown_share"`
	SpeakerSeconds      float64          `json:"speaker_scored_seconds"`
	Attribution         diarize.Accuracy `json:"attribution"`
	AttributionAccuracy float64          `json:"attribution_accuracy"`
	AttributionUnknown  float64          `json:"attribution_unknown_share"`
	WDER                float64          `json:"wder"`
	WDERWords           int              `json:"wder_words"`
	WDERWrong           int              `json:"wder_wrong"`

	VADPrecision float64 `json:"vad_precision"`
	VADRecall    float64 `json:"vad_recall"`
	DecodeS      float64 `json:"decode_s"`
	TotalS       float64 `json:"total_s"`
	// Seconds of speech found by both the VAD and the truth, by the VAD, by the truth
	// (what the pooled precision and recall are made of).
	VADHitS float64 `json:"vad_hit_s,omitempty"`
	VADHypS float64 `json:"vad_hyp_s,omitempty"`
	VADRefS float64 `json:"vad_ref_s,omitempty"`
}

// PoolAccuracy pools the files of one mode, hearing, condition, voice pair and clean-up.
type PoolAccuracy struct {
	Mode         string  `json:"mode"`
	Channels     string  `json:"channels"`
	Condition    string  `json:"condition"`
	Voices       string  `json:"voices"`
	Cleanup      bool    `json:"cleanup"`
	Files        int     `json:"files"`
	AudioSeconds float64 `json:"audio_seconds"`
	// WallS is the time the mode took over all files; RTF that over the audio time.
	WallS               float64  `json:"wall_s"`
	RTF                 float64  `json:"rtf"`
	WER                 float64  `json:"wer"`
	RefWords            int      `json:"ref_words"`
	Errors              int      `json:"errors"`
	SpeakerAccuracy     *float64 `json:"speaker_accuracy,omitempty"` // scribe only
	SpeakerUnknown      *float64 `json:"speaker_unknown_share,omitempty"`
	AttributionAccuracy *float64 `json:"attribution_accuracy,omitempty"`
	AttributionUnknown  *float64 `json:"attribution_unknown_share,omitempty"`
	WDER                *float64 `json:"wder,omitempty"`
	VADPrecision        *float64 `json:"vad_precision,omitempty"` // scribe only
	VADRecall           *float64 `json:"vad_recall,omitempty"`
}

// AccuracyReport is the per-file and pooled result. The top-level pooled figures are
// scribe's file mode, with its clean-up, over every file.
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
	Modes []string // ModeFile (default), ModeLive, ModeWhisperCLI
	// Channels: "stereo" (default: every microphone — the pair of a dry render, the
	// array of a room render) and/or "mono" (one — the mix of a dry render, capsule 0 of
	// a room render).
	Channels []string
	// WithoutCleanup also transcribes rendered recordings without the clean-up chain
	// (scribe's modes), to show what it costs or wins.
	WithoutCleanup bool
	LivePace       float64 // live replay speed, × real time (0: as fast as the pipeline takes it)
	CLI            CLIRun  // for ModeWhisperCLI
}

// IsTestModel tells whisper.cpp's weightless test models by their file name.
func IsTestModel(path string) bool { return strings.HasPrefix(filepath.Base(path), "for-tests-") }

// truthSource is one recording to score: its audio and ground truth.
type truthSource struct {
	name, kind        string
	audio, mono       string   // rendered WAV files: stereo or array, and the mono mix (dry only)
	channels          []string // separate per-speaker files (PriMock57 originals)
	condition, voices string
	truth             []corpus.TruthUtterance
	room              *corpus.RoomInfo
}

// findAccuracySources reads rendered consultations (*.truth.json with .stereo.wav and
// .mono.wav, or .array.wav for a room render) in dir and, when dir is a PriMock57 tree
// with audio, the original recordings with their TextGrid transcripts
// (audio/<id>_doctor.wav and _patient.wav).
func findAccuracySources(dir string) ([]truthSource, error) {
	var out []truthSource
	paths, err := FindRendered(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		t, err := corpus.ReadTruth(p)
		if err != nil {
			return nil, fmt.Errorf("bench accuracy: %w", err)
		}
		s := truthSource{name: strings.TrimSuffix(filepath.Base(p), ".truth.json"), kind: "rendered", audio: corpus.AudioPath(p, t),
			condition: NoiseCondition(t.Noise, t.SNRdB), voices: t.Voices[0] + "," + t.Voices[1], truth: t.Utterances, room: t.Room}
		if t.Room == nil {
			s.mono = strings.TrimSuffix(p, ".truth.json") + ".mono.wav"
		} else {
			s.condition = fmt.Sprintf("room %s, %s", t.Room.Name, s.condition)
		}
		out = append(out, s)
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

// hearing is one way of listening to a source: which channels, attributed how.
type hearing struct {
	channels string
	setup    diarize.Setup
	clip     *audio.Clip
	file     string // the clip as a WAV file, when there is one (the mono mix of a dry render)
}

// hear loads a source as heard one way: "stereo" (every microphone) or "mono" (one).
// Every microphone is a pair for a dry render and the original recordings, an array for
// a room render; one is the mix, or a room's capsule 0.
func hear(s truthSource, channels string) (hearing, error) {
	if s.room != nil {
		clip, err := audio.ReadFile(s.audio)
		if err != nil {
			return hearing{}, err
		}
		a := s.room.Array
		if channels == "mono" {
			return hearing{channels: "capsule 0", setup: diarize.Setup{Kind: diarize.KindSingle},
				clip: &audio.Clip{Rate: clip.Rate, Channels: clip.Channels[:1]}}, nil
		}
		return hearing{channels: strconv.Itoa(a.Capsules) + "-capsule array",
			setup: diarize.Setup{Kind: diarize.KindArray, Capsules: a.Capsules, SpacingMM: a.SpacingMM, Layout: a.Layout, Clinician: diarize.ClinicianFirst},
			clip:  clip}, nil
	}
	if s.audio != "" {
		path := s.audio
		if channels == "mono" {
			path = s.mono
		}
		clip, err := audio.ReadFile(path)
		if err != nil {
			return hearing{}, err
		}
		if channels == "mono" {
			return hearing{channels: "mono", setup: diarize.Setup{Kind: diarize.KindSingle}, clip: clip, file: path}, nil
		}
		return hearing{channels: "stereo", setup: diarize.Setup{Kind: diarize.KindPair}, clip: clip}, nil
	}
	var chans [][]float32
	for _, p := range s.channels {
		c, err := audio.ReadFile(p)
		if err != nil {
			return hearing{}, err
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
		return hearing{channels: "mono", setup: diarize.Setup{Kind: diarize.KindSingle},
			clip: &audio.Clip{Rate: domain.SampleRate, Channels: [][]float32{domain.MixDown(chans)}}}, nil
	}
	return hearing{channels: "stereo", setup: diarize.Setup{Kind: diarize.KindPair}, clip: &audio.Clip{Rate: domain.SampleRate, Channels: chans}}, nil
}

// monoFile is a WAV file of one channel of the source (the hearing "mono"), for
// whisper-cli, and a function removing it if it had to be written.
func monoFile(s truthSource) (string, func(), error) {
	h, err := hear(s, "mono")
	if err != nil {
		return "", nil, err
	}
	if h.file != "" {
		return h.file, func() {}, nil
	}
	f, err := os.CreateTemp("", "scribe-acc-*.wav")
	if err != nil {
		return "", nil, err
	}
	f.Close()
	if err := audio.WriteWAVFile(f.Name(), h.clip.Rate, h.clip.Channels); err != nil {
		os.Remove(f.Name())
		return "", nil, err
	}
	return f.Name(), func() { os.Remove(f.Name()) }, nil
}

// RunAccuracy transcribes every recording in dir in each mode, hearing and clean-up of
// opt and scores it. whisper-cli hears the one-channel audio once per recording (it
// mixes stereo down itself).
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
		rep.Note = "test model: WER and WDER meaningless (weightless model decodes no words); timings, speaker and VAD figures are real"
	}
	if slices.Contains(opt.Modes, ModeWhisperCLI) {
		rep.WhisperCLIArgs = strings.Join(opt.CLI.Args, " ")
	}
	if slices.Contains(opt.Modes, ModeLive) {
		rep.LivePace = opt.LivePace
	}
	for _, s := range sources {
		for _, mode := range opt.Modes {
			cleanups := []bool{true}
			if opt.WithoutCleanup && s.kind == "rendered" && mode != ModeWhisperCLI {
				cleanups = append(cleanups, false)
			}
			for _, ch := range opt.Channels {
				if mode == ModeWhisperCLI && ch != "mono" && slices.Contains(opt.Channels, "mono") {
					continue // the same audio as its mono row
				}
				for _, cleanup := range cleanups {
					fa, err := transcribeAs(ctx, rt, s, mode, ch, cleanup, opt)
					if err != nil {
						return nil, fmt.Errorf("bench accuracy: %s (%s, %s): %w", s.name, mode, ch, err)
					}
					rep.Files = append(rep.Files, fa)
				}
			}
		}
	}
	rep.LoadAverage[1] = LoadAverage()
	rep.pool()
	return rep, nil
}

// transcribeAs transcribes one source in one mode, hearing and clean-up, and scores it.
func transcribeAs(ctx context.Context, rt *app.Runtime, s truthSource, mode, channels string, cleanup bool, opt AccuracyOptions) (FileAccuracy, error) {
	var tr *domain.Transcript
	fa := FileAccuracy{File: s.name, Source: s.kind, Mode: mode, Channels: channels, Condition: s.condition, Voices: s.voices, Cleanup: cleanup}
	if s.room != nil {
		fa.Room, fa.RT60, fa.Capsules = s.room.Name, s.room.MeasuredRT60, s.room.Array.Capsules
	}
	if mode == ModeWhisperCLI {
		path, done, err := monoFile(s)
		if err != nil {
			return fa, err
		}
		defer done()
		if tr, err = opt.CLI.Transcribe(ctx, path); err != nil {
			return fa, err
		}
		fa.Channels, fa.Cleanup = channelsOfOne(s), false
	} else {
		h, err := hear(s, channels)
		if err != nil {
			return fa, err
		}
		fa.Channels, fa.Microphones = h.channels, h.setup.Kind
		hctx := diarize.WithSetup(ctx, h.setup)
		if !cleanup {
			hctx = pipeline.WithoutCleanup(hctx)
		}
		if mode == ModeLive {
			tr, err = rt.ReplayClip(hctx, h.clip, opt.LivePace)
		} else {
			tr, err = rt.TranscribeClip(hctx, h.clip)
		}
		if err != nil {
			return fa, err
		}
	}
	score(&fa, s.truth, tr)
	return fa, nil
}

// channelsOfOne names the one-channel hearing of a source.
func channelsOfOne(s truthSource) string {
	if s.room != nil {
		return "capsule 0"
	}
	return "mono"
}

// pool fills the pooled figures from the files.
func (r *AccuracyReport) pool() {
	r.Pools = poolAccuracy(r.Files)
	var file []FileAccuracy
	for _, f := range r.Files {
		if f.Mode == ModeFile && f.Cleanup {
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

// settings describes the runtime's choices that move the figures.
func settings(rt *app.Runtime) string {
	c := rt.Config
	on := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("high-pass %s, noise suppression %s, AGC %s, file window %gs, mixed speakers %s, shrink audio ctx %s, beam %d, temperature inc %g, threads %d",
		on(c.Audio.HighPass), on(c.Audio.NoiseSuppression), on(c.Audio.AGC), c.Transcription.FileWindow,
		on(c.Transcription.FileMixSpeakers), on(c.Transcription.ShrinkAudioCtx), c.Transcription.BeamSize, c.Transcription.TemperatureInc, c.Models.Threads)
}

// poolAccuracy pools files by mode, hearing, condition, voices and clean-up, in the order
// first seen.
func poolAccuracy(files []FileAccuracy) []PoolAccuracy {
	type key struct {
		mode, ch, cond, voices string
		cleanup                bool
	}
	var order []key
	groups := map[key][]FileAccuracy{}
	for _, f := range files {
		k := key{f.Mode, f.Channels, f.Condition, f.Voices, f.Cleanup}
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

// pool sums files' words, errors, times, speakers and speech into one row (nil for none),
// from the counts, which survive a report read back from JSON.
func pool(files []FileAccuracy) *PoolAccuracy {
	if len(files) == 0 {
		return nil
	}
	f0 := files[0]
	p := &PoolAccuracy{Mode: f0.Mode, Channels: f0.Channels, Condition: f0.Condition, Voices: f0.Voices, Cleanup: f0.Cleanup, Files: len(files)}
	var spk, attr diarize.Accuracy
	var wrong, aligned int
	var hit, hyp, ref float64
	for _, f := range files {
		// Pooled WER is all errors over all reference words (as textdiff.Totals).
		p.RefWords += f.RefWords
		p.Errors += f.Errors
		p.AudioSeconds += f.AudioSeconds
		p.WallS += f.TotalS
		spk.Add(f.Speaker)
		attr.Add(f.Attribution)
		wrong, aligned = wrong+f.WDERWrong, aligned+f.WDERWords
		hit, hyp, ref = hit+f.VADHitS, hyp+f.VADHypS, ref+f.VADRefS
	}
	p.WER = float64(p.Errors) / float64(max(p.RefWords, 1))
	p.RTF = ratio(p.WallS, p.AudioSeconds)
	if hyp > 0 { // scribe's rows: whisper-cli reports neither speech nor speakers
		p.SpeakerAccuracy, p.SpeakerUnknown = ptr(spk.Value()), ptr(spk.UnknownShare())
		p.AttributionAccuracy, p.AttributionUnknown = ptr(attr.Value()), ptr(attr.UnknownShare())
		p.WDER = ptr(ratio(float64(wrong), float64(aligned)))
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
	var fa FileAccuracy
	score(&fa, truth, tr)
	return fa
}

func score(fa *FileAccuracy, truth []corpus.TruthUtterance, tr *domain.Transcript) {
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
	fa.AudioSeconds, fa.WER, fa.WERValue, fa.RefWords, fa.HypWords, fa.Errors = tr.AudioSeconds, res, res.WER, res.RefWords, res.HypWords, res.Errors()
	fa.DecodeS, fa.TotalS = tr.Timings.Decode.Seconds(), tr.Timings.Total.Seconds()
	if tr.Speech == nil {
		return // whisper-cli: no speakers, no speech
	}
	var spans []domain.SpeakerSpan
	for _, u := range truth {
		spans = append(spans, domain.SpeakerSpan{Interval: domain.Interval{Start: u.Start, End: u.End}, Speaker: u.Speaker})
	}
	fa.Speaker = diarize.Score(spans, app.SegmentSpans(tr.Segments))
	fa.SpeakerAccuracy, fa.SpeakerUnknown, fa.SpeakerSeconds = fa.Speaker.Value(), fa.Speaker.UnknownShare(), fa.Speaker.Correct+fa.Speaker.Wrong
	fa.Attribution = diarize.Score(spans, tr.Speakers)
	fa.AttributionAccuracy, fa.AttributionUnknown = fa.Attribution.Value(), fa.Attribution.UnknownShare()
	fa.WDERWrong, fa.WDERWords = wder(truth, tr.Segments)
	fa.WDER = ratio(float64(fa.WDERWrong), float64(fa.WDERWords))

	ref2 := mergeIntervals(truthIntervals(truth))
	hyp2 := mergeIntervals(tr.Speech)
	fa.VADHitS, fa.VADHypS, fa.VADRefS = domain.OverlapSeconds(hyp2, ref2), total(hyp2), total(ref2)
	fa.VADPrecision, fa.VADRecall = ratio(fa.VADHitS, fa.VADHypS), ratio(fa.VADHitS, fa.VADRefS)
}

// wder aligns the reference words (each with its utterance's speaker) with the
// transcript's (each with its segment's speaker) and counts the aligned pairs (correct or
// substituted words) and those whose speakers differ.
func wder(truth []corpus.TruthUtterance, segs []domain.Segment) (wrong, aligned int) {
	var refW, hypW []string
	var refS, hypS []domain.Speaker
	for _, u := range truth {
		for _, w := range textdiff.Normalise(u.Text, textdiff.DefaultOptions) {
			refW, refS = append(refW, w), append(refS, u.Speaker)
		}
	}
	for _, s := range segs {
		for _, w := range textdiff.Normalise(s.Text, textdiff.DefaultOptions) {
			hypW, hypS = append(hypW, w), append(hypS, s.Speaker)
		}
	}
	for _, op := range textdiff.Align(refW, hypW).Ops {
		if op.Kind != textdiff.OpEqual && op.Kind != textdiff.OpSubstitute {
			continue
		}
		aligned++
		if refS[op.Ref] != hypS[op.Hyp] {
			wrong++
		}
	}
	return wrong, aligned
}

// Chart shows WER per condition (noise, channels, voices — one group each, in the
// JSON's order) with one bar per mode: file mode, live, whisper-cli (and scribe's
// modes without clean-up when measured).
func (r *AccuracyReport) Chart() Chart {
	c := Chart{Title: "WER by condition: " + filepath.Base(r.Model), Step: 0.1}
	type key struct{ cond, ch, voices string }
	var order []key
	at := map[key]int{}
	var modes []string
	series := func(p PoolAccuracy) string {
		if p.Cleanup || p.Mode == ModeWhisperCLI {
			return p.Mode
		}
		return p.Mode + " (no clean-up)"
	}
	for _, p := range r.Pools {
		if !slices.Contains(modes, series(p)) {
			modes = append(modes, series(p))
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
		c.Groups[i][slices.Index(modes, series(p))] = min(p.WER, 2)
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
