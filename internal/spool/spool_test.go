package spool

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// sine is a recognisable signal: 440 Hz at 16 kHz.
func sine(n int, phase int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(0.6 * math.Sin(2*math.Pi*440*float64(i+phase)/16000))
	}
	return out
}

func float32Bytes(s []float32) []byte {
	b := make([]byte, 0, 4*len(s))
	for _, v := range s {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func int16Bytes(s []float32) []byte {
	b := make([]byte, 0, 2*len(s))
	for _, v := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(int16(v*32767)))
	}
	return b
}

// leaks counts 16-byte windows of plain that occur anywhere in file.
func leaks(file, plain []byte) int {
	windows := make(map[[16]byte]bool, len(file))
	for i := 0; i+16 <= len(file); i++ {
		windows[[16]byte(file[i:i+16])] = true
	}
	n := 0
	for i := 0; i+16 <= len(plain); i++ {
		if windows[[16]byte(plain[i:i+16])] {
			n++
		}
	}
	return n
}

func openSpool(t *testing.T, dir, session string) *Spool {
	t.Helper()
	s, err := Open(dir, session, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Destroy("test cleanup") })
	return s
}

func TestFileHoldsNoPlaintextPCM(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, "sess-1")
	var f32, i16 []byte
	for u := range 5 {
		samples := sine(16000, u*16000)
		if err := s.Append("utt-"+string(rune('a'+u)), float64(u), samples); err != nil {
			t.Fatal(err)
		}
		f32 = append(f32, float32Bytes(samples)...)
		i16 = append(i16, int16Bytes(samples)...)
	}
	file, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(file) < len(f32) {
		t.Fatalf("spool file is %d bytes, smaller than the %d bytes of audio", len(file), len(f32))
	}
	// Positive control: the detector does find the signal in an unencrypted copy.
	if leaks(append(f32, i16...), f32) == 0 || leaks(i16, i16) == 0 {
		t.Fatal("leak detector finds nothing in plaintext")
	}
	if n := leaks(file, f32); n != 0 {
		t.Fatalf("%d float32 plaintext windows found in the spool file", n)
	}
	if n := leaks(file, i16); n != 0 {
		t.Fatalf("%d int16 plaintext windows found in the spool file", n)
	}
	if fi, _ := os.Stat(s.Path()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("spool file mode %v", fi.Mode())
	}
}

func TestReadRoundTrip(t *testing.T) {
	s := openSpool(t, t.TempDir(), "sess-1")
	a, b, c := sine(8000, 0), sine(4000, 99), sine(123, 7)
	for _, rec := range []struct {
		id      string
		start   float64
		samples []float32
	}{{"u1", 0, a}, {"u2", 0.5, b}, {"u1", 0.75, c}, {"empty", 1, nil}} {
		if err := s.Append(rec.id, rec.start, rec.samples); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Read("u1")
	if err != nil || !slices.Equal(got, append(slices.Clone(a), c...)) {
		t.Fatalf("u1: %d samples, %v", len(got), err)
	}
	if got, err := s.Read("u2"); err != nil || !slices.Equal(got, b) {
		t.Fatalf("u2: %v", err)
	}
	if got, err := s.Read("empty"); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	if _, err := s.Read("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestDestroyRemovesFileAndKey(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "sess-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append("u1", 0, sine(1000, 0)); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(s.Path())
	n, err := s.Destroy("approved")
	if err != nil || n != fi.Size() || n < 4000 {
		t.Fatalf("destroy: %d bytes (file was %d), %v", n, fi.Size(), err)
	}
	if _, err := os.Stat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
	if _, err := s.Read("u1"); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("read after destroy: %v", err)
	}
	if err := s.Append("u2", 1, sine(10, 0)); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("append after destroy: %v", err)
	}
	if _, err := s.Destroy("again"); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("second destroy: %v", err)
	}
	if s.key != nil || s.aead != nil {
		t.Fatal("key still held after destroy")
	}
	// The session can be spooled afresh after destruction.
	openSpool(t, dir, "sess-1")
}

