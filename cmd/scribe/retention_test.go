package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scribe/internal/audio"
)

// pcmSignature indexes every 16-byte run of the samples as f32le and s16le (scaled as
// internal/audio writes WAVs).
func pcmSignature(x []float32) map[[16]byte]bool {
	out := map[[16]byte]bool{}
	f := make([]byte, 4*len(x))
	s := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(f[4*i:], math.Float32bits(v))
		binary.LittleEndian.PutUint16(s[2*i:], uint16(int16(math.Round(float64(max(-1, min(1, v)))*32767))))
	}
	for i := 0; i+16 <= len(f); i += 4 {
		out[[16]byte(f[i:i+16])] = true
	}
	for i := 0; i+16 <= len(s); i += 2 {
		if w := [16]byte(s[i : i+16]); w != ([16]byte{}) {
			out[w] = true
		}
	}
	return out
}

func holdsPCM(b []byte, sig map[[16]byte]bool) bool {
	for i := 0; i+16 <= len(b); i++ {
		if sig[[16]byte(b[i:i+16])] {
			return true
		}
	}
	return false
}

// kill -9 mid-session with audio retention on: the spool left behind holds ciphertext
// only, `purge --dry-run` lists it, and the restarted server sweeps it (its key died
// with the process) and records the deletion, with the audit chain intact.
func TestKillDashNineWithRetainedAudio(t *testing.T) {
	model, vad := testModels(t)
	bin := scribeBinary(t)
	dir := t.TempDir()
	// Seeded noise makes the room's bytes unique to this run.
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	long := jfkThreeTimes(t)
	for i := range long {
		long[i] += float32(rng.NormFloat64() * 0.01)
	}
	wav := filepath.Join(t.TempDir(), "long.wav")
	if err := audio.WriteWAVFile(wav, 16000, [][]float32{long}); err != nil {
		t.Fatal(err)
	}
	src, err := audio.ReadFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	sig := pcmSignature(src.Channels[0])
	if b, _ := os.ReadFile(wav); !holdsPCM(b, sig) {
		t.Fatal("the scanner does not recognise the signal in its own WAV")
	}
	cfgFile, roomID := seedWAVRoom(t, dir, wav, model, vad, "audio:\n  retention: until-approved\n  retention_ttl: 2h\n")

	id, _ := killMidRecording(t, bin, cfgFile, dir, roomID, map[string]any{"consent": true})
	spoolFile := filepath.Join(dir, "spool", id+".spool")

	ciphertext, err := os.ReadFile(spoolFile)
	if err != nil || len(ciphertext) == 0 {
		t.Fatalf("after kill -9 the spool file should be left (unreadable): %d bytes, %v", len(ciphertext), err)
	}
	if holdsPCM(ciphertext, sig) {
		t.Fatal("the spool file holds plaintext room audio")
	}
	// Every file in the data directory: database, WAL, key, spool.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); holdsPCM(b, sig) {
				t.Errorf("plaintext room audio in %s after kill -9", p)
			}
		}
		return nil
	})
	code, out, errOut := runCLI("purge", "--dry-run", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, id+".spool") || !strings.Contains(out, fmt.Sprintf("%d bytes", len(ciphertext))) {
		t.Fatalf("purge --dry-run does not list the spool file: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(spoolFile); err != nil {
		t.Fatal("purge --dry-run removed the spool file")
	}

	cmd2, _, stderr2 := startServeProt(t, bin, cfgFile, dir)
	if _, err := os.Stat(spoolFile); !os.IsNotExist(err) {
		t.Fatalf("the restarted server did not sweep %s: %v", spoolFile, err)
	}
	es := stopAndAudit(t, cmd2, stderr2, dir, id)
	want := fmt.Sprintf(`"bytes":%d`, len(ciphertext))
	found := false
	for _, e := range es {
		found = found || (e.Action == "audio_deleted" && strings.Contains(string(e.Details), `"reason":"crash-sweep"`) && strings.Contains(string(e.Details), want))
	}
	if !found {
		t.Fatalf("no audio_deleted crash-sweep event with %s for the session in %+v", want, es)
	}
}
