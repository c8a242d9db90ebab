// Package audio reads and writes WAV files and resamples audio to the 16 kHz the rest of
// scribe works at. The WAV parser is hand-rolled: it is small, and owning it lets us bound
// every allocation by what the input actually contains, so a hostile header cannot make
// us allocate gigabytes.
package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Sentinel errors. Every error Decode returns wraps exactly one of these, so callers can
// tell bad input apart with errors.Is.
var (
	// ErrNotWAV: the stream does not start with a RIFF/WAVE header.
	ErrNotWAV = errors.New("audio: not a RIFF/WAVE file")
	// ErrUnsupported: a valid WAV file in an encoding we do not decode (mu-law, A-law,
	// ADPCM, MP3-in-WAV, unusual bit depths).
	ErrUnsupported = errors.New("audio: unsupported WAV format")
	// ErrInvalid: header fields that contradict each other or make no sense (zero
	// channels, zero rate, block size not matching the sample size, data before fmt).
	ErrInvalid = errors.New("audio: invalid WAV header")
	// ErrTruncated: the stream ended before the header or the declared data did. When the
	// data chunk is short, Decode also returns the whole frames it did read.
	ErrTruncated = errors.New("audio: truncated WAV")
	// ErrTooLong: the audio exceeds MaxSamples.
	ErrTooLong = errors.New("audio: WAV too long")
)

const (
	formatPCM        = 0x0001
	formatADPCM      = 0x0002
	formatFloat      = 0x0003
	formatALaw       = 0x0006
	formatMuLaw      = 0x0007
	formatIMAADPCM   = 0x0011
	formatMPEG       = 0x0050
	formatMP3        = 0x0055
	formatExtensible = 0xFFFE

	// maxRate bounds the sample rate we accept; real audio hardware stops at 768 kHz.
	maxRate = 1_000_000
	// maxChannels bounds the channel count; beyond this a header is almost surely garbage.
	maxChannels = 256
	// unknownDataSize is what streaming writers put in the data chunk header when they
	// did not know the length; we read to end of stream instead.
	unknownDataSize = 0xFFFFFFFF
	// maxFmtSize: fmt chunks are 16–40 bytes; anything bigger is skipped past, not stored.
	maxFmtSize = 1024
)

// MaxSamples caps the total number of samples (frames × channels) Decode will return:
// four hours of 48 kHz stereo. Decoding grows its buffers only as samples are actually
// read, so a header that merely claims a huge size costs nothing.
const MaxSamples = 4 * 3600 * 48000 * 2

// Clip is decoded audio: Rate in Hz and one slice of samples per channel, all the same
// length, with samples in [-1, 1].
type Clip struct {
	Rate     int
	Channels [][]float32
}

// Frames is the number of samples per channel.
func (c *Clip) Frames() int {
	if c == nil || len(c.Channels) == 0 {
		return 0
	}
	return len(c.Channels[0])
}

// Duration is the length of the clip in seconds.
func (c *Clip) Duration() float64 {
	if c == nil || c.Rate <= 0 {
		return 0
	}
	return float64(c.Frames()) / float64(c.Rate)
}

// ReadFile decodes the WAV file at path (see Decode).
func ReadFile(path string) (*Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	defer f.Close()
	clip, err := Decode(f)
	if err != nil {
		return clip, fmt.Errorf("%s: %w", path, err)
	}
	return clip, nil
}

// waveFormat is what we keep of the fmt chunk.
type waveFormat struct {
	tag        uint16 // formatPCM or formatFloat after resolving WAVE_FORMAT_EXTENSIBLE
	channels   int
	rate       int
	blockAlign int
	bits       int // container bits per sample
}

