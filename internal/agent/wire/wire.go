// Package wire is the room agent ↔ gateway protocol (docs/agent-protocol.md): the
// binary frames an agent sends (speech audio, timeline marks, end of a recording run),
// the JSON control messages both sides send, and the gateway's bookkeeping that keeps a
// stream resent after a network cut free of gaps and duplicates. Pure Go, no I/O.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"scribe/internal/diarize"
	"scribe/internal/domain"
)

// Version is the protocol version an agent announces in its hello.
const Version = 1

// Path is where the gateway serves the agent websocket.
const Path = "/api/agent/ws"

// CloseRevoked is the websocket close code the gateway uses when an administrator
// revokes the agent: the agent stops and does not reconnect.
const CloseRevoked = 4001

// Frame kinds.
const (
	KindAudio byte = 1 // speech samples starting at Start on the run's timeline
	KindMark  byte = 2 // the timeline reached Start with no speech not yet sent before it
	KindEnd   byte = 3 // the run is over at the agent: nothing more will come for it
)

// HeaderSize is the fixed part of a binary frame.
const HeaderSize = 1 + 1 + 4 + 8 + 8 + 1 + 4

// MaxFrameSamples bounds the samples per channel in one frame (1 s).
const MaxFrameSamples = domain.SampleRate

// MaxChannels bounds the channels of a frame.
const MaxChannels = 8

// Frame is one sequenced item of an agent's stream. Seq numbers every frame an agent
// process sends, across runs, from 0; Start is a sample number on the run's timeline
// (0 = the moment the run began recording).
type Frame struct {
	Kind     byte
	Run      uint32
	Seq      uint64
	Start    int64
	Channels [][]float32 // KindAudio only; equal lengths
}

// Samples is the frame's length per channel.
func (f Frame) Samples() int {
	if len(f.Channels) == 0 {
		return 0
	}
	return len(f.Channels[0])
}

// Encode lays the frame out as: version, kind, run (u32), seq (u64), start (u64),
// channels (u8), samples per channel (u32), then float32 samples channel after channel,
// all little-endian.
func (f Frame) Encode() []byte {
	n, nch := f.Samples(), len(f.Channels)
	b := make([]byte, HeaderSize+4*n*nch)
	b[0], b[1] = Version, f.Kind
	binary.LittleEndian.PutUint32(b[2:], f.Run)
	binary.LittleEndian.PutUint64(b[6:], f.Seq)
	binary.LittleEndian.PutUint64(b[14:], uint64(f.Start))
	b[22] = byte(nch)
	binary.LittleEndian.PutUint32(b[23:], uint32(n))
	o := HeaderSize
	for _, c := range f.Channels {
		for _, v := range c {
			binary.LittleEndian.PutUint32(b[o:], math.Float32bits(v))
			o += 4
		}
	}
	return b
}

