package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"scribe/internal/app"
	"scribe/internal/audio"
	"scribe/internal/corpus"
	"scribe/internal/diarize"
	"scribe/internal/domain"
	"scribe/internal/pipeline"
	"scribe/internal/textdiff"
)

// FileAccuracy scores one recording, heard one way (a condition), against its ground truth.
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
// recall the share of true speech detected.
type FileAccuracy struct {
	File         string  `json:"file"`
	Source       string  `json:"source"`    // "rendered" (truth JSON) or "primock57" (TextGrids)
	Condition    string  `json:"condition"` // e.g. "dry, microphone pair", "room, array", "room, capsule 0"
	Microphones  string  `json:"microphones"`
	Cleanup      bool    `json:"cleanup"`
	Room         string  `json:"room,omitempty"`
	RT60         float64 `json:"rt60_s,omitempty"` // measured on the simulated room
	Capsules     int     `json:"capsules,omitempty"`
	SNRdB        float64 `json:"snr_db,omitempty"`
	AudioSeconds float64 `json:"audio_seconds"`

	WER      textdiff.Result `json:"-"`
	WERValue float64         `json:"wer"`
	RefWords int             `json:"ref_words"`
	HypWords int             `json:"hyp_words"`

	Speaker             diarize.Accuracy `json:"-"`
	SpeakerAccuracy     float64          `json:"speaker_accuracy"`
	SpeakerUnknown      float64          `json:"speaker_unknown_share"`
	SpeakerSeconds      float64          `json:"speaker_scored_seconds"`
	Attribution         diarize.Accuracy `json:"-"`
	AttributionAccuracy float64          `json:"attribution_accuracy"`
	AttributionUnknown  float64          `json:"attribution_unknown_share"`
	WDER                float64          `json:"wder"`
	WDERWords           int              `json:"wder_words"`
	wderWrong           int

	VADPrecision float64 `json:"vad_precision"`
	VADRecall    float64 `json:"vad_recall"`
	DecodeS      float64 `json:"decode_s"`
	TotalS       float64 `json:"total_s"`
}

// ConditionAccuracy pools the files heard one way.
type ConditionAccuracy struct {
	Condition           string  `json:"condition"`
	Cleanup             bool    `json:"cleanup"`
	Files               int     `json:"files"`
	WER                 float64 `json:"wer"`
	SpeakerAccuracy     float64 `json:"speaker_accuracy"`
	SpeakerUnknown      float64 `json:"speaker_unknown_share"`
	AttributionAccuracy float64 `json:"attribution_accuracy"`
	AttributionUnknown  float64 `json:"attribution_unknown_share"`
	WDER                float64 `json:"wder"`
}

// AccuracyReport is the per-file, per-condition and pooled result.
type AccuracyReport struct {
	Model           string              `json:"model"`
	TestModel       bool                `json:"test_model"`
	Note            string              `json:"note,omitempty"`
	Files           []FileAccuracy      `json:"files"`
	Conditions      []ConditionAccuracy `json:"conditions"`
	WER             float64             `json:"wer_pooled"`
	SpeakerAccuracy float64             `json:"speaker_accuracy_pooled"`
	VADPrecision    float64             `json:"vad_precision_pooled"`
	VADRecall       float64             `json:"vad_recall_pooled"`
}

// IsTestModel tells whisper.cpp's weightless test models by their file name.
func IsTestModel(path string) bool { return strings.HasPrefix(filepath.Base(path), "for-tests-") }

// truthSource is one recording to score: its audio and ground truth.
type truthSource struct {
	name, kind, audio string
	channels          []string // separate per-speaker files (PriMock57 originals)
	truth             []corpus.TruthUtterance
	room              *corpus.RoomInfo
	snr               float64
}