// Decode reads a RIFF/WAVE stream: PCM 8-bit unsigned, 16/24/32-bit signed, IEEE float
// 32/64, and WAVE_FORMAT_EXTENSIBLE with a PCM or float subformat, any channel count and
// rate. Chunks other than fmt and data are skipped; reading stops after the data chunk.
// Float samples are clipped to [-1, 1] and NaN becomes 0, so downstream filters never see
// non-finite values.
//
// A data chunk shorter than declared is not fatal to the audio already read: Decode then
// returns the clip of whole frames read together with an error wrapping ErrTruncated.
// For every other error the clip is nil. Decode holds the whole recording in memory;
// NewReader reads it a block at a time.
func Decode(r io.Reader) (*Clip, error) {
	d, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	clip := &Clip{Rate: d.f.rate, Channels: make([][]float32, d.f.channels)}
	// Pre-size from the declared length, but never beyond one second: the rest grows
	// with append as data really arrives.
	prealloc := int(min(d.declaredFrames, int64(d.f.rate)))
	for c := range clip.Channels {
		clip.Channels[c] = make([]float32, 0, prealloc)
	}
	for {
		block, err := d.Read(d.blockFrames)
		for c := range block {
			clip.Channels[c] = append(clip.Channels[c], block[c]...)
		}
		switch {
		case err == io.EOF:
			return clip, nil
		case errors.Is(err, ErrTooLong):
			return nil, err
		case err != nil:
			return clip, err
		}
	}
}

// Reader decodes a WAV stream a block at a time (see Decode for the formats), so a
// recording of any length is transcribed in bounded memory.
type Reader struct {
	r              io.Reader
	f              *waveFormat
	toEOF          bool  // the data chunk's size was unknown: read to end of stream
	declaredFrames int64 // from the data chunk header (meaningless when toEOF)
	maxFrames      int64
	frames         int64 // read so far
	blockFrames    int   // about 64 KiB of data
	buf            []byte
	err            error // sticky: io.EOF at the end
}

