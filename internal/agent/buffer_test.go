package agent

import (
	"context"
	"errors"
	"testing"

	"scribe/internal/agent/wire"
)

func audioFrame(start, n int) wire.Frame {
	return wire.Frame{Kind: wire.KindAudio, Run: 1, Start: int64(start), Channels: [][]float32{make([]float32, n)}}
}

func TestBufferBound(t *testing.T) {
	b := NewBuffer(1000)
	for i := range 4 {
		if _, err := b.Add(audioFrame(i*250, 250)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, err := b.Add(audioFrame(1000, 1)); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("over the bound: %v", err)
	}
	// Marks and the end of a run carry no audio and still fit.
	if _, err := b.Add(wire.Frame{Kind: wire.KindEnd, Run: 1}); err != nil {
		t.Fatal(err)
	}
	b.Ack(1) // two frames delivered: room for 500 samples again
	if s, n := b.Held(); s != 500 || n != 3 {
		t.Fatalf("after ack: %d samples in %d frames", s, n)
	}
	if _, err := b.Add(audioFrame(1000, 500)); err != nil {
		t.Fatalf("after ack: %v", err)
	}
}

// After a reconnect the buffer resends from the first unacknowledged frame, in order;
// together with the gateway's Dedup nothing is lost or doubled.
func TestBufferResendAndDedup(t *testing.T) {
	ctx := context.Background()
	b := NewBuffer(1 << 20)
	for i := range 10 {
		b.Add(audioFrame(i*100, 100))
	}
	var gw wire.Dedup
	var delivered []uint64
	deliver := func(f wire.Frame) {
		if gw.Accept(f.Seq) {
			delivered = append(delivered, f.Seq)
		}
	}
	// First connection: six frames written, the gateway gets five and acks three, then the
	// connection drops.
	for i := range 6 {
		f, err := b.Next(ctx)
		if err != nil || f.Seq != uint64(i) {
			t.Fatalf("next %d: %v %v", i, f.Seq, err)
		}
		if i < 5 {
			deliver(f)
		}
	}
	b.Ack(2)
	// Silence marks pile up while away: only the newest is kept.
	b.Add(wire.Frame{Kind: wire.KindMark, Run: 1, Start: 2000})
	b.Add(wire.Frame{Kind: wire.KindMark, Run: 1, Start: 3000})
	b.Rewind()
	var resent []uint64
	for {
		f, ok := b.TryNext()
		if !ok {
			break
		}
		resent = append(resent, f.Seq)
		if f.Kind == wire.KindMark && f.Start != 3000 {
			t.Fatalf("mark not coalesced: %d", f.Start)
		}
		deliver(f)
	}
	if resent[0] != 3 || len(resent) != 8 {
		t.Fatalf("resent %v, want 3..10", resent)
	}
	if len(delivered) != 11 || gw.Duplicates != 2 || gw.Gaps != 0 {
		t.Fatalf("delivered %v, duplicates %d, gaps %d", delivered, gw.Duplicates, gw.Gaps)
	}
	for i, s := range delivered {
		if s != uint64(i) {
			t.Fatalf("delivered out of order or twice: %v", delivered)
		}
	}
	b.Ack(10)
	if s, n := b.Held(); s != 0 || n != 0 {
		t.Fatalf("after the final ack: %d samples, %d frames", s, n)
	}
}
