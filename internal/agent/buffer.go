package agent

import (
	"context"
	"errors"
	"sync"

	"scribe/internal/agent/wire"
)

// ErrBufferFull is returned by Buffer.Add when the frame would take the audio held for
// the gateway past the bound.
var ErrBufferFull = errors.New("agent: the unacknowledged audio buffer is full")

// maxItems bounds the frames held whatever their size (marks carry no audio).
const maxItems = 100000

// Buffer holds every frame the gateway has not acknowledged yet, in memory only, up to a
// bound in samples of audio. Frames are numbered as they are added; after a reconnect
// Rewind makes Next start again from the first unacknowledged frame, and the gateway
// drops what it had already received by sequence number.
type Buffer struct {
	mu      sync.Mutex
	max     int64 // samples per channel
	held    int64
	items   []wire.Frame // unacknowledged, in sequence order
	sent    int          // items[:sent] were written on the current connection
	nextSeq uint64
	wake    chan struct{}
}

// NewBuffer holds up to maxSamples samples (per channel) of unacknowledged audio.
func NewBuffer(maxSamples int64) *Buffer {
	return &Buffer{max: maxSamples, wake: make(chan struct{}, 1)}
}

// Add numbers f and queues it. Audio beyond the bound gives ErrBufferFull and is not
// queued. A mark replaces a previous mark that was not sent yet, so a long outage
// holds one mark, not one per second.
func (b *Buffer) Add(f wire.Frame) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := int64(f.Samples())
	if f.Kind == wire.KindAudio && b.held+n > b.max {
		return 0, ErrBufferFull
	}
	if f.Kind == wire.KindMark && len(b.items) > b.sent {
		if last := &b.items[len(b.items)-1]; last.Kind == wire.KindMark && last.Run == f.Run {
			last.Start = max(last.Start, f.Start)
			return last.Seq, nil
		}
	}
	if len(b.items) >= maxItems {
		return 0, ErrBufferFull
	}
	f.Seq = b.nextSeq
	b.nextSeq++
	b.items = append(b.items, f)
	b.held += n
	b.signal()
	return f.Seq, nil
}

func (b *Buffer) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Ack drops every frame up to and including seq: the gateway has them.
func (b *Buffer) Ack(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := 0
	for k < len(b.items) && b.items[k].Seq <= seq {
		b.held -= int64(b.items[k].Samples())
		k++
	}
	b.items = append(b.items[:0], b.items[k:]...)
	b.sent = max(b.sent-k, 0)
}

// Rewind starts a new connection: Next returns the first unacknowledged frame again.
func (b *Buffer) Rewind() {
	b.mu.Lock()
	b.sent = 0
	b.mu.Unlock()
	b.signal()
}

// TryNext returns a frame not yet sent on this connection, if any, and marks it sent.
func (b *Buffer) TryNext() (wire.Frame, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sent < len(b.items) {
		b.sent++
		return b.items[b.sent-1], true
	}
	return wire.Frame{}, false
}

// Wake is signalled when frames are added or the buffer is rewound.
func (b *Buffer) Wake() <-chan struct{} { return b.wake }

// Next waits for a frame not yet sent on this connection and marks it sent.
func (b *Buffer) Next(ctx context.Context) (wire.Frame, error) {
	for {
		if f, ok := b.TryNext(); ok {
			return f, nil
		}
		select {
		case <-b.wake:
		case <-ctx.Done():
			return wire.Frame{}, ctx.Err()
		}
	}
}

// Held is the audio (samples per channel) and the number of frames not yet acknowledged.
func (b *Buffer) Held() (samples int64, frames int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held, len(b.items)
}
