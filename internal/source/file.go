package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"scribe/internal/audio"
	"scribe/internal/domain"
)

// File streams a WAV recording at 16 kHz as fast as it can be read, decoding and
// resampling one block at a time: a recording of any length takes bounded memory
// (file transcription). It is not safe for concurrent Reads.
type File struct {
	d     *audio.Reader
	rs    []*audio.Resampler // one per channel: each keeps its own filter history
	block int                // frames per read, at the file's rate
	ended bool

	closed chan struct{}
	once   sync.Once
}

// NewFile reads the WAV headers from r and returns a source yielding about chunk of audio
// per Read (at least one block of the file).
func NewFile(r io.Reader, chunk time.Duration) (*File, error) {
	d, err := audio.NewReader(r)
	if err != nil {
		return nil, err
	}
	f := &File{d: d, block: max(1, int(chunk.Seconds()*float64(d.Rate()))), closed: make(chan struct{})}
	for range d.Channels() {
		f.rs = append(f.rs, audio.NewResampler(d.Rate(), domain.SampleRate))
	}
	return f, nil
}

// Channels is the recording's channel count.
func (f *File) Channels() int { return f.d.Channels() }

// Seconds is how much of the recording has been read.
func (f *File) Seconds() float64 { return float64(f.d.Frames()) / float64(f.d.Rate()) }

// Read returns the next chunk at 16 kHz, io.EOF after the last one, or the file's error
// (a truncated file, a read error).
func (f *File) Read(ctx context.Context) ([][]float32, error) {
	for {
		select {
		case <-f.closed:
			return nil, io.EOF
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if f.ended {
			return nil, io.EOF
		}
		in, err := f.d.Read(f.block)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("source: %w", err)
		}
		out := make([][]float32, len(f.rs))
		for c, rs := range f.rs {
			if len(in) > 0 {
				out[c] = rs.Process(in[c])
			}
			if err != nil { // io.EOF: what the filter still holds
				out[c] = append(out[c], rs.Flush()...)
			}
		}
		f.ended = err != nil
		if len(out[0]) > 0 {
			return out, nil
		}
	}
}

// Close ends the stream: the next Read returns io.EOF.
func (f *File) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}