// NewReader reads the headers up to the data chunk and returns a Reader positioned at
// the first sample. Errors wrap the sentinels Decode documents.
func NewReader(r io.Reader) (*Reader, error) {
	var riff [12]byte
	if n, err := io.ReadFull(r, riff[:]); err != nil {
		if n == 0 {
			return nil, fmt.Errorf("%w: empty input", ErrNotWAV)
		}
		if !bytes.HasPrefix([]byte("RIFF"), riff[:min(n, 4)]) {
			return nil, fmt.Errorf("%w: missing RIFF header", ErrNotWAV)
		}
		return nil, fmt.Errorf("%w: %d-byte RIFF header", ErrTruncated, n)
	}
	if string(riff[0:4]) == "RF64" || string(riff[0:4]) == "RIFX" {
		return nil, fmt.Errorf("%w: %q container", ErrUnsupported, riff[0:4])
	}
	if string(riff[0:4]) != "RIFF" || string(riff[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%w: missing RIFF/WAVE header", ErrNotWAV)
	}

	var format *waveFormat
	for {
		var hdr [8]byte
		if n, err := io.ReadFull(r, hdr[:]); err != nil {
			if n == 0 && format == nil {
				return nil, fmt.Errorf("%w: no fmt chunk", ErrTruncated)
			}
			if n == 0 {
				return nil, fmt.Errorf("%w: no data chunk", ErrTruncated)
			}
			return nil, fmt.Errorf("%w: chunk header cut after %d bytes", ErrTruncated, n)
		}
		id := string(hdr[0:4])
		size := binary.LittleEndian.Uint32(hdr[4:8])
		switch id {
		case "fmt ":
			if format != nil {
				return nil, fmt.Errorf("%w: second fmt chunk", ErrInvalid)
			}
			f, err := readFormat(r, size)
			if err != nil {
				return nil, err
			}
			format = f
		case "data":
			if format == nil {
				return nil, fmt.Errorf("%w: data chunk before fmt chunk", ErrInvalid)
			}
			return newDataReader(r, format, size)
		default:
			// RIFF chunks are padded to an even size.
			skip := int64(size) + int64(size&1)
			if n, err := io.CopyN(io.Discard, r, skip); err != nil {
				return nil, fmt.Errorf("%w: %q chunk declares %d bytes, %d present", ErrTruncated, id, skip, n)
			}
		}
	}
}

func newDataReader(r io.Reader, f *waveFormat, size uint32) (*Reader, error) {
	d := &Reader{r: r, f: f, toEOF: size == unknownDataSize, declaredFrames: int64(size) / int64(f.blockAlign)}
	if !d.toEOF && d.declaredFrames*int64(f.channels) > MaxSamples {
		return nil, fmt.Errorf("%w: data chunk declares %d frames of %d channels (max %d samples)", ErrTooLong, d.declaredFrames, f.channels, MaxSamples)
	}
	d.maxFrames = int64(MaxSamples / f.channels)
	if !d.toEOF {
		d.maxFrames = d.declaredFrames
	}
	d.blockFrames = max(1, 64*1024/f.blockAlign)
	return d, nil
}

// Rate is the recording's sample rate in Hz.
func (d *Reader) Rate() int { return d.f.rate }

// Channels is the recording's channel count.
func (d *Reader) Channels() int { return d.f.channels }

// Frames is how many frames (samples per channel) have been read so far.
func (d *Reader) Frames() int64 { return d.frames }

// Read decodes up to maxFrames frames, one slice per channel. At the end of the data it
// returns io.EOF; a data chunk shorter than declared gives the whole frames present and
// an error wrapping ErrTruncated. Every error is returned again by later calls.
func (d *Reader) Read(maxFrames int) ([][]float32, error) {
	if d.err != nil {
		return nil, d.err
	}
	want := int64(max(1, maxFrames))
	if !d.toEOF {
		want = min(want, d.maxFrames-d.frames)
	}
	if want <= 0 {
		d.err = io.EOF
		return nil, d.err
	}
	need := int(want) * d.f.blockAlign
	if cap(d.buf) < need {
		d.buf = make([]byte, need)
	}
	n, err := io.ReadFull(d.r, d.buf[:need])
	got := n / d.f.blockAlign
	if d.toEOF && d.frames+int64(got) > d.maxFrames {
		d.err = fmt.Errorf("%w: more than %d samples", ErrTooLong, MaxSamples)
		return nil, d.err
	}
	out := make([][]float32, d.f.channels)
	for c := range out {
		out[c] = make([]float32, 0, got)
	}
	decodeFrames(out, d.buf[:got*d.f.blockAlign], d.f)
	d.frames += int64(got)
	switch {
	case err == nil:
	case d.toEOF && (err == io.EOF || err == io.ErrUnexpectedEOF):
		d.err = io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		d.err = fmt.Errorf("%w: data chunk declares %d frames, %d present", ErrTruncated, d.declaredFrames, d.frames)
	default:
		d.err = fmt.Errorf("audio: reading data chunk: %w", err)
	}
	if got == 0 {
		return nil, d.err
	}
	if d.err == io.EOF {
		return out, nil // the last frames; the next Read says io.EOF
	}
	return out, d.err
}

// extensibleGUIDTail is the KSDATAFORMAT_SUBTYPE GUID after its first two bytes, which
// hold the plain format tag.
var extensibleGUIDTail = []byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

func readFormat(r io.Reader, size uint32) (*waveFormat, error) {
	if size < 16 {
		return nil, fmt.Errorf("%w: fmt chunk of %d bytes (need 16)", ErrInvalid, size)
	}
	keep := min(size, maxFmtSize)
	buf := make([]byte, keep)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: fmt chunk", ErrTruncated)
	}
	if skip := int64(size-keep) + int64(size&1); skip > 0 {
		if _, err := io.CopyN(io.Discard, r, skip); err != nil {
			return nil, fmt.Errorf("%w: fmt chunk", ErrTruncated)
		}
	}
	tag := binary.LittleEndian.Uint16(buf[0:2])
	f := &waveFormat{
		tag:        tag,
		channels:   int(binary.LittleEndian.Uint16(buf[2:4])),
		rate:       int(binary.LittleEndian.Uint32(buf[4:8])),
		blockAlign: int(binary.LittleEndian.Uint16(buf[12:14])),
		bits:       int(binary.LittleEndian.Uint16(buf[14:16])),
	}
	if tag == formatExtensible {
		// WAVEFORMATEXTENSIBLE: cbSize(2) validBits(2) channelMask(4) subFormat GUID(16).
		if len(buf) < 40 {
			return nil, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE fmt chunk of %d bytes (need 40)", ErrInvalid, len(buf))
		}
		guid := buf[24:40]
		if !bytes.Equal(guid[2:], extensibleGUIDTail) {
			return nil, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE subformat GUID % x", ErrUnsupported, guid)
		}
		f.tag = binary.LittleEndian.Uint16(guid[0:2])
	}
	switch f.tag {
	case formatPCM:
		switch f.bits {
		case 8, 16, 24, 32:
		default:
			return nil, fmt.Errorf("%w: %d-bit PCM", ErrUnsupported, f.bits)
		}
	case formatFloat:
		if f.bits != 32 && f.bits != 64 {
			return nil, fmt.Errorf("%w: %d-bit float", ErrUnsupported, f.bits)
		}
	default:
		return nil, fmt.Errorf("%w: format code 0x%04x (%s)", ErrUnsupported, f.tag, formatName(f.tag))
	}
	if f.channels == 0 || f.channels > maxChannels {
		return nil, fmt.Errorf("%w: %d channels", ErrInvalid, f.channels)
	}
	if f.rate == 0 || f.rate > maxRate {
		return nil, fmt.Errorf("%w: sample rate %d Hz", ErrInvalid, f.rate)
	}
	if f.rate < MinRate {
		return nil, fmt.Errorf("%w: sample rate %d Hz (min %d)", ErrUnsupported, f.rate, MinRate)
	}
	if want := f.channels * f.bits / 8; f.blockAlign != want {
		return nil, fmt.Errorf("%w: block align %d, expected %d for %d channels of %d bits", ErrInvalid, f.blockAlign, want, f.channels, f.bits)
	}
	return f, nil
}

