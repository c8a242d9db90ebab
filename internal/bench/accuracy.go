package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
type FileAccuracy struct {
	File            string          `json:"file"`
	Source          string          `json:"source"` // "rendered" (truth JSON) or "primock57" (TextGrids)
	AudioSeconds    float64         `json:"audio_seconds"`
	WER             textdiff.Result `json:"-"`
	WERValue        float64         `json:"wer"`
	RefWords        int             `json:"ref_words"`
	HypWords        int             `json:"hyp_words"`
	SpeakerAccuracy float64         `json:"speaker_accuracy"`
	SpeakerSeconds  float64         `json:"speaker_scored_seconds"`
	VADPrecision    float64         `json:"vad_precision"`
	VADRecall       float64         `json:"vad_recall"`
	DecodeS         float64         `json:"decode_s"`
	TotalS          float64         `json:"total_s"`
}

// AccuracyReport is the per-file and pooled result.
type AccuracyReport struct {
	Model           string         `json:"model"`
	TestModel       bool           `json:"test_model"`
	Note            string         `json:"note,omitempty"`
	Files           []FileAccuracy `json:"files"`
	WER             float64        `json:"wer_pooled"`
	SpeakerAccuracy float64        `json:"speaker_accuracy_pooled"`
	VADPrecision    float64        `json:"vad_precision_pooled"`
	VADRecall       float64        `json:"vad_recall_pooled"`
}

// IsTestModel tells whisper.cpp's weightless test models by their file name.
func IsTestModel(path string) bool { return strings.HasPrefix(filepath.Base(path), "for-tests-") }

// truthSource is one recording to score: its audio and ground truth.
type truthSource struct {
	name, kind, audio string
	channels          []string // separate per-speaker files (PriMock57 originals)
	truth             []corpus.TruthUtterance
}

// findAccuracySources reads rendered consultations (*.truth.json + .stereo.wav) in dir
// and, when dir is a PriMock57 tree with audio, the original recordings with their
// TextGrid transcripts (audio/<id>_doctor.wav and _patient.wav).
func findAccuracySources(dir string) ([]truthSource, error) {
	var out []truthSource
	paths, err := FindRendered(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		rec, err := LoadRendered(p)
		if err != nil {
			return nil, err
		}
		out = append(out, truthSource{name: rec.Name, kind: "rendered", audio: strings.TrimSuffix(p, ".truth.json") + ".stereo.wav", truth: rec.Truth})
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

// RunAccuracy transcribes every recording in dir with rt and scores it.
func RunAccuracy(ctx context.Context, rt *app.Runtime, dir string) (*AccuracyReport, error) {
	sources, err := findAccuracySources(dir)
	if err != nil {
		return nil, err
	}
	rep := &AccuracyReport{Model: rt.Model.Path(), TestModel: IsTestModel(rt.Model.Path())}
	if rep.TestModel {
		rep.Note = "test model: WER meaningless (weightless model decodes no words); timings, speaker and VAD figures are real"
	}
	var totals textdiff.Totals
	var spkOK, spkAll, vadHit, vadHyp, vadRef float64
	for _, s := range sources {
		clip, err := loadSource(s)
		if err != nil {
			return nil, fmt.Errorf("bench accuracy: %s: %w", s.name, err)
		}
		tr, err := rt.TranscribeClip(ctx, clip)
		if err != nil {
			return nil, fmt.Errorf("bench accuracy: %s: %w", s.name, err)
		}
		fa := Score(s.truth, tr)
		fa.File, fa.Source = s.name, s.kind
		rep.Files = append(rep.Files, fa)
		totals.Add(fa.WER)
		spkOK += fa.SpeakerAccuracy * fa.SpeakerSeconds
		spkAll += fa.SpeakerSeconds
		ref := mergeIntervals(truthIntervals(s.truth))
		hit := domain.OverlapSeconds(mergeIntervals(tr.Speech), ref)
		vadHit += hit
		vadHyp += total(mergeIntervals(tr.Speech))
		vadRef += total(ref)
	}
	rep.WER = totals.WER()
	rep.SpeakerAccuracy = ratio(spkOK, spkAll)
	rep.VADPrecision, rep.VADRecall = ratio(vadHit, vadHyp), ratio(vadHit, vadRef)
	return rep, nil
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

	ref2 := mergeIntervals(truthIntervals(truth))
	hyp2 := mergeIntervals(tr.Speech)
	hit := domain.OverlapSeconds(hyp2, ref2)
	fa.VADPrecision, fa.VADRecall = ratio(hit, total(hyp2)), ratio(hit, total(ref2))
	return fa
}

// Chart shows WER, speaker accuracy and VAD recall per file.
func (r *AccuracyReport) Chart() Chart {
	c := Chart{Series: []string{"WER", "speaker accuracy", "VAD precision", "VAD recall"}, Step: 0.25}
	for _, f := range r.Files {
		c.Groups = append(c.Groups, []float64{min(f.WERValue, 2), f.SpeakerAccuracy, f.VADPrecision, f.VADRecall})
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
