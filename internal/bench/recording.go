package bench

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"scribe/internal/audio"
	"scribe/internal/corpus"
	"scribe/internal/domain"
)

// Recording is audio at 16 kHz with the ground truth of who said what, when.
type Recording struct {
	Name     string
	Channels [][]float32
	Truth    []corpus.TruthUtterance
	Offset   float64 // where an Excerpt starts in the original
}

// Text is the ground truth's words, utterances in order of their start. (Words of
// utterances an Excerpt cut off are in the audio but not here: transcripts of the excerpt
// carry them as insertions, live and file alike.)
func (r Recording) Text() string {
	var parts []string
	for _, u := range r.Truth {
		parts = append(parts, u.Text)
	}
	return strings.Join(parts, " ")
}

// Seconds is the recording's length.
func (r Recording) Seconds() float64 {
	if len(r.Channels) == 0 {
		return 0
	}
	return float64(len(r.Channels[0])) / domain.SampleRate
}

// LoadRendered reads a rendered consultation (corpus.Render, corpus.RenderRoom) from its
// truth JSON: the WAV beside it (stereo: clinician left, patient right; or an array's
// capsules) and the truth.
func LoadRendered(truthPath string) (Recording, error) {
	truth, err := corpus.ReadTruth(truthPath)
	if err != nil {
		return Recording{}, err
	}
	clip, err := audio.ReadFile(corpus.AudioPath(truthPath, truth))
	if err != nil {
		return Recording{}, fmt.Errorf("bench: %w", err)
	}
	return Recording{Name: strings.TrimSuffix(filepath.Base(truthPath), ".truth.json"), Channels: clip.To16k().Channels, Truth: truth.Utterances}, nil
}

// FindRendered lists the rendered consultations (*.truth.json) in dir, sorted.
func FindRendered(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.truth.json"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	sort.Strings(m)
	return m, nil
}

// Excerpt is the first seconds of r (all of it when seconds ≤ 0), rotated to start
// offset seconds in, so that rooms replaying the same consultation do not finish their
// utterances at the same instants. Truth utterances cut by the rotation or the end are
// dropped.
func (r Recording) Excerpt(offset, seconds float64) Recording {
	total := r.Seconds()
	if total == 0 {
		return r
	}
	if offset = mod(offset, total); offset < 0 {
		offset = 0
	}
	if seconds <= 0 || seconds > total {
		seconds = total
	}
	shift := int(offset * domain.SampleRate)
	n := int(seconds * domain.SampleRate)
	out := Recording{Name: r.Name, Offset: offset}
	for _, ch := range r.Channels {
		rot := append(append([]float32(nil), ch[shift:]...), ch[:shift]...)
		out.Channels = append(out.Channels, rot[:n])
	}
	for _, u := range r.Truth {
		for _, d := range []float64{-offset, total - offset} {
			v := u
			v.Start, v.End = u.Start+d, u.End+d
			if v.Start >= 0 && v.End <= seconds {
				out.Truth = append(out.Truth, v)
			}
		}
	}
	sort.Slice(out.Truth, func(i, j int) bool { return out.Truth[i].Start < out.Truth[j].Start })
	return out
}

func mod(a, b float64) float64 {
	m := a - b*float64(int(a/b))
	if m < 0 {
		m += b
	}
	return m
}
