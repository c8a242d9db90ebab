// Package diarize says who spoke when in a consultation room, from the audio alone and
// without a downloaded model, for the three microphone set-ups a practice has:
//
//   - pair: a microphone for each person (clinician left, patient right): the louder
//     channel wins, window by window;
//   - array: one box on the desk with two or more capsules a few centimetres apart: the
//     two people sit in fixed places, so the time difference between capsules (GCC-PHAT)
//     tells their voices apart;
//   - single: one capsule: two-speaker clustering of voice features (pitch and spectral
//     envelope), which leaves a stretch unknown where it is unsure.
//
// An array or a single capsule finds two voices but not their names: a one-step
// calibration names them, either "first" (the clinician opens the consultation) or
// the side of the array the clinician sits on. Each stream gets its own Attributor, fed
// every committed utterance in order (its state is the two voices learnt so far: a few
// numbers per frame of speech, never audio); it returns spans on the stream's timeline,
// and Decide gives a transcript segment its speaker from them. The package is pure Go.
package diarize

import (
	"context"
	"fmt"

	"scribe/internal/domain"
)

// The microphone set-ups.
const (
	KindAuto   = "auto" // by channel count: 1 = single, 2 = pair
	KindPair   = "pair"
	KindArray  = "array"
	KindSingle = "single"
)

// The calibrations: who is who.
const (
	// ClinicianFirst: the voice (or direction) heard most in the first OpeningSeconds of
	// speech after Start is the clinician's: the clinician opens the consultation.
	ClinicianFirst = "first"
	// ClinicianLeft: pair: the clinician's microphone is channel 0; array: the clinician
	// sits nearer the first capsule (channel 0) than the far one (the last of a row, the
	// opposite one on a ring).
	ClinicianLeft  = "left"
	ClinicianRight = "right"
)

// Setup is a room's microphone arrangement.
type Setup struct {
	Kind      string  `json:"kind" yaml:"kind"`                       // auto, pair, array or single
	Capsules  int     `json:"capsules,omitempty" yaml:"capsules"`     // array: capsules (channels) the device delivers
	SpacingMM float64 `json:"spacing_mm,omitempty" yaml:"spacing_mm"` // array: distance between neighbouring capsules
	Layout    string  `json:"layout,omitempty" yaml:"layout"`         // array: "linear" (a row) or "ring" (evenly round a circle)
	// Clinician names the voices: first, left or right; empty means left for a pair and
	// first otherwise. A single capsule has no sides: it is always calibrated by first.
	Clinician string `json:"clinician,omitempty" yaml:"clinician"`
}

// Channels is how many channels the set-up captures: the capsules of an array, two for
// a pair, one for a single microphone; 0 for auto (the device's or file's own).
func (s Setup) Channels() int {
	switch s.Kind {
	case KindArray:
		return s.Capsules
	case KindPair:
		return 2
	case KindSingle:
		return 1
	}
	return 0
}

// Validate names what cannot work.
func (s Setup) Validate() error {
	switch s.Kind {
	case KindAuto, KindPair, KindSingle, "":
	case KindArray:
		if s.Capsules < 2 || s.Capsules > 8 {
			return fmt.Errorf("array of %d capsules: want 2 to 8", s.Capsules)
		}
		if s.SpacingMM < 10 || s.SpacingMM > 300 {
			return fmt.Errorf("array capsule spacing %g mm: want 10 to 300 mm (measure between neighbouring capsules)", s.SpacingMM)
		}
		if s.Layout != "linear" && s.Layout != "ring" && s.Layout != "" {
			return fmt.Errorf("array layout %q: want linear or ring", s.Layout)
		}
	default:
		return fmt.Errorf("microphones %q: want auto, pair, array or single", s.Kind)
	}
	switch s.Clinician {
	case "", ClinicianFirst, ClinicianLeft, ClinicianRight:
		return nil
	}
	return fmt.Errorf("clinician %q: want first, left or right", s.Clinician)
}

// Resolve is the set-up a stream of nch channels actually gets: auto becomes single or
// pair by channel count; an array whose device delivers a different number of channels
// than it has capsules, or a pair that is not two channels, falls back to a single
// capsule on the mix (and says why), so a misconfigured room still gets voice
// clustering rather than wrong directions.
func (s Setup) Resolve(nch int) (Setup, string) {
	if s.Layout == "" {
		s.Layout = "linear"
	}
	kind := s.Kind
	if kind == "" || kind == KindAuto {
		kind = KindSingle
		if nch == 2 {
			kind = KindPair
		}
	}
	var why string
	switch {
	case kind == KindArray && nch != s.Capsules:
		why = fmt.Sprintf("the array has %d capsules but the audio has %d channels: attributing speakers by voice on the mix instead", s.Capsules, nch)
		kind = KindSingle
	case kind == KindPair && nch != 2:
		why = fmt.Sprintf("a microphone pair needs 2 channels, the audio has %d: attributing speakers by voice on the mix instead", nch)
		kind = KindSingle
	}
	s.Kind = kind
	switch {
	case kind == KindSingle:
		s.Clinician = ClinicianFirst
	case s.Clinician == "" && kind == KindPair:
		s.Clinician = ClinicianLeft
	case s.Clinician == "":
		s.Clinician = ClinicianFirst
	}
	return s, why
}

