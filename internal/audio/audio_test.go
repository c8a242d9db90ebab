package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// wavSpec describes a synthetic WAV file for the tests.
type wavSpec struct {
	tag        uint16 // format tag written in the fmt chunk
	subTag     uint16 // for WAVE_FORMAT_EXTENSIBLE
	bits       int
	rate       int
	chans      [][]float64
	extraChunk bool // put an odd-sized LIST chunk before fmt and a junk chunk before data
}

// encodeSample is written independently of the decoder: full-scale values map to the
// integer extremes the way common tools write them.
func encodeSample(b *bytes.Buffer, v float64, tag uint16, bits int) {
	switch {
	case tag == formatFloat && bits == 32:
		binary.Write(b, binary.LittleEndian, float32(v))
	case tag == formatFloat && bits == 64:
		binary.Write(b, binary.LittleEndian, v)
	case bits == 8:
		b.WriteByte(byte(int(math.Round(v*127)) + 128))
	case bits == 16:
		binary.Write(b, binary.LittleEndian, int16(math.Round(v*32767)))
	case bits == 24:
		x := int32(math.Round(v * 8388607))
		b.Write([]byte{byte(x), byte(x >> 8), byte(x >> 16)})
	case bits == 32:
		binary.Write(b, binary.LittleEndian, int32(math.Round(v*2147483647)))
	}
}

func buildWAV(s wavSpec) []byte {
	nch := len(s.chans)
	var data bytes.Buffer
	plainTag := s.tag
	if s.tag == formatExtensible {
		plainTag = s.subTag
	}
	for i := range s.chans[0] {
		for c := range nch {
			encodeSample(&data, s.chans[c][i], plainTag, s.bits)
		}
	}
	var fmtc bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&fmtc, le, s.tag)
	binary.Write(&fmtc, le, uint16(nch))
	binary.Write(&fmtc, le, uint32(s.rate))
	binary.Write(&fmtc, le, uint32(s.rate*nch*s.bits/8))
	binary.Write(&fmtc, le, uint16(nch*s.bits/8))
	binary.Write(&fmtc, le, uint16(s.bits))
	if s.tag == formatExtensible {
		binary.Write(&fmtc, le, uint16(22))
		binary.Write(&fmtc, le, uint16(s.bits))
		binary.Write(&fmtc, le, uint32(3))
		binary.Write(&fmtc, le, s.subTag)
		fmtc.Write(extensibleGUIDTail)
	}
	var body bytes.Buffer
	body.WriteString("WAVE")
	chunk := func(id string, p []byte) {
		body.WriteString(id)
		binary.Write(&body, le, uint32(len(p)))
		body.Write(p)
		if len(p)%2 == 1 {
			body.WriteByte(0)
		}
	}
	if s.extraChunk {
		chunk("LIST", []byte("INFOISFT\x03\x00\x00\x00ab\x00"))
	}
	chunk("fmt ", fmtc.Bytes())
	if s.extraChunk {
		chunk("junk", []byte{1, 2, 3})
	}
	chunk("data", data.Bytes())
	var out bytes.Buffer
	out.WriteString("RIFF")
	binary.Write(&out, le, uint32(body.Len()))
	out.Write(body.Bytes())
	return out.Bytes()
}

func ramp(n int, scale float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = scale * (2*float64(i)/float64(n-1) - 1)
	}
	return out
}

