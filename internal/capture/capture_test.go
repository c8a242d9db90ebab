package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gordonklaus/portaudio"

	"scribe/internal/audio"
)

// These tests run real PortAudio and real ALSA with no sound card: the default PCM is
// ALSA's "file" plugin, which replaces captured frames with frames read from a raw file
// (a "virtual microphone").
//
// Two properties of that plugin shape the configurations below:
//
//   - The plugin reads the file in its own sample format, and nothing may sit between
//     PortAudio and it. It reads the file when a reader begins an mmap transfer, for every
//     frame offered, but a converting plugin above it (plug, linear, lfloat…) commits only
//     as many frames as its own client buffer has room for and the rest of what was read
//     is lost. Over the "null" PCM, which always offers a full buffer, that loses audio on
//     every transfer: a plug with slave format S16_LE under PortAudio's float requests
//     delivers the file time-compressed (arecord shows the same through the plug; reading
//     the file PCM directly is exact). So the file PCM is the default PCM itself, and
//     the file holds the format PortAudio negotiates with it.
//   - The null PCM has no clock: capture runs as fast as it is read, not in real time.

// alsaDefaultPCM makes pcm.!default the given ALSA PCM definition for this test.
func alsaDefaultPCM(t *testing.T, definition string) {
	t.Helper()
	if _, err := os.Stat("/usr/share/alsa/alsa.conf"); err != nil {
		t.Skip("ALSA configuration not installed")
	}
	conf := filepath.Join(t.TempDir(), "asound.conf")
	if err := os.WriteFile(conf, []byte("pcm.!default "+definition+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf:"+conf)
}

// writeRaw writes interleaved frames to a temporary raw file, each sample encoded by put.
func writeRaw(t *testing.T, channels [][]float32, width int, put func([]byte, float32)) string {
	t.Helper()
	n := len(channels[0])
	b := make([]byte, width*len(channels)*n)
	for i := range n {
		for c, ch := range channels {
			put(b[width*(i*len(channels)+c):], max(-1, min(1, ch[i])))
		}
	}
	path := filepath.Join(t.TempDir(), "mic.raw")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func putFloat32LE(b []byte, v float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(v)) }

func putS32LE(b []byte, v float32) {
	binary.LittleEndian.PutUint32(b, uint32(int32(math.Round(float64(v)*math.MaxInt32))))
}

func speech16k(t *testing.T) []float32 {
	t.Helper()
	clip, err := audio.ReadFile("../../../shared/audio/jfk.wav")
	if err != nil {
		t.Skipf("test clip: %v", err)
	}
	return clip.To16k().Channels[0]
}

// readSeconds reads at least secs of 16 kHz audio per channel.
func readSeconds(t *testing.T, src *Source, secs float64) [][]float32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make([][]float32, src.Channels())
	for len(got[0]) < int(secs*16000) {
		c, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("after %d samples: %v", len(got[0]), err)
		}
		if len(c) != len(got) {
			t.Fatalf("chunk has %d channels, want %d", len(c), len(got))
		}
		for i := range c {
			got[i] = append(got[i], c[i]...)
		}
	}
	return got
}

// bestMatch finds where ref appears in got: the highest normalised correlation of
// got[1 s:2 s] with ref shifted by 0…maxLag samples, and that lag.
func bestMatch(got, ref []float32, maxLag int) (best float64, lag int) {
	for l := range maxLag {
		var num, ea, eb float64
		for i := 16000; i < 32000; i++ {
			a, b := float64(got[i]), float64(ref[i-l])
			num += a * b
			ea += a * a
			eb += b * b
		}
		if c := num / math.Sqrt(ea*eb+1e-12); c > best {
			best, lag = c, l
		}
	}
	return best, lag
}

