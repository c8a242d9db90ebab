package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func FuzzDecode(f *testing.F) {
	chans := [][]float64{ramp(9, 0.9), ramp(9, -0.3)}
	for _, s := range []wavSpec{
		{tag: formatPCM, bits: 8, rate: 8000, chans: chans[:1]},
		{tag: formatPCM, bits: 16, rate: 16000, chans: chans, extraChunk: true},
		{tag: formatPCM, bits: 24, rate: 44100, chans: chans},
		{tag: formatPCM, bits: 32, rate: 48000, chans: chans[:1], extraChunk: true},
		{tag: formatFloat, bits: 32, rate: 16000, chans: chans},
		{tag: formatFloat, bits: 64, rate: 16000, chans: chans[:1]},
		{tag: formatExtensible, subTag: formatPCM, bits: 16, rate: 16000, chans: chans},
		{tag: formatExtensible, subTag: formatFloat, bits: 32, rate: 96000, chans: chans, extraChunk: true},
	} {
		b := buildWAV(s)
		f.Add(b)
		f.Add(b[:len(b)-3])    // truncated data
		f.Add(b[:len(b)/2])    // cut in the header or data
		huge := bytes.Clone(b) // data size claims ~4 GB
		i := bytes.Index(huge, []byte("data"))
		binary.LittleEndian.PutUint32(huge[i+4:], 0xFFFFFFF0)
		f.Add(huge)
	}
	f.Add([]byte{})
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \xff\xff\xff\xff"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00abcd"))
	f.Fuzz(func(t *testing.T, data []byte) {
		clip, err := Decode(bytes.NewReader(data))
		if err != nil {
			known := false
			for _, e := range []error{ErrNotWAV, ErrUnsupported, ErrInvalid, ErrTruncated, ErrTooLong} {
				known = known || errors.Is(err, e)
			}
			if !known {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if clip != nil && !errors.Is(err, ErrTruncated) {
				t.Fatalf("clip returned with non-truncation error %v", err)
			}
		}
		if clip == nil {
			return
		}
		if clip.Rate < MinRate || len(clip.Channels) == 0 {
			t.Fatalf("clip rate %d with %d channels", clip.Rate, len(clip.Channels))
		}
		// Every sample comes from the input: no more samples than bytes.
		if clip.Frames()*len(clip.Channels) > len(data) {
			t.Fatalf("%d frames × %d channels from %d bytes", clip.Frames(), len(clip.Channels), len(data))
		}
		for _, c := range clip.Channels {
			if len(c) != clip.Frames() {
				t.Fatal("channels differ in length")
			}
			for _, v := range c {
				if !(v >= -1 && v <= 1) {
					t.Fatalf("sample %v out of [-1, 1]", v)
				}
			}
		}
	})
}

func FuzzResample(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint32(48000), uint32(16000), uint16(3))
	f.Add([]byte{0x7f, 0x80, 0, 0xff}, uint32(44100), uint32(16000), uint16(1))
	f.Add([]byte{}, uint32(8000), uint32(16000), uint16(0))
	f.Add([]byte{9, 9, 9}, uint32(16000), uint32(16000), uint16(2))
	f.Add([]byte{1}, uint32(0), uint32(16000), uint16(2))
	f.Add([]byte{1, 2}, uint32(44099), uint32(16001), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, from, to uint32, chunk uint16) {
		// Keep rates within what a fuzz iteration can afford; validity checks are part
		// of what is exercised (e.g. 500 Hz is rejected).
		from, to = from%200000, to%200000
		in := make([]float32, len(data))
		for i, b := range data {
			in[i] = float32(int8(b)) / 128
		}
		out := Resample(in, int(from), int(to))
		if !validRates(int(from), int(to)) {
			if out != nil {
				t.Fatalf("invalid rates %d→%d gave output", from, to)
			}
			return
		}
		if want := outputLen(int64(len(in)), int(to), int(from)); from != to && int64(len(out)) != want {
			t.Fatalf("%d→%d: %d samples out of %d, want %d", from, to, len(out), len(in), want)
		}
		for _, v := range out {
			// A windowed sinc overshoots by a bounded amount; anything huge or NaN is a bug.
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 2 {
				t.Fatalf("%d→%d: output sample %v", from, to, v)
			}
		}
		r := NewResampler(int(from), int(to))
		var got []float32
		step := int(chunk%64) + 1
		for i := 0; i < len(in); i += step {
			got = append(got, r.Process(in[i:min(i+step, len(in))])...)
		}
		got = append(got, r.Flush()...)
		if len(got) != len(out) {
			t.Fatalf("%d→%d: streaming %d samples, one-shot %d", from, to, len(got), len(out))
		}
		for i := range got {
			if got[i] != out[i] {
				t.Fatalf("%d→%d: sample %d differs", from, to, i)
			}
		}
	})
}