// findAccuracySources reads rendered consultations (*.truth.json with their .stereo.wav,
// or .array.wav for a room render) in dir and, when dir is a PriMock57 tree with audio,
// the original recordings with their TextGrid transcripts (audio/<id>_doctor.wav and
// _patient.wav).
func findAccuracySources(dir string) ([]truthSource, error) {
	var out []truthSource
	paths, err := FindRendered(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		t, err := corpus.ReadTruth(p)
		if err != nil {
			return nil, err
		}
		out = append(out, truthSource{name: strings.TrimSuffix(filepath.Base(p), ".truth.json"), kind: "rendered",
			audio: corpus.AudioPath(p, t), truth: t.Utterances, room: t.Room, snr: t.SNRdB})
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
			src := truthSource{name: id, kind: "primock57", channels: []string{doc, pat}}
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

// loadSource reads a source's audio as one clip (per-speaker files become channels).
func loadSource(s truthSource) (*audio.Clip, error) {
	if s.audio != "" {
		return audio.ReadFile(s.audio)
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
	return &audio.Clip{Rate: domain.SampleRate, Channels: chans}, nil
}

// hearing is one way of listening to a source: which channels, attributed how.
type hearing struct {
	condition string
	setup     diarize.Setup
	clip      *audio.Clip
}

// hearings are the conditions a source is scored in: a dry two-channel render as a
// microphone pair; a room render as its array and as its capsule 0 alone.
func hearings(s truthSource, clip *audio.Clip) []hearing {
	if s.room == nil {
		return []hearing{{"dry, microphone pair", diarize.Setup{Kind: diarize.KindPair}, clip}}
	}
	a := s.room.Array
	return []hearing{
		{"room, " + strconv.Itoa(a.Capsules) + "-capsule array", diarize.Setup{Kind: diarize.KindArray, Capsules: a.Capsules, SpacingMM: a.SpacingMM, Layout: a.Layout, Clinician: diarize.ClinicianFirst}, clip},
		{"room, one capsule", diarize.Setup{Kind: diarize.KindSingle}, &audio.Clip{Rate: clip.Rate, Channels: clip.Channels[:1]}},
	}
}

// RunAccuracy transcribes every recording in dir with rt, in each of its conditions,
// with the clean-up chain and, when withoutCleanup is set, (rendered recordings) also
// without it, and scores it.
func RunAccuracy(ctx context.Context, rt *app.Runtime, dir string, withoutCleanup bool) (*AccuracyReport, error) {
	sources, err := findAccuracySources(dir)
	if err != nil {
		return nil, err
	}
	rep := &AccuracyReport{Model: rt.Model.Path(), TestModel: IsTestModel(rt.Model.Path())}
	if rep.TestModel {
		rep.Note = "test model: WER and WDER meaningless (weightless model decodes no words); timings, speaker and VAD figures are real"
	}
	var totals textdiff.Totals
	var spk diarize.Accuracy
	var vadHit, vadHyp, vadRef float64
	for _, s := range sources {
		clip, err := loadSource(s)
		if err != nil {
			return nil, fmt.Errorf("bench accuracy: %s: %w", s.name, err)
		}
		cleanups := []bool{true}
		if withoutCleanup && s.kind == "rendered" {
			cleanups = append(cleanups, false)
		}
		for _, h := range hearings(s, clip) {
			for _, cleanup := range cleanups {
				hctx := diarize.WithSetup(ctx, h.setup)
				if !cleanup {
					hctx = pipeline.WithoutCleanup(hctx)
				}
				tr, err := rt.TranscribeClip(hctx, h.clip)
				if err != nil {
					return nil, fmt.Errorf("bench accuracy: %s: %w", s.name, err)
				}
				fa := Score(s.truth, tr)
				fa.File, fa.Source, fa.Condition, fa.Microphones, fa.Cleanup = s.name, s.kind, h.condition, h.setup.Kind, cleanup
				if s.room != nil {
					fa.Room, fa.RT60, fa.Capsules, fa.SNRdB = s.room.Name, s.room.MeasuredRT60, s.room.Array.Capsules, s.snr
				}
				rep.Files = append(rep.Files, fa)
				if !cleanup {
					continue // the pooled figures are the product's, with its clean-up
				}
				totals.Add(fa.WER)
				spk.Add(fa.Speaker)
				ref := mergeIntervals(truthIntervals(s.truth))
				hit := domain.OverlapSeconds(mergeIntervals(tr.Speech), ref)
				vadHit += hit
				vadHyp += total(mergeIntervals(tr.Speech))
				vadRef += total(ref)
			}
		}
	}
	rep.WER = totals.WER()
	rep.SpeakerAccuracy = spk.Value()
	rep.VADPrecision, rep.VADRecall = ratio(vadHit, vadHyp), ratio(vadHit, vadRef)
	rep.Conditions = poolConditions(rep.Files)
	return rep, nil
}

// poolConditions pools the files by condition and clean-up, in the order first seen.
func poolConditions(files []FileAccuracy) []ConditionAccuracy {
	type pool struct {
		c              ConditionAccuracy
		wer            textdiff.Totals
		spk, attr      diarize.Accuracy
		wrong, aligned int
	}
	var order []string
	pools := map[string]*pool{}
	for _, f := range files {
		key := f.Condition + "|" + strconv.FormatBool(f.Cleanup)
		p, ok := pools[key]
		if !ok {
			p = &pool{c: ConditionAccuracy{Condition: f.Condition, Cleanup: f.Cleanup}}
			pools[key] = p
			order = append(order, key)
		}
		p.c.Files++
		p.wer.Add(f.WER)
		p.spk.Add(f.Speaker)
		p.attr.Add(f.Attribution)
		p.wrong += f.wderWrong
		p.aligned += f.WDERWords
	}
	out := make([]ConditionAccuracy, 0, len(order))
	for _, k := range order {
		p := pools[k]
		p.c.WER = p.wer.WER()
		p.c.SpeakerAccuracy, p.c.SpeakerUnknown = p.spk.Value(), p.spk.UnknownShare()
		p.c.AttributionAccuracy, p.c.AttributionUnknown = p.attr.Value(), p.attr.UnknownShare()
		p.c.WDER = ratio(float64(p.wrong), float64(p.aligned))
		out = append(out, p.c)
	}
	return out
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
	fa := FileAccuracy{AudioSeconds: tr.AudioSeconds, WER: res, WERValue: res.WER, RefWords: res.RefWords, HypWords: res.HypWords,
		DecodeS: tr.Timings.Decode.Seconds(), TotalS: tr.Timings.Total.Seconds()}

	var spans []domain.SpeakerSpan
	for _, u := range truth {
		spans = append(spans, domain.SpeakerSpan{Interval: domain.Interval{Start: u.Start, End: u.End}, Speaker: u.Speaker})
	}
	fa.Speaker = diarize.Score(spans, app.SegmentSpans(tr.Segments))
	fa.SpeakerAccuracy, fa.SpeakerUnknown, fa.SpeakerSeconds = fa.Speaker.Value(), fa.Speaker.UnknownShare(), fa.Speaker.Correct+fa.Speaker.Wrong
	fa.Attribution = diarize.Score(spans, tr.Speakers)
	fa.AttributionAccuracy, fa.AttributionUnknown = fa.Attribution.Value(), fa.Attribution.UnknownShare()
	fa.wderWrong, fa.WDERWords = wder(truth, tr.Segments)
	fa.WDER = ratio(float64(fa.wderWrong), float64(fa.WDERWords))

	ref2 := mergeIntervals(truthIntervals(truth))
	hyp2 := mergeIntervals(tr.Speech)
	hit := domain.OverlapSeconds(hyp2, ref2)
	fa.VADPrecision, fa.VADRecall = ratio(hit, total(hyp2)), ratio(hit, total(ref2))
	return fa
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

// Chart shows, per condition (with and without clean-up), WER, speaker accuracy, the
// unknown share and WDER.
func (r *AccuracyReport) Chart() Chart {
	c := Chart{Series: []string{"WER", "speaker accuracy", "unknown share", "WDER"}, Step: 0.25}
	for _, p := range r.Conditions {
		c.Groups = append(c.Groups, []float64{min(p.WER, 2), p.SpeakerAccuracy, p.SpeakerUnknown, p.WDER})
	}
	return c
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
