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
// For every other error the clip is nil.
func Decode(r io.Reader) (*Clip, error) {
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
			return readData(r, format, size)
		default:
			// RIFF chunks are padded to an even size.
			skip := int64(size) + int64(size&1)
			if n, err := io.CopyN(io.Discard, r, skip); err != nil {
				return nil, fmt.Errorf("%w: %q chunk declares %d bytes, %d present", ErrTruncated, id, skip, n)
			}
		}
	}
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

// readData decodes the data chunk in blocks, growing the channel slices only as bytes
// arrive.
func readData(r io.Reader, f *waveFormat, size uint32) (*Clip, error) {
	toEOF := size == unknownDataSize
	declaredFrames := int64(size) / int64(f.blockAlign)
	if !toEOF && declaredFrames*int64(f.channels) > MaxSamples {
		return nil, fmt.Errorf("%w: data chunk declares %d frames of %d channels (max %d samples)", ErrTooLong, declaredFrames, f.channels, MaxSamples)
	}
	maxFrames := int64(MaxSamples / f.channels)
	if !toEOF {
		maxFrames = declaredFrames
	}
	clip := &Clip{Rate: f.rate, Channels: make([][]float32, f.channels)}
	// Pre-size from the declared length, but never beyond one second: the rest grows
	// with append as data really arrives.
	prealloc := int(min(declaredFrames, int64(f.rate)))
	for c := range clip.Channels {
		clip.Channels[c] = make([]float32, 0, prealloc)
	}

	// Read about 64 KiB at a time whatever the frame size.
	blockFrames := max(1, 64*1024/f.blockAlign)
	buf := make([]byte, blockFrames*f.blockAlign)
	var frames int64
	for frames < maxFrames || toEOF {
		want := int64(blockFrames)
		if !toEOF {
			want = min(want, maxFrames-frames)
		}
		n, err := io.ReadFull(r, buf[:want*int64(f.blockAlign)])
		got := n / f.blockAlign
		if toEOF && frames+int64(got) > maxFrames {
			return nil, fmt.Errorf("%w: more than %d samples", ErrTooLong, MaxSamples)
		}
		decodeFrames(clip.Channels, buf[:got*f.blockAlign], f)
		frames += int64(got)
		if err != nil {
			if toEOF && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return clip, nil
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return clip, fmt.Errorf("%w: data chunk declares %d frames, %d present", ErrTruncated, declaredFrames, frames)
			}
			return clip, fmt.Errorf("audio: reading data chunk: %w", err)
		}
	}
	return clip, nil
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
