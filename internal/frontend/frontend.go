// Package frontend is the one read → clean → VAD loop every live stream runs, on the
// gateway (internal/pipeline) and on a room agent's box (internal/agent): audio is read
// from a source, each channel is cleaned, and the Silero segmenter turns the mono mix into
// utterances. Only what the segmenter returns — speech with its padding — goes on.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"

	"scribe/internal/domain"
	"scribe/internal/vad"
)

// Cleaner cleans one channel of live audio (high-pass, noise suppression, gain). Output
// has the same length as input.
type Cleaner interface {
	Process(in []float32) []float32
}

// Config says how a stream's front end is built.
type Config struct {
	VAD vad.Config
	// NewScorer gives each stream its own VAD (Silero keeps LSTM state per stream) and a
	// function releasing it.
	NewScorer func() (vad.Scorer, func(), error)
	// NewCleaner makes one channel's clean-up chain; nil passes audio through.
	NewCleaner func() Cleaner
}

// ErrCapture wraps a failure to read the audio source; ErrVAD a failure of the VAD.
var (
	ErrCapture = errors.New("audio capture failed")
	ErrVAD     = errors.New("VAD failed")
)

// Frontend is one stream's clean-up chains and segmenter.
type Frontend struct {
	seg      *vad.Segmenter
	cleaners []Cleaner
	release  func()
	read     int64 // samples per channel read so far
}

// New builds a front end for a stream of nch channels. Close releases its VAD.
func New(cfg Config, nch int) (*Frontend, error) {
	if cfg.NewScorer == nil {
		return nil, errors.New("frontend: a VAD is required")
	}
	scorer, release, err := cfg.NewScorer()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVAD, err)
	}
	seg, err := vad.New(cfg.VAD, scorer, nch)
	if err != nil {
		release()
		return nil, err
	}
	f := &Frontend{seg: seg, release: release}
	if cfg.NewCleaner != nil {
		for range nch {
			f.cleaners = append(f.cleaners, cfg.NewCleaner())
		}
	}
	return f, nil
}

// Close releases the VAD.
func (f *Frontend) Close() { f.release() }

// Flush finishes the utterance in progress, if any, and gives it to sink: what was said
// up to the end of the stream is kept, however the stream ended.
func (f *Frontend) Flush(sink func([]domain.Utterance, Position) error) error {
	us, err := f.seg.Flush()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVAD, err)
	}
	return sink(us, Position{Read: f.read})
}

// Position is where the stream has got to: samples per channel read so far, and how many
// of them the segmenter still holds (they may yet become speech, so nothing before
// Read−Held can).
type Position struct {
	Read int64
	Held int
}

// Run reads src until it ends (io.EOF), ctx ends or sink fails. Each chunk is cleaned and
// segmented, and sink gets what the segmenter returned (possibly nothing) and the
// position. At the end of the source the utterance in progress is finished, given to sink,
// and Run returns nil. Errors wrap ErrCapture, ErrVAD, or are sink's own.
func (f *Frontend) Run(ctx context.Context, src domain.AudioSource, sink func([]domain.Utterance, Position) error) error {
	nch := f.seg.Channels()
	for {
		chunk, err := src.Read(ctx)
		if errors.Is(err, io.EOF) {
			return f.Flush(sink)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", ErrCapture, err)
		}
		if len(chunk) != nch || len(chunk[0]) == 0 {
			continue
		}
		for i, c := range f.cleaners {
			chunk[i] = c.Process(chunk[i])
		}
		f.read += int64(len(chunk[0]))
		us, err := f.seg.Push(domain.MixDown(chunk), chunk)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrVAD, err)
		}
		if err := sink(us, Position{Read: f.read, Held: f.seg.Buffered()}); err != nil {
			return err
		}
	}
}
