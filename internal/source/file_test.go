package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"scribe/internal/audio"
)

// A streamed file at 48 kHz stereo comes out as the whole file resampled at once would.
func TestFileStreamsLikeWholeFileResampling(t *testing.T) {
	const rate = 48000
	chans := [][]float32{make([]float32, 2*rate+123), make([]float32, 2*rate+123)}
	for i := range chans[0] {
		chans[0][i] = float32(0.4 * math.Sin(2*math.Pi*440*float64(i)/rate))
		chans[1][i] = float32(0.2 * math.Sin(2*math.Pi*1000*float64(i)/rate))
	}
	var b bytes.Buffer
	if err := audio.WriteWAV(&b, rate, chans); err != nil {
		t.Fatal(err)
	}
	whole, err := audio.Decode(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := whole.To16k()
	f, err := NewFile(bytes.NewReader(b.Bytes()), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]float32, f.Channels())
	for {
		chunk, err := f.Read(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(chunk[0]) != len(chunk[1]) {
			t.Fatalf("channels of a chunk differ: %d, %d", len(chunk[0]), len(chunk[1]))
		}
		for c := range chunk {
			got[c] = append(got[c], chunk[c]...)
		}
	}
	if math.Abs(f.Seconds()-float64(len(chans[0]))/rate) > 1e-9 {
		t.Errorf("Seconds = %v", f.Seconds())
	}
	for c := range got {
		if len(got[c]) != len(want.Channels[c]) {
			t.Fatalf("channel %d: %d samples streamed, %d resampled whole", c, len(got[c]), len(want.Channels[c]))
		}
		for i := range got[c] {
			if math.Abs(float64(got[c][i]-want.Channels[c][i])) > 1e-6 {
				t.Fatalf("channel %d sample %d: %v vs %v", c, i, got[c][i], want.Channels[c][i])
			}
		}
	}
	// A truncated file streams what it has, then says so.
	f, _ = NewFile(bytes.NewReader(b.Bytes()[:b.Len()/2]), time.Second)
	var last error
	for last == nil {
		_, last = f.Read(context.Background())
	}
	if !errors.Is(last, audio.ErrTruncated) {
		t.Errorf("truncated file ends with %v", last)
	}
}