// Attributor attributes one stream's utterances. Attribute is called in order with each
// committed utterance (commit true: it may learn from it) and with provisional snapshots
// (commit false: it only labels); it returns who spoke when and, for a committed
// utterance, where the floor passed between them without a pause (TurnCuts) when the
// utterances were not already cut there. Not safe for concurrent use.
type Attributor struct {
	l labeller
	// turns: an array or one microphone; a pair's utterances are cut at turns by the
	// segmenter already (channel dominance).
	turns bool
}

type labeller interface {
	attribute(u domain.Utterance, commit bool) []domain.SpeakerSpan
}

// Attribute labels u (see Attributor).
func (a *Attributor) Attribute(u domain.Utterance, commit bool) ([]domain.SpeakerSpan, []float64) {
	spans := a.l.attribute(u, commit)
	if !a.turns || !u.Final {
		return spans, nil
	}
	return spans, TurnCuts(spans, u.Interval)
}

// New makes the attributor for a stream of nch channels with this set-up (resolved).
func New(s Setup, nch int) *Attributor {
	s, _ = s.Resolve(nch)
	switch s.Kind {
	case KindPair:
		return &Attributor{l: newPair(s)}
	case KindArray:
		return &Attributor{l: newArray(s), turns: true}
	}
	return &Attributor{l: newVoices(), turns: true}
}

type setupKey struct{}

// WithSetup attaches a stream's own microphone set-up (a room agent announces its own)
// to ctx; it overrides the configured one for streams transcribed under ctx.
func WithSetup(ctx context.Context, s Setup) context.Context {
	return context.WithValue(ctx, setupKey{}, s)
}

// SetupFrom is the set-up attached by WithSetup, if any.
func SetupFrom(ctx context.Context) (Setup, bool) {
	s, ok := ctx.Value(setupKey{}).(Setup)
	return s, ok
}

// MinShare is the share of a segment's attributed time its speaker needs; below it the
// segment is flagged as overlapping speech (speaker uncertain).
const MinShare = 0.7

// Decide gives the stretch [from, to) of the stream its speaker from spans: the speaker
// with the most attributed time there, flagged uncertain (overlap) when that is under
// MinShare of it. No attributed time at all is unknown.
func Decide(spans []domain.SpeakerSpan, from, to float64) (domain.Speaker, bool) {
	var c, p float64
	for _, s := range spans {
		ov := min(s.End, to) - max(s.Start, from)
		if ov <= 0 {
			continue
		}
		switch s.Speaker {
		case domain.SpeakerClinician:
			c += ov
		case domain.SpeakerPatient:
			p += ov
		}
	}
	total := c + p
	if total <= 0 {
		return domain.SpeakerUnknown, false
	}
	if p > c {
		return domain.SpeakerPatient, p/total < MinShare
	}
	return domain.SpeakerClinician, c/total < MinShare
}

// spanner collects per-frame labels into spans on the stream's timeline, merging
// neighbours with the same speaker. Unknown frames make no span.
type spanner struct {
	start float64 // the utterance's start, seconds
	out   []domain.SpeakerSpan
}

// add labels samples [from, to) of the utterance.
func (b *spanner) add(from, to int, sp domain.Speaker) {
	if sp != domain.SpeakerClinician && sp != domain.SpeakerPatient || to <= from {
		return
	}
	s, e := b.start+float64(from)/domain.SampleRate, b.start+float64(to)/domain.SampleRate
	if n := len(b.out); n > 0 && b.out[n-1].Speaker == sp && s-b.out[n-1].End < 1e-9 {
		b.out[n-1].End = max(b.out[n-1].End, e)
		return
	}
	b.out = append(b.out, domain.SpeakerSpan{Interval: domain.Interval{Start: s, End: e}, Speaker: sp})
}

// TurnMin is how long a new speaker must hold the floor for their speech to become a
// turn of its own (see TurnCuts).
const TurnMin = 0.4

// TurnCuts are the times inside iv where the floor passes from one speaker to the other
// for at least TurnMin of attributed speech: midway between the last span of one and
// the first of the other. Decoding each turn on its own keeps a transcript segment to
// one speaker when no pause separated them.
func TurnCuts(spans []domain.SpeakerSpan, iv domain.Interval) []float64 {
	var cuts []float64
	cur := domain.SpeakerUnknown
	var curEnd, chStart, chHeld float64 // the current speaker's last end; the challenger's run
	for _, s := range spans {
		if s.End <= iv.Start || s.Start >= iv.End {
			continue
		}
		switch {
		case cur == domain.SpeakerUnknown || s.Speaker == cur:
			cur, curEnd, chHeld = s.Speaker, s.End, 0
		default:
			if chHeld == 0 {
				chStart = s.Start
			}
			chHeld += s.End - s.Start
			if chHeld >= TurnMin {
				if c := (curEnd + chStart) / 2; c > iv.Start+0.3 && c < iv.End-0.3 {
					cuts = append(cuts, c)
				}
				cur, curEnd, chHeld = s.Speaker, s.End, 0
			}
		}
	}
	return cuts
}
