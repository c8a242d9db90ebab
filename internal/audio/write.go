package audio

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// WriteWAV writes channels as a 16-bit PCM RIFF/WAVE stream at rate Hz. Samples are
// clipped to [-1, 1] and rounded to the nearest step. All channels must be the same
// length; at least one channel is required.
func WriteWAV(w io.Writer, rate int, channels [][]float32) error {
	if len(channels) == 0 {
		return fmt.Errorf("audio: write wav: no channels: %w", ErrInvalid)
	}
	if len(channels) > 0xffff {
		return fmt.Errorf("audio: write wav: %d channels (max 65535): %w", len(channels), ErrInvalid)
	}
	if rate <= 0 || rate > maxRate {
		return fmt.Errorf("audio: write wav: sample rate %d out of range: %w", rate, ErrInvalid)
	}
	n := len(channels[0])
	for i, c := range channels {
		if len(c) != n {
			return fmt.Errorf("audio: write wav: channel %d has %d samples, channel 0 has %d: %w", i, len(c), n, ErrInvalid)
		}
	}
	nch := len(channels)
	blockAlign := 2 * nch
	dataSize := uint64(n) * uint64(blockAlign)
	if dataSize > math.MaxUint32-36 {
		return fmt.Errorf("audio: write wav: %d bytes of audio do not fit a RIFF file: %w", dataSize, ErrInvalid)
	}

	bw := bufio.NewWriterSize(w, 64*1024)
	var hdr [44]byte
	copy(hdr[0:], "RIFF")
	binary.LittleEndian.PutUint32(hdr[4:], uint32(36+dataSize))
	copy(hdr[8:], "WAVE")
	copy(hdr[12:], "fmt ")
	binary.LittleEndian.PutUint32(hdr[16:], 16)
	binary.LittleEndian.PutUint16(hdr[20:], formatPCM)
	binary.LittleEndian.PutUint16(hdr[22:], uint16(nch))
	binary.LittleEndian.PutUint32(hdr[24:], uint32(rate))
	binary.LittleEndian.PutUint32(hdr[28:], uint32(rate*blockAlign))
	binary.LittleEndian.PutUint16(hdr[32:], uint16(blockAlign))
	binary.LittleEndian.PutUint16(hdr[34:], 16)
	copy(hdr[36:], "data")
	binary.LittleEndian.PutUint32(hdr[40:], uint32(dataSize))
	if _, err := bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("audio: write wav header: %w", err)
	}
	var b [2]byte
	for i := range n {
		for _, c := range channels {
			binary.LittleEndian.PutUint16(b[:], uint16(floatToPCM16(c[i])))
			if _, err := bw.Write(b[:]); err != nil {
				return fmt.Errorf("audio: write wav data: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audio: write wav: %w", err)
	}
	return nil
}

// WriteWAVFile writes channels to path as 16-bit PCM WAV (see WriteWAV). The file is
// created or truncated; on error a partly written file may remain.
func WriteWAVFile(path string, rate int, channels [][]float32) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("audio: %w", err)
	}
	if err := WriteWAV(f, rate, channels); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audio: close %s: %w", path, err)
	}
	return nil
}

// floatToPCM16 clips x to [-1, 1] and scales by 32767 so that +1 and -1 map
// symmetrically; NaN becomes 0.
func floatToPCM16(x float32) int16 {
	if x != x {
		return 0
	}
	if x > 1 {
		x = 1
	} else if x < -1 {
		x = -1
	}
	return int16(math.Round(float64(x) * 32767))
}
