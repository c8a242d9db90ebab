package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"scribe/internal/domain"
)

// fakeTranscriber stands in for the whisper pipeline in this package's tests. It is
// deterministic and derived from the audio it reads: every segSeconds of audio becomes
// one committed segment whose text names the tone's frequency (from zero crossings), so
// a test can tell which room's audio a segment came from. Before committing it emits a
// provisional event after each chunk, like the real pipeline's growing utterance.
type fakeTranscriber struct {
	segSeconds float64
}

func (f fakeTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	per := int(f.segSeconds * domain.SampleRate)
	var buf []float32
	utt := 0
	start := offset
	commit := func(n int) {
		chunk := buf[:n]
		sp := domain.SpeakerClinician
		if utt%2 == 1 {
			sp = domain.SpeakerPatient
		}
		end := start + float64(n)/domain.SampleRate
		emit(domain.LiveEvent{Kind: domain.EventCommitted, Utterance: utt, Segment: domain.Segment{
			Start: start, End: end, Speaker: sp, Text: fmt.Sprintf("segment %d (%s) tone %d Hz", utt, sp, toneHz(chunk)),
		}})
		buf = append(buf[:0:0], buf[n:]...)
		start = end
		utt++
	}
	for {
		chans, err := src.Read(ctx)
		if len(chans) > 0 {
			buf = append(buf, domain.MixDown(chans)...)
			for len(buf) >= per {
				commit(per)
			}
			if len(buf) > 0 {
				emit(domain.LiveEvent{Kind: domain.EventProvisional, Utterance: utt, Segment: domain.Segment{
					Start: start, End: start + float64(len(buf))/domain.SampleRate, Speaker: domain.SpeakerUnknown,
					Text: fmt.Sprintf("segment %d so far", utt)}})
			}
		}
		if errors.Is(err, io.EOF) {
			if len(buf) > 0 {
				commit(len(buf))
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// toneHz estimates a pure tone's frequency from its zero crossings, rounded to 10 Hz.
func toneHz(x []float32) int {
	if len(x) < 2 {
		return 0
	}
	n := 0
	for i := 1; i < len(x); i++ {
		if (x[i-1] < 0) != (x[i] < 0) {
			n++
		}
	}
	hz := float64(n) / 2 / (float64(len(x)) / domain.SampleRate)
	return int(math.Round(hz/10) * 10)
}