// A process that restarts gets a new key: the old file's records stay sealed.
func TestNewKeyCannotReadOldFile(t *testing.T) {
	oldDir, newDir := t.TempDir(), t.TempDir()
	old := openSpool(t, oldDir, "sess-1")
	if err := old.Append("u1", 0, sine(2000, 0)); err != nil {
		t.Fatal(err)
	}
	refs := slices.Clone(old.index["u1"])
	data, err := os.ReadFile(old.Path())
	if err != nil {
		t.Fatal(err)
	}
	fresh := openSpool(t, newDir, "sess-1") // same session, new key
	if _, err := fresh.f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	fresh.mu.Lock()
	_, _, _, err = fresh.readRecord(refs[0])
	fresh.mu.Unlock()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("new key read old record: err = %v", err)
	}
	// Control: the old spool still reads it, so the failure is the key's doing.
	if _, err := old.Read("u1"); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedOrMovedRecordRefused(t *testing.T) {
	s := openSpool(t, t.TempDir(), "sess-1")
	s.Append("u1", 0, sine(100, 0))
	s.Append("u2", 1, sine(100, 5))
	r1, r2 := s.index["u1"][0], s.index["u2"][0]
	data, _ := os.ReadFile(s.Path())
	// Put record 1's bytes where record 2 was: same key, wrong position.
	if _, err := s.f.WriteAt(data[r1.offset:r1.offset+4+int64(r1.length)], r2.offset); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read("u2"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("moved record: %v", err)
	}
	flip := []byte{data[r1.offset+20] ^ 1}
	s.f.WriteAt(flip, r1.offset+20)
	if _, err := s.Read("u1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped byte: %v", err)
	}
}

func TestOpenValidates(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"", "../x", "a/b", "with space"} {
		if _, err := Open(dir, id, time.Hour); err == nil {
			t.Errorf("session %q accepted", id)
		}
	}
	for _, ttl := range []time.Duration{0, -time.Second, MaxTTL + time.Second} {
		if _, err := Open(dir, "s", ttl); err == nil {
			t.Errorf("ttl %v accepted", ttl)
		}
	}
	openSpool(t, dir, "dup")
	if _, err := Open(dir, "dup", time.Hour); err == nil {
		t.Error("second spool on an existing file accepted")
	}
}

func TestExpired(t *testing.T) {
	s := openSpool(t, t.TempDir(), "s")
	if s.Expired(time.Now()) || !s.Expired(time.Now().Add(time.Hour)) {
		t.Fatal("Expired wrong")
	}
}

func TestSweepRemovesLeftoversOnly(t *testing.T) {
	dir := t.TempDir()
	crashed, err := Open(dir, "crashed", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crashed.Append("u1", 0, sine(500, 0))
	crashed.f.Close()
	openPaths.Delete(absPath(crashed.Path())) // as if the process had died
	os.WriteFile(filepath.Join(dir, "other"+Ext), make([]byte, 77), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep"), 0o600)
	live := openSpool(t, dir, "live")
	live.Append("u1", 0, sine(10, 0))

	swept, err := Sweep(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(swept, func(a, b Swept) int { return int(a.Bytes - b.Bytes) })
	if len(swept) != 2 || swept[0].SessionID != "other" || swept[0].Bytes != 77 ||
		swept[1].SessionID != "crashed" || swept[1].Bytes < 2000 {
		t.Fatalf("swept %+v", swept)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"live" + Ext, "notes.txt"}) {
		t.Fatalf("left %v", names)
	}
	if _, err := live.Read("u1"); err != nil {
		t.Fatalf("live spool damaged by sweep: %v", err)
	}
	if swept, err := Sweep(filepath.Join(dir, "missing")); err != nil || swept != nil {
		t.Fatalf("missing dir: %v %v", swept, err)
	}
}

func TestConcurrentAppendAndRead(t *testing.T) {
	s := openSpool(t, t.TempDir(), "s")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				id := string(rune('a'+g)) + string(rune('a'+i))
				want := sine(200, g*1000+i)
				if err := s.Append(id, 0, want); err != nil {
					t.Error(err)
					return
				}
				if got, err := s.Read(id); err != nil || !slices.Equal(got, want) {
					t.Errorf("%s: %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkAppendOneSecond(b *testing.B) {
	s, err := Open(b.TempDir(), "bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Destroy("benchmark")
	samples := sine(16000, 0)
	b.SetBytes(4 * 16000)
	for b.Loop() {
		if err := s.Append("u", 0, samples); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadOneSecond(b *testing.B) {
	s, err := Open(b.TempDir(), "bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Destroy("benchmark")
	s.Append("u", 0, sine(16000, 0))
	b.SetBytes(4 * 16000)
	for b.Loop() {
		if _, err := s.Read("u"); err != nil {
			b.Fatal(err)
		}
	}
}