func TestDecodeFormats(t *testing.T) {
	left, right, third := ramp(101, 1), ramp(101, -0.5), ramp(101, 0.25)
	cases := []struct {
		name   string
		tag    uint16
		sub    uint16
		bits   int
		tol    float64
		chans  [][]float64
		extras bool
	}{
		{"pcm8 mono", formatPCM, 0, 8, 2.0 / 128, [][]float64{left}, false},
		{"pcm16 stereo", formatPCM, 0, 16, 2.0 / 32768, [][]float64{left, right}, true},
		{"pcm24 stereo", formatPCM, 0, 24, 1e-6, [][]float64{left, right}, false},
		{"pcm32 mono", formatPCM, 0, 32, 1e-7, [][]float64{left}, true},
		{"float32 three channels", formatFloat, 0, 32, 1e-7, [][]float64{left, right, third}, false},
		{"float64 stereo", formatFloat, 0, 64, 1e-7, [][]float64{left, right}, true},
		{"extensible pcm24", formatExtensible, formatPCM, 24, 1e-6, [][]float64{left, right}, true},
		{"extensible float32", formatExtensible, formatFloat, 32, 1e-7, [][]float64{left}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := buildWAV(wavSpec{tag: tc.tag, subTag: tc.sub, bits: tc.bits, rate: 22050, chans: tc.chans, extraChunk: tc.extras})
			clip, err := Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if clip.Rate != 22050 || len(clip.Channels) != len(tc.chans) {
				t.Fatalf("rate %d, %d channels", clip.Rate, len(clip.Channels))
			}
			for c, want := range tc.chans {
				got := clip.Channels[c]
				if len(got) != len(want) {
					t.Fatalf("channel %d: %d samples, want %d", c, len(got), len(want))
				}
				for i := range want {
					if d := math.Abs(float64(got[i]) - want[i]); d > tc.tol {
						t.Fatalf("channel %d sample %d = %v, want %v (tolerance %g)", c, i, got[i], want[i], tc.tol)
					}
				}
			}
		})
	}
}