// Decode parses a binary frame, refusing anything malformed.
func Decode(b []byte) (Frame, error) {
	if len(b) < HeaderSize {
		return Frame{}, fmt.Errorf("agent frame of %d bytes is shorter than its %d-byte header", len(b), HeaderSize)
	}
	if b[0] != Version {
		return Frame{}, fmt.Errorf("agent frame version %d, this gateway speaks %d", b[0], Version)
	}
	f := Frame{Kind: b[1], Run: binary.LittleEndian.Uint32(b[2:]), Seq: binary.LittleEndian.Uint64(b[6:])}
	start := binary.LittleEndian.Uint64(b[14:])
	if start > math.MaxInt64/2 {
		return Frame{}, errors.New("agent frame start sample out of range")
	}
	f.Start = int64(start)
	nch, n := int(b[22]), int(binary.LittleEndian.Uint32(b[23:]))
	switch f.Kind {
	case KindAudio:
		if nch < 1 || nch > MaxChannels || n < 1 || n > MaxFrameSamples {
			return Frame{}, fmt.Errorf("agent audio frame with %d channels of %d samples is out of bounds", nch, n)
		}
	case KindMark, KindEnd:
		if nch != 0 || n != 0 {
			return Frame{}, errors.New("agent mark or end frame carries samples")
		}
	default:
		return Frame{}, fmt.Errorf("unknown agent frame kind %d", f.Kind)
	}
	if len(b) != HeaderSize+4*n*nch {
		return Frame{}, fmt.Errorf("agent frame is %d bytes, its header announces %d", len(b), HeaderSize+4*n*nch)
	}
	o := HeaderSize
	for range nch {
		c := make([]float32, n)
		for i := range c {
			v := math.Float32frombits(binary.LittleEndian.Uint32(b[o:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return Frame{}, errors.New("agent frame holds a non-finite sample")
			}
			c[i] = max(-1, min(1, v))
			o += 4
		}
		f.Channels = append(f.Channels, c)
	}
	return f, nil
}

// Message is a JSON control message, in either direction.
//
// Agent → gateway: "hello" (Instance, Channels, BufferSeconds, Version, Microphones), "button" (Ago;
// Run when the press paused run Run at the agent while the gateway was unreachable).
// Gateway → agent: "record" (Run), "idle" (Run, Reason), "ack" (Seq), "notice" (Message),
// "error" (Message, just before the gateway closes the connection).
type Message struct {
	Type          string  `json:"type"`
	Run           uint32  `json:"run,omitempty"`
	Seq           *uint64 `json:"seq,omitempty"`
	Instance      string  `json:"instance,omitempty"`
	Channels      int     `json:"channels,omitempty"`
	BufferSeconds float64 `json:"buffer_seconds,omitempty"`
	Version       int     `json:"version,omitempty"`
	Reason        string  `json:"reason,omitempty"`
	Message       string  `json:"message,omitempty"`
	// Ago is how long before sending the button was pressed (seconds; a press made while
	// the gateway was unreachable is sent after the reconnect).
	Ago float64 `json:"ago_seconds,omitempty"`
	// Microphones is the room box's microphone set-up (hello; absent from older agents):
	// the gateway attributes the room's speakers by it.
	Microphones *diarize.Setup `json:"microphones,omitempty"`
}

// Dedup is the gateway's view of one agent process's sequence numbers: each frame is
// accepted once, in order; a frame resent after a reconnect is recognised and dropped.
type Dedup struct {
	next       uint64 // the next sequence number expected
	started    bool
	Accepted   int64
	Duplicates int64
	Gaps       int64 // frames that never arrived (only after an agent's buffer overflowed)
}

// Accept reports whether a frame with sequence number seq is new. A frame further
// ahead than expected is accepted and the frames skipped are counted as a gap.
// The first frame seen sets the start: a gateway restarted while the agent held frames
// receives them from the agent's first unacknowledged one.
func (d *Dedup) Accept(seq uint64) bool {
	if !d.started {
		d.started, d.next = true, seq
	}
	if seq < d.next {
		d.Duplicates++
		return false
	}
	if seq > d.next {
		d.Gaps += int64(seq - d.next)
	}
	d.next = seq + 1
	d.Accepted++
	return true
}

// Acked is the sequence number to acknowledge (everything up to it was accepted), and
// whether there is any.
func (d *Dedup) Acked() (uint64, bool) {
	if !d.started || d.next == 0 {
		return 0, false
	}
	return d.next - 1, true
}

// Timeline rebuilds a run's continuous audio from its speech frames: silence between
// speech becomes zeros, so every sample sits at its true time. It never moves backwards:
// samples before its position (there are none from a correct agent) are dropped.
type Timeline struct {
	Channels int
	pos      int64
}

// Pos is the next sample of the timeline.
func (t *Timeline) Pos() int64 { return t.pos }

// Add turns one frame into the chunks to feed the transcriber (at most MaxFrameSamples
// each): zeros up to the frame's start, then its samples.
func (t *Timeline) Add(f Frame) ([][][]float32, error) {
	if f.Kind == KindAudio && len(f.Channels) != t.Channels {
		return nil, fmt.Errorf("agent frame has %d channels, the run has %d", len(f.Channels), t.Channels)
	}
	var out [][][]float32
	for t.pos < f.Start {
		n := int(min(f.Start-t.pos, MaxFrameSamples))
		z := make([][]float32, t.Channels)
		for i := range z {
			z[i] = make([]float32, n)
		}
		out = append(out, z)
		t.pos += int64(n)
	}
	if f.Kind != KindAudio {
		return out, nil
	}
	skip := int(min(max(t.pos-f.Start, 0), int64(f.Samples())))
	if skip == f.Samples() {
		return out, nil
	}
	c := make([][]float32, t.Channels)
	for i := range c {
		c[i] = f.Channels[i][skip:]
	}
	t.pos += int64(f.Samples() - skip)
	return append(out, c), nil
}
