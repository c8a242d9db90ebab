package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"scribe/internal/audio"
	"scribe/internal/domain"
	"scribe/internal/source"
	"scribe/internal/store"
)

// wavConfig is a WAV room's source_config.
type wavConfig struct {
	Path  string  `json:"path"`
	Speed float64 `json:"speed,omitempty"` // overrides Config.WAVSpeed when > 0
}

// OpenWAVSource decodes a WAV file, converts it to 16 kHz, and returns a source that
// yields it in 100 ms chunks at speed times real time (1 = real time), like a microphone.
func OpenWAVSource(path string, speed float64) (domain.AudioSource, error) {
	clip, err := audio.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wav source: %w", err)
	}
	clip = clip.To16k()
	if len(clip.Channels) == 0 {
		return nil, fmt.Errorf("wav source %s: no audio channels", path)
	}
	if speed <= 0 {
		speed = 1
	}
	return source.NewClip(clip.Channels, 100*time.Millisecond, speed)
}

func (s *Server) wavFactory(_ context.Context, room store.Room) (domain.AudioSource, error) {
	var cfg wavConfig
	if err := json.Unmarshal(room.SourceConfig, &cfg); err != nil || cfg.Path == "" {
		return nil, fmt.Errorf("room %q: WAV source config needs {\"path\": ...}", room.Name)
	}
	speed := s.cfg.WAVSpeed
	if cfg.Speed > 0 {
		speed = cfg.Speed
	}
	return OpenWAVSource(cfg.Path, speed)
}

// Browser microphone audio formats (see docs/websocket-protocol.md).
const (
	FormatF32LE = "f32le"
	FormatS16LE = "s16le"
)

// MaxAudioFrameBytes bounds one binary audio frame from the browser (1 s of f32 is 64000).
const MaxAudioFrameBytes = 128 << 10

var errSourceClosed = errors.New("audio source is closed (session paused or stopped)")

// browserSource is fed by the audio websocket of a browser-microphone room.
type browserSource struct {
	ch     chan []float32
	closed chan struct{}
	once   sync.Once
}

func newBrowserSource() *browserSource {
	// 64 chunks of typically 100–250 ms: several seconds of slack before the sender is slowed.
	return &browserSource{ch: make(chan []float32, 64), closed: make(chan struct{})}
}

func (b *browserSource) Channels() int { return 1 }

func (b *browserSource) Read(ctx context.Context) ([][]float32, error) {
	select {
	case c := <-b.ch:
		return [][]float32{c}, nil
	default:
	}
	select {
	case c := <-b.ch:
		return [][]float32{c}, nil
	case <-b.closed:
		// Audio that arrived before Pause/Stop is still transcribed.
		select {
		case c := <-b.ch:
			return [][]float32{c}, nil
		default:
			return nil, io.EOF
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *browserSource) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// push hands samples to the pipeline, waiting (which slows the sender through TCP) while
// the pipeline is behind, up to a limit.
func (b *browserSource) push(ctx context.Context, samples []float32) error {
	select {
	case <-b.closed:
		return errSourceClosed
	default:
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case b.ch <- samples:
		return nil
	case <-b.closed:
		return errSourceClosed
	case <-t.C:
		return errors.New("the transcriber is more than 10 seconds behind; audio is not accepted")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// decodeAudioFrame turns one binary frame into samples, refusing anything that is not a
// whole number of samples in the announced format or holds non-finite values.
func decodeAudioFrame(format string, b []byte) ([]float32, error) {
	if len(b) == 0 {
		return nil, errors.New("empty audio frame")
	}
	switch format {
	case FormatF32LE:
		if len(b)%4 != 0 {
			return nil, fmt.Errorf("audio frame of %d bytes is not a whole number of 4-byte f32le samples", len(b))
		}
		out := make([]float32, len(b)/4)
		for i := range out {
			v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("audio frame holds a non-finite sample at %d: is it really f32le?", i)
			}
			out[i] = max(-1, min(1, v))
		}
		return out, nil
	case FormatS16LE:
		if len(b)%2 != 0 {
			return nil, fmt.Errorf("audio frame of %d bytes is not a whole number of 2-byte s16le samples", len(b))
		}
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = float32(int16(binary.LittleEndian.Uint16(b[2*i:]))) / 32768
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown audio format %q (want %s or %s)", format, FormatF32LE, FormatS16LE)
}

// countingSource counts the audio read through it, so a resumed run continues the
// session's timeline where the last one stopped.
// It also measures the input level for the recording header (review.go).
type countingSource struct {
	domain.AudioSource
	mu     sync.Mutex
	frames int64
	sumSq  float64 // since the last takeLevel
	n      int
	peak   float32
}

func (c *countingSource) Read(ctx context.Context) ([][]float32, error) {
	chans, err := c.AudioSource.Read(ctx)
	if len(chans) > 0 {
		c.mu.Lock()
		c.frames += int64(len(chans[0]))
		for _, ch := range chans {
			for _, v := range ch {
				c.sumSq += float64(v) * float64(v)
				c.peak = max(c.peak, v, -v)
			}
			c.n += len(ch)
		}
		c.mu.Unlock()
	}
	return chans, err
}

// takeLevel returns the RMS and peak of the audio read since the last call (0 if none).
func (c *countingSource) takeLevel() (rms float64, peak float32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n > 0 {
		rms = math.Sqrt(c.sumSq / float64(c.n))
	}
	peak = c.peak
	c.sumSq, c.n, c.peak = 0, 0, 0
	return rms, peak
}

func (c *countingSource) seconds() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return float64(c.frames) / domain.SampleRate
}