func formatName(tag uint16) string {
	switch tag {
	case formatADPCM:
		return "Microsoft ADPCM"
	case formatALaw:
		return "A-law"
	case formatMuLaw:
		return "mu-law"
	case formatIMAADPCM:
		return "IMA ADPCM"
	case formatMPEG:
		return "MPEG"
	case formatMP3:
		return "MP3"
	}
	return "unknown"
}

// decodeFrames appends the interleaved frames in b to chans.
func decodeFrames(chans [][]float32, b []byte, f *waveFormat) {
	bps := f.bits / 8
	nch := len(chans)
	frames := len(b) / f.blockAlign
	for i := range frames {
		frame := b[i*f.blockAlign:]
		for c := range nch {
			s := frame[c*bps : (c+1)*bps]
			chans[c] = append(chans[c], decodeSample(s, f.tag, f.bits))
		}
	}
}

func decodeSample(s []byte, tag uint16, bits int) float32 {
	if tag == formatFloat {
		var v float64
		if bits == 32 {
			v = float64(math.Float32frombits(binary.LittleEndian.Uint32(s)))
		} else {
			v = math.Float64frombits(binary.LittleEndian.Uint64(s))
		}
		switch {
		case v != v:
			return 0
		case v > 1:
			return 1
		case v < -1:
			return -1
		}
		return float32(v)
	}
	switch bits {
	case 8:
		return float32(int(s[0])-128) / 128
	case 16:
		return float32(int16(binary.LittleEndian.Uint16(s))) / 32768
	case 24:
		v := int32(uint32(s[0])<<8|uint32(s[1])<<16|uint32(s[2])<<24) >> 8
		return float32(v) / 8388608
	default:
		return float32(float64(int32(binary.LittleEndian.Uint32(s))) / 2147483648)
	}
}
