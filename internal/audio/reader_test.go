package audio

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
	"time"
)

// The Reader hands out audio while the rest of the file is still to come, and its blocks
// add up to exactly what Decode returns.
func TestReaderStreamsAndMatchesDecode(t *testing.T) {
	const rate = 48000
	chans := [][]float32{make([]float32, 3*rate+17), make([]float32, 3*rate+17)}
	for i := range chans[0] {
		chans[0][i] = float32(0.5 * math.Sin(float64(i)/7))
		chans[1][i] = float32(-0.25 * math.Cos(float64(i)/11))
	}
	var file bytes.Buffer
	if err := WriteWAV(&file, rate, chans); err != nil {
		t.Fatal(err)
	}
	whole, err := Decode(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	half := file.Len() / 2
	go pw.Write(file.Bytes()[:half]) // the second half is written only after the first block is read
	d, err := NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	if d.Rate() != rate || d.Channels() != 2 {
		t.Fatalf("rate %d, channels %d", d.Rate(), d.Channels())
	}
	got := make([][]float32, 2)
	first, err := d.Read(4800)
	if err != nil || len(first[0]) != 4800 {
		t.Fatalf("first block: %d frames, %v", len(first[0]), err)
	}
	for c := range got {
		got[c] = append(got[c], first[c]...)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		pw.Write(file.Bytes()[half:])
		pw.Close()
	}()
	for {
		b, err := d.Read(5000)
		for c := range b {
			got[c] = append(got[c], b[c]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if d.Frames() != int64(len(chans[0])) {
		t.Errorf("Frames = %d, want %d", d.Frames(), len(chans[0]))
	}
	for c := range got {
		if len(got[c]) != len(whole.Channels[c]) {
			t.Fatalf("channel %d: %d frames streamed, %d decoded", c, len(got[c]), len(whole.Channels[c]))
		}
		for i := range got[c] {
			if got[c][i] != whole.Channels[c][i] {
				t.Fatalf("channel %d frame %d differs", c, i)
			}
		}
	}
	// A file cut short: the frames present, then ErrTruncated, again on the next call.
	cut := file.Bytes()[:file.Len()-1001]
	d, _ = NewReader(bytes.NewReader(cut))
	n := 0
	for {
		b, err := d.Read(4096)
		if len(b) > 0 {
			n += len(b[0])
		}
		if err != nil {
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("cut file: %v", err)
			}
			if _, again := d.Read(10); !errors.Is(again, ErrTruncated) {
				t.Fatalf("error not sticky: %v", again)
			}
			break
		}
	}
	if n != (len(cut)-44)/4 {
		t.Errorf("cut file: %d frames read, want %d", n, (len(cut)-44)/4)
	}
}