func TestDecodeFloatClipsAndNaN(t *testing.T) {
	b := buildWAV(wavSpec{tag: formatFloat, bits: 32, rate: 16000, chans: [][]float64{{2, -3, math.NaN(), math.Inf(1), 0.5}}})
	clip, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{1, -1, 0, 1, 0.5}
	for i, w := range want {
		if clip.Channels[0][i] != w {
			t.Errorf("sample %d = %v, want %v", i, clip.Channels[0][i], w)
		}
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	n := 1000
	l, r := make([]float32, n), make([]float32, n)
	for i := range n {
		l[i] = float32(math.Sin(float64(i) * 0.05))
		r[i] = float32(1.5 * math.Cos(float64(i)*0.01)) // clips
	}
	path := filepath.Join(t.TempDir(), "x.wav")
	if err := WriteWAVFile(path, 44100, [][]float32{l, r}); err != nil {
		t.Fatal(err)
	}
	clip, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Rate != 44100 || len(clip.Channels) != 2 || clip.Frames() != n {
		t.Fatalf("rate %d channels %d frames %d", clip.Rate, len(clip.Channels), clip.Frames())
	}
	for i := range n {
		wantR := max(-1, min(1, r[i]))
		if math.Abs(float64(clip.Channels[0][i]-l[i])) > 2.0/32768 || math.Abs(float64(clip.Channels[1][i]-wantR)) > 2.0/32768 {
			t.Fatalf("frame %d: got %v,%v want %v,%v", i, clip.Channels[0][i], clip.Channels[1][i], l[i], wantR)
		}
	}
}

func TestWriteWAVRejects(t *testing.T) {
	var b bytes.Buffer
	for name, fn := range map[string]func() error{
		"no channels": func() error { return WriteWAV(&b, 16000, nil) },
		"zero rate":   func() error { return WriteWAV(&b, 0, [][]float32{{0}}) },
		"ragged":      func() error { return WriteWAV(&b, 16000, [][]float32{{0, 1}, {0}}) },
	} {
		if err := fn(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestDecodeBadInput(t *testing.T) {
	good := buildWAV(wavSpec{tag: formatPCM, bits: 16, rate: 16000, chans: [][]float64{ramp(100, 0.5)}})
	patch := func(off int, v uint32, width int) []byte {
		b := bytes.Clone(good)
		if width == 2 {
			binary.LittleEndian.PutUint16(b[off:], uint16(v))
		} else {
			binary.LittleEndian.PutUint32(b[off:], v)
		}
		return b
	}
	// Offsets in good: fmt chunk body at 20, data header at 36, data at 44.
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotWAV},
		{"text", []byte("hello, this is not audio at all"), ErrNotWAV},
		{"short RIFF", good[:7], ErrTruncated},
		{"riff only", good[:12], ErrTruncated},
		{"cut in fmt", good[:30], ErrTruncated},
		{"no data chunk", good[:36], ErrTruncated},
		{"mu-law", patch(20, formatMuLaw, 2), ErrUnsupported},
		{"adpcm", patch(20, formatADPCM, 2), ErrUnsupported},
		{"12-bit pcm", patch(34, 12, 2), ErrUnsupported},
		{"zero channels", patch(22, 0, 2), ErrInvalid},
		{"zero rate", patch(24, 0, 4), ErrInvalid},
		{"tiny rate", patch(24, 8, 4), ErrUnsupported},
		{"bad block align", patch(32, 3, 2), ErrInvalid},
		{"fmt too small", patch(16, 8, 4), ErrInvalid},
		{"4 GB data claim", patch(40, 0xFFFFFFF0, 4), ErrTooLong},
		{"huge skipped chunk", append(bytes.Clone(good[:12]), []byte("LIST\xf0\xff\xff\xff")...), ErrTruncated},
		{"rf64", append([]byte("RF64"), good[4:]...), ErrUnsupported},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeTruncatedDataKeepsSamples(t *testing.T) {
	good := buildWAV(wavSpec{tag: formatPCM, bits: 16, rate: 16000, chans: [][]float64{ramp(100, 0.5), ramp(100, 0.1)}})
	cut := good[:44+4*40+3] // 40 whole stereo frames and a partial one
	clip, err := Decode(bytes.NewReader(cut))
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	if clip == nil || clip.Frames() != 40 || len(clip.Channels[1]) != 40 {
		t.Fatalf("clip = %+v, want 40 frames", clip)
	}
	if math.Abs(float64(clip.Channels[0][0])+0.5) > 1e-3 {
		t.Fatalf("first sample %v, want -0.5", clip.Channels[0][0])
	}
}

func TestDecodeUnknownDataSizeReadsToEOF(t *testing.T) {
	b := buildWAV(wavSpec{tag: formatPCM, bits: 16, rate: 16000, chans: [][]float64{ramp(100, 0.5)}})
	binary.LittleEndian.PutUint32(b[40:], 0xFFFFFFFF)
	clip, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if clip.Frames() != 100 {
		t.Fatalf("%d frames, want 100", clip.Frames())
	}
}

// A header claiming 1.3 GB (within MaxSamples, so not rejected outright) followed by a
// few bytes must not allocate the claimed size.
func TestDecodeHugeClaimAllocatesLittle(t *testing.T) {
	b := buildWAV(wavSpec{tag: formatPCM, bits: 8, rate: 48000, chans: [][]float64{ramp(100, 0.5)}})
	binary.LittleEndian.PutUint32(b[40:], 0x50000000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decode(bytes.NewReader(b))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("decoding a 4 GB claim allocated %d bytes", grew)
	}
}

func TestDecodeRealFile(t *testing.T) {
	const path = "/work/shared/audio/jfk.wav"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("real speech sample %s not available: %v", path, err)
	}
	clip, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Rate != 16000 || len(clip.Channels) != 1 {
		t.Fatalf("rate %d, %d channels; want 16000 mono", clip.Rate, len(clip.Channels))
	}
	if d := clip.Duration(); math.Abs(d-11.0) > 0.1 {
		t.Fatalf("duration %.3f s, want 11.0", d)
	}
	var peak float32
	for _, v := range clip.Channels[0] {
		peak = max(peak, v, -v)
	}
	if peak < 0.1 || peak > 1 {
		t.Fatalf("peak %v: not speech-level audio", peak)
	}
	same := clip.To16k()
	if same.Frames() != clip.Frames() || same.Channels[0][1000] != clip.Channels[0][1000] {
		t.Fatal("To16k on 16 kHz audio changed it")
	}
}
