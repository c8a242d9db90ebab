// Package source provides domain.AudioSource implementations that need no hardware: a
// decoded clip replayed as fast as possible (file transcription) or at real-time pace
// (demo rooms, tests and benchmarks), and a push source fed by someone else (a browser
// microphone over a websocket, a room agent).
package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"scribe/internal/domain"
)

// Clip replays 16 kHz audio in fixed chunks.
type Clip struct {
	chans [][]float32
	chunk int
	pace  float64 // 0 = as fast as possible, 1 = real time, 4 = four times real time

	mu     sync.Mutex
	pos    int
	start  time.Time
	closed chan struct{}
	once   sync.Once
}

// NewClip replays channels (16 kHz) in chunks of chunk duration at the given pace.
func NewClip(chans [][]float32, chunk time.Duration, pace float64) (*Clip, error) {
	if len(chans) == 0 {
		return nil, errors.New("source: clip has no channels")
	}
	n := int(chunk.Seconds() * domain.SampleRate)
	if n <= 0 {
		n = domain.SampleRate / 10
	}
	if pace < 0 {
		return nil, fmt.Errorf("source: pace %.2f is negative", pace)
	}
	return &Clip{chans: chans, chunk: n, pace: pace, closed: make(chan struct{})}, nil
}

// Channels is the clip's channel count.
func (c *Clip) Channels() int { return len(c.chans) }

// Read returns the next chunk, waiting until its time when paced.
func (c *Clip) Read(ctx context.Context) ([][]float32, error) {
	c.mu.Lock()
	if c.start.IsZero() {
		c.start = time.Now()
	}
	pos := c.pos
	total := len(c.chans[0])
	if pos >= total {
		c.mu.Unlock()
		return nil, io.EOF
	}
	end := min(pos+c.chunk, total)
	c.pos = end
	start := c.start
	c.mu.Unlock()

	if c.pace > 0 {
		due := start.Add(time.Duration(float64(end) / domain.SampleRate / c.pace * float64(time.Second)))
		t := time.NewTimer(time.Until(due))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, io.EOF
		}
	}
	select {
	case <-c.closed:
		return nil, io.EOF
	default:
	}
	out := make([][]float32, len(c.chans))
	for i, ch := range c.chans {
		out[i] = append([]float32(nil), ch[pos:end]...)
	}
	return out, nil
}

// Position is how many seconds have been read.
func (c *Clip) Position() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return float64(c.pos) / domain.SampleRate
}

// Close ends the replay: the next Read returns io.EOF.
func (c *Clip) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// Push is a source fed by a producer (a websocket handler, an agent connection) through
// Write. It holds at most maxBuffered seconds; a producer that outruns the pipeline gets
// ErrOverrun rather than growing memory without bound.
type Push struct {
	nch  int
	max  int
	ch   chan [][]float32
	mu   sync.Mutex
	held int
	done chan struct{}
	once sync.Once
}

// ErrOverrun is returned by Write when the buffer is full.
var ErrOverrun = errors.New("source: audio buffer full (the transcriber is not keeping up)")

// NewPush makes a push source of nch channels holding up to maxBuffered of audio.
func NewPush(nch int, maxBuffered time.Duration) *Push {
	return &Push{nch: nch, max: int(maxBuffered.Seconds() * domain.SampleRate), ch: make(chan [][]float32, 1024), done: make(chan struct{})}
}

// Channels is the channel count.
func (p *Push) Channels() int { return p.nch }

// Write queues a chunk (one slice per channel, equal lengths, 16 kHz).
func (p *Push) Write(chunk [][]float32) error {
	if len(chunk) != p.nch {
		return fmt.Errorf("source: chunk has %d channels, want %d", len(chunk), p.nch)
	}
	n := len(chunk[0])
	for _, c := range chunk {
		if len(c) != n {
			return errors.New("source: channels of a chunk differ in length")
		}
	}
	select {
	case <-p.done:
		return io.ErrClosedPipe
	default:
	}
	p.mu.Lock()
	if p.held+n > p.max {
		p.mu.Unlock()
		return ErrOverrun
	}
	p.held += n
	p.mu.Unlock()
	select {
	case p.ch <- chunk:
		return nil
	default:
		p.mu.Lock()
		p.held -= n
		p.mu.Unlock()
		return ErrOverrun
	}
}

// Read returns the next chunk, or io.EOF once closed and drained.
func (p *Push) Read(ctx context.Context) ([][]float32, error) {
	select {
	case c := <-p.ch:
		p.release(c)
		return c, nil
	default:
	}
	select {
	case c := <-p.ch:
		p.release(c)
		return c, nil
	case <-p.done:
		select {
		case c := <-p.ch:
			p.release(c)
			return c, nil
		default:
			return nil, io.EOF
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Push) release(c [][]float32) {
	p.mu.Lock()
	p.held -= len(c[0])
	p.mu.Unlock()
}

// Close ends the stream: what was written is still read, then io.EOF.
func (p *Push) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}