func TestCaptureReadsFromALSADevice(t *testing.T) {
	speech := speech16k(t)
	// With every format on offer PortAudio takes the one asked for, float32.
	raw := writeRaw(t, [][]float32{speech}, 4, putFloat32LE)
	alsaDefaultPCM(t, fmt.Sprintf(`{ type file slave.pcm "null" file "/dev/null" infile %q format "raw" }`, raw))

	devs, err := Devices()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(devs, func(d Device) bool { return d.Default })
	if i < 0 {
		t.Fatalf("no default input among %+v", devs)
	}
	if d := devs[i]; d.Name != "default" || d.HostAPI != "ALSA" || d.Channels < 1 {
		t.Errorf("default input is %+v, want ALSA's default PCM", d)
	}

	src, err := Open(Options{Device: -1, Channels: 1, Rate: 16000})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := readSeconds(t, src, 3)[0]

	start := time.Now()
	if err := src.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if c, err := src.Read(context.Background()); !errors.Is(err, io.EOF) {
		t.Errorf("Read after Close = %d channels, %v; want io.EOF", len(c), err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}

	best, lag := bestMatch(got, speech, 4000)
	t.Logf("read %d samples; best correlation %.4f at lag %d; %d overflows", len(got), best, lag, src.Overflows())
	if best < 0.95 {
		t.Errorf("captured audio does not match the source (correlation %.3f)", best)
	}
}

// A two-channel 48 kHz integer-only device, like a USB interface opened through hw:
// PortAudio converts the samples itself and capture resamples each channel to 16 kHz.
func TestCaptureTwoChannels48kIntegerDevice(t *testing.T) {
	speech := speech16k(t)
	left := speech
	right := slices.Clone(speech)
	slices.Reverse(right) // same spectrum, different signal
	up := func(x []float32) []float32 {
		r := audio.NewResampler(16000, 48000)
		return append(r.Process(x), r.Flush()...)
	}
	// A linear plugin offers every integer format and no float one; PortAudio then takes
	// the closest to float32, which is S32_LE.
	raw := writeRaw(t, [][]float32{up(left), up(right)}, 4, putS32LE)
	alsaDefaultPCM(t, fmt.Sprintf(`{ type file file "/dev/null" infile %q format "raw"
  slave.pcm { type linear slave { pcm "null" format S16_LE } } }`, raw))

	src, err := Open(Options{Device: -1, Channels: 2, Rate: 48000})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Channels() != 2 {
		t.Fatalf("Channels() = %d", src.Channels())
	}
	got := readSeconds(t, src, 3)
	if err := src.Close(); err != nil {
		t.Errorf("close: %v", err)
	}

	for _, tc := range []struct {
		name     string
		got, ref []float32
		want     bool
	}{
		{"left has left", got[0], left, true},
		{"right has right", got[1], right, true},
		{"left has right", got[0], right, false},
		{"right has left", got[1], left, false},
	} {
		best, lag := bestMatch(tc.got, tc.ref, 2000)
		t.Logf("%s: correlation %.4f at lag %d", tc.name, best, lag)
		if tc.want && best < 0.95 {
			t.Errorf("%s: correlation %.3f, want ≥ 0.95", tc.name, best)
		}
		if !tc.want && best > 0.5 {
			t.Errorf("%s: correlation %.3f, channels are mixed up", tc.name, best)
		}
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	alsaDefaultPCM(t, `{ type null }`)
	_, err := Open(Options{Device: 1 << 20, Channels: 1})
	if !errors.Is(err, ErrNoSuchDevice) {
		t.Errorf("device index 1<<20: err = %v, want ErrNoSuchDevice", err)
	} else {
		t.Log(err)
	}
	for _, n := range []int{0, MaxChannels + 1} {
		if _, err := Open(Options{Device: -1, Channels: n}); err == nil {
			t.Errorf("%d channels accepted", n)
		}
	}
}

// A four-capsule array: each capsule's channel arrives in order and keeps its time
// difference to the others to the sample, which direction finding depends on.
func TestCaptureFourCapsulesKeepTimeDifferences(t *testing.T) {
	speech := speech16k(t)
	chans := make([][]float32, 4)
	for c := range chans {
		chans[c] = make([]float32, len(speech))
		copy(chans[c][c:], speech) // capsule c hears it c samples later
	}
	raw := writeRaw(t, chans, 4, putFloat32LE)
	alsaDefaultPCM(t, fmt.Sprintf(`{ type file slave.pcm "null" file "/dev/null" infile %q format "raw" }`, raw))
	src, err := Open(Options{Device: -1, Channels: 4, Rate: 16000})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Channels() != 4 {
		t.Fatalf("Channels() = %d", src.Channels())
	}
	got := readSeconds(t, src, 3)
	for c := 1; c < 4; c++ {
		best, lag := bestMatch(got[c], got[0], 8)
		if lag != c || best < 0.99 {
			t.Errorf("capsule %d: best match with capsule 0 at lag %d (correlation %.3f), want %d", c, lag, best, c)
		}
	}
}

// fakeStream fills the buffer with a running count; it reports an overrun on the reads
// in overflowOn and fails with failErr on read number failOn. A real ALSA overrun needs a
// device with a clock, which the null PCM lacks.
type fakeStream struct {
	buf        []float32
	reads      int
	next       float32
	overflowOn []int
	failOn     int
	failErr    error
}

func (f *fakeStream) Read() error {
	f.reads++
	if f.reads == f.failOn {
		return f.failErr
	}
	for i := range f.buf {
		f.buf[i] = f.next
		f.next++
	}
	if slices.Contains(f.overflowOn, f.reads) {
		return portaudio.InputOverflowed
	}
	return nil
}

func TestOverflowKeepsTheBufferAndCountsIt(t *testing.T) {
	buf := make([]float32, 1600)
	f := &fakeStream{buf: buf, overflowOn: []int{2, 3}, failOn: 5, failErr: portaudio.DeviceUnavailable}
	src := newSource(f, 1, buf, 16000)
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var got []float32
	var err error
	for {
		var c [][]float32
		if c, err = src.Read(ctx); err != nil {
			break
		}
		got = append(got, c[0]...)
	}
	if !errors.Is(err, portaudio.DeviceUnavailable) {
		t.Fatalf("Read ended with %v, want the device's error", err)
	}
	if len(got) != 4*1600 {
		t.Fatalf("got %d samples before the failure, want %d (overflowed buffers must be kept)", len(got), 4*1600)
	}
	for i, v := range got {
		if v != float32(i) {
			t.Fatalf("sample %d = %v: audio out of order or lost", i, v)
		}
	}
	if n := src.Overflows(); n != 2 {
		t.Errorf("Overflows() = %d, want 2", n)
	}
	if _, err2 := src.Read(ctx); !errors.Is(err2, portaudio.DeviceUnavailable) {
		t.Errorf("second Read after failure = %v, want the same error", err2)
	}
	if err := src.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := src.Read(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Read after Close = %v, want io.EOF", err)
	}
}
