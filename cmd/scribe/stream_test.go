package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeLongWAV writes minutes of 48 kHz stereo 16-bit audio (quiet noise with a tone
// burst every 30 s) straight to disk, without holding it in memory.
func writeLongWAV(t *testing.T, path string, minutes int) int64 {
	t.Helper()
	const rate, channels = 48000, 2
	frames := int64(minutes) * 60 * rate
	data := frames * channels * 2
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("RIFF")
	binary.Write(w, binary.LittleEndian, uint32(36+data))
	w.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(channels), uint32(rate), uint32(rate * channels * 2), uint16(channels * 2), uint16(16)} {
		binary.Write(w, binary.LittleEndian, v)
	}
	w.WriteString("data")
	binary.Write(w, binary.LittleEndian, uint32(data))
	rng := rand.New(rand.NewPCG(1, 2))
	var b [4]byte
	for i := range frames {
		sec := float64(i) / rate
		v := 30 * rng.NormFloat64()
		if math.Mod(sec, 30) < 2 {
			v += 6000 * math.Sin(2*math.Pi*220*sec)
		}
		binary.LittleEndian.PutUint16(b[0:], uint16(int16(v)))
		binary.LittleEndian.PutUint16(b[2:], uint16(int16(v/2)))
		w.Write(b[:])
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return data
}

// transcribePeak runs `scribe transcribe` on a generated file of minutes and returns its
// peak RSS and the bytes the file's samples take decoded as float32.
func transcribePeak(t *testing.T, bin, model, vad string, minutes int) (peak, decoded int64) {
	t.Helper()
	wav := filepath.Join(t.TempDir(), "long.wav")
	decoded = writeLongWAV(t, wav, minutes) * 2
	cmd := exec.Command(bin, "transcribe", wav, "--model", model, "--vad-model", vad, "--format", "json")
	var out strings.Builder
	cmd.Stdout = &out
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("transcribe: %v\n%s", err, stderr)
	}
	var tr struct {
		AudioSeconds float64 `json:"audio_seconds"`
	}
	if err := json.Unmarshal([]byte(out.String()), &tr); err != nil {
		t.Fatal(err)
	}
	if math.Abs(tr.AudioSeconds-float64(minutes*60)) > 0.01 {
		t.Errorf("audio_seconds = %.3f, want %d", tr.AudioSeconds, minutes*60)
	}
	peak = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
	t.Logf("%d min of 48 kHz stereo (%d MB decoded as float32): peak RSS %d MB", minutes, decoded>>20, peak>>20)
	return peak, decoded
}

// scribe transcribe reads a long file as a stream: its peak memory hardly grows with the
// recording's length (issue 14: a 1 h 48 kHz stereo WAV peaked at 4.2 GB). Between a 1 and
// a 3 minute file the peak must grow by less than half of what the extra samples take.
func TestTranscribeStreamsLongFiles(t *testing.T) {
	model, vad := testModels(t)
	bin := scribeBinary(t)
	short, shortDecoded := transcribePeak(t, bin, model, vad, 1)
	long, longDecoded := transcribePeak(t, bin, model, vad, 3)
	if grew, extra := long-short, longDecoded-shortDecoded; grew > extra/2 {
		t.Errorf("peak RSS grew by %d MB for %d MB more samples: the file is held in memory, not streamed", grew>>20, extra>>20)
	}
}
