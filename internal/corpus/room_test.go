package corpus

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"scribe/internal/audio"
	"scribe/internal/domain"
)

// roomPython is the venv's python3 that scripts/pyenv keeps (make-test-audio makes it).
func roomPython(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../scripts/pyenv", "path").Output()
	if err != nil {
		t.Skipf("scripts/pyenv path: %v", err)
	}
	py := filepath.Join(strings.TrimSpace(string(out)), "bin", "python3")
	if err := exec.Command(py, "-c", "import pyroomacoustics").Run(); err != nil {
		t.Skipf("%s has no pyroomacoustics (scripts/pyenv ensure makes it): %v", py, err)
	}
	return py
}

// A room render: the same ground truth as the dry render, one channel per capsule, the
// room's reverberation time as measured on its impulse responses, the noise at the
// asked SNR, the clinician's voice reaching capsule 0 (on the clinician's side) first,
// and a second render served from the cache.
func TestRenderRoomKeepsTruthAndGeometry(t *testing.T) {
	needEspeak(t)
	py := roomPython(t)
	corpusDir := sharedCorpus(t)
	dir := t.TempDir()
	room, _ := FindRoom("rt0.3")
	arr, _ := ArrayFor(2)
	opt := RenderOptions{OutDir: dir, MaxSeconds: 12, Python: py}
	quiet, err := RenderRoom(context.Background(), corpusDir, "day1_consultation01", room, arr, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.NoiseKind, opt.SNRdB = "diffuse", 10
	noisy, err := RenderRoom(context.Background(), corpusDir, "day1_consultation01", room, arr, opt)
	if err != nil {
		t.Fatal(err)
	}
	dry, err := ReadTruth(filepath.Join(dir, "day1_consultation01-12s.truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(noisy.Truth.Utterances) == 0 || len(noisy.Truth.Utterances) != len(dry.Utterances) || noisy.Truth.Utterances[0] != dry.Utterances[0] {
		t.Fatalf("room truth %+v differs from the dry truth %+v", noisy.Truth.Utterances, dry.Utterances)
	}
	ri := noisy.Truth.Room
	if ri == nil || math.Abs(ri.MeasuredRT60-0.3) > 0.3*0.05+0.001 || ri.Array.Capsules != 2 {
		t.Fatalf("room info %+v", ri)
	}
	q, err := audio.ReadFile(quiet.ArrayPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := audio.ReadFile(noisy.ArrayPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Channels) != 2 || len(n.Channels) != 2 || q.Frames() != n.Frames() {
		t.Fatalf("channels %d/%d, frames %d/%d", len(q.Channels), len(n.Channels), q.Frames(), n.Frames())
	}
	// The noise is what the noisy render adds to the quiet one, once their levels are
	// matched (either may have been scaled down against clipping): the noise is
	// uncorrelated with the speech, so projecting one on the other finds the scale.
	var qq, nq float64
	for i := range q.Channels[0] {
		qq += float64(q.Channels[0][i]) * float64(q.Channels[0][i])
		nq += float64(n.Channels[0][i]) * float64(q.Channels[0][i])
	}
	scale := nq / qq
	var ps, pn float64
	for _, u := range noisy.Truth.Utterances {
		for i := int(u.Start * domain.SampleRate); i < int(u.End*domain.SampleRate); i++ {
			s := float64(q.Channels[0][i])
			d := float64(n.Channels[0][i])/scale - s
			ps += s * s
			pn += d * d
		}
	}
	snr := 10 * math.Log10(ps/pn)
	if math.Abs(snr-10) > 1.5 {
		t.Errorf("SNR at capsule 0 over speech %.1f dB, want 10", snr)
	}
	// The clinician's first utterance reaches capsule 0 before capsule 1.
	u := noisy.Truth.Utterances[0]
	lo, hi := int(u.Start*domain.SampleRate), int(u.End*domain.SampleRate)
	lag := bestLag(q.Channels[0][lo:hi], q.Channels[1][lo:hi], 6)
	if lag <= 0 {
		t.Errorf("capsule 1 hears the clinician %d samples after capsule 0, want later", lag)
	}
	again, err := RenderRoom(context.Background(), corpusDir, "day1_consultation01", room, arr, opt)
	if err != nil || !again.Cached {
		t.Errorf("second render: cached %v, %v", again != nil && again.Cached, err)
	}
	opt.Python = filepath.Join(dir, "no-such-python")
	opt.SNRdB = 11
	if _, err := RenderRoom(context.Background(), corpusDir, "day1_consultation01", room, arr, opt); !errors.Is(err, ErrNoRoomSim) {
		t.Errorf("without Python: %v, want ErrNoRoomSim", err)
	}
}

// bestLag is the lag (samples) at which b best matches a delayed: b[i] ≈ a[i-lag].
func bestLag(a, b []float32, maxLag int) int {
	best, bestC := 0, math.Inf(-1)
	for l := -maxLag; l <= maxLag; l++ {
		var c float64
		for i := maxLag; i < len(a)-maxLag; i++ {
			c += float64(b[i]) * float64(a[i-l])
		}
		if c > bestC {
			best, bestC = l, c
		}
	}
	return best
}

func sharedCorpus(t *testing.T) string {
	t.Helper()
	dir := defaultCorpusDir()
	if _, err := os.Stat(filepath.Join(dir, "transcripts")); err != nil {
		t.Skipf("PriMock57 corpus not found at %s", dir)
	}
	return dir
}
