package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"scribe/internal/app"
	"scribe/internal/domain"
)

// checkTLS checks the configured certificate, or the one scribe generated in the data
// directory: it must parse, match its key, and be valid now and for a while yet.
func checkTLS(_ context.Context, opt Options) Result {
	certPath, keyPath := opt.Config.TLS.Cert, opt.Config.TLS.Key
	generated := certPath == ""
	if generated {
		dir := filepath.Join(opt.Config.DataDir, "tls")
		certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if _, err := os.Stat(certPath); os.IsNotExist(err) {
			return ok("tls", "no certificate configured; scribe serve generates a self-signed one in %s", dir)
		}
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return fail("tls", "certificate %s / key %s: %v", certPath, keyPath, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fail("tls", "certificate %s: %v", certPath, err)
	}
	now := time.Now()
	switch {
	case now.Before(leaf.NotBefore):
		return fail("tls", "certificate %s is not valid until %s (is the clock right?)", certPath, leaf.NotBefore.Format(time.DateOnly))
	case now.After(leaf.NotAfter):
		return fail("tls", "certificate %s expired on %s", certPath, leaf.NotAfter.Format(time.DateOnly))
	case leaf.NotAfter.Sub(now) < 30*24*time.Hour:
		return warn("tls", "certificate %s expires on %s: renew it soon", certPath, leaf.NotAfter.Format(time.DateOnly))
	}
	kind := "configured"
	if generated {
		kind = "self-signed (browsers warn; use the practice's certificate in tls.cert/tls.key)"
	}
	return ok("tls", "%s valid until %s for %s, %s", certPath, leaf.NotAfter.Format(time.DateOnly), strings.Join(leaf.DNSNames, ", "), kind)
}

// checkClock asks systemd-timesyncd (timedatectl) or chrony whether the clock is
// synchronised; audit timestamps and certificate checks depend on it. Without either,
// it can only tell that the clock is not earlier than this binary's build.
func checkClock(ctx context.Context, opt Options) Result {
	now := time.Now()
	if !opt.BuildTime.IsZero() && now.Before(opt.BuildTime) {
		return fail("clock", "the clock says %s, before this scribe was built (%s): set the time and enable NTP", now.Format(time.RFC3339), opt.BuildTime.Format(time.RFC3339))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := exec.LookPath("timedatectl"); err == nil {
		out, err := exec.CommandContext(ctx, "timedatectl", "show", "--property=NTPSynchronized", "--value").Output()
		if err == nil {
			if strings.TrimSpace(string(out)) == "yes" {
				return ok("clock", "synchronised (timedatectl)")
			}
			return warn("clock", "not synchronised to a time server (timedatectl); enable NTP: timedatectl set-ntp true")
		}
	}
	if _, err := exec.LookPath("chronyc"); err == nil {
		out, err := exec.CommandContext(ctx, "chronyc", "-n", "tracking").Output()
		if err == nil {
			if strings.Contains(string(out), "Leap status     : Normal") {
				return ok("clock", "synchronised (chrony)")
			}
			return warn("clock", "chrony is not synchronised")
		}
	}
	if opt.BuildTime.IsZero() {
		return warn("clock", "cannot tell whether the clock is synchronised (no timedatectl or chrony answered)")
	}
	return warn("clock", "no time service answered; the clock (%s) is at least later than this build", now.Format(time.RFC3339))
}

// benchSeconds is how much audio the benchmark decodes: one long utterance.
const benchSeconds = 5.0

// checkBench loads the whisper model with the configured workers and threads, decodes
// benchSeconds of audio once to warm up and once measured, and estimates the rooms this
// machine can serve live (see roomsFor).
func checkBench(ctx context.Context, opt Options) Result {
	if !opt.Bench {
		return Result{}
	}
	cfg := opt.Config
	if _, err := os.Stat(cfg.Models.Whisper); err != nil {
		return fail("bench", "skipped: whisper model %s is missing", cfg.Models.Whisper)
	}
	if _, err := os.Stat(cfg.Models.VAD); err != nil {
		return fail("bench", "skipped: VAD model %s is missing", cfg.Models.VAD)
	}
	rt, err := app.Load(cfg, app.Options{})
	if err != nil {
		return fail("bench", "cannot load the models: %v", err)
	}
	defer rt.Close()
	utt := domain.Utterance{Interval: domain.Interval{Start: 0, End: benchSeconds}, Final: true,
		Channels: [][]float32{speechLike(benchSeconds)}}
	var took time.Duration
	for range 2 { // the first decode pays for allocations and page faults
		start := time.Now()
		if _, _, err := rt.Engine.Transcribe(ctx, utt); err != nil {
			return fail("bench", "decoding failed: %v", err)
		}
		took = time.Since(start)
	}
	_, threads := cfg.Parallelism()
	cores := runtime.NumCPU()
	rooms := roomsFor(cores, threads, took.Seconds())
	detail := fmt.Sprintf("%s decoded %.0f s in %.2f s (%.1f× real time, %d thread(s)); %d cores → about %d room(s) live",
		filepath.Base(cfg.Models.Whisper), benchSeconds, took.Seconds(), benchSeconds/took.Seconds(), threads, cores, rooms)
	if rooms < 1 {
		// Transcription still works, it just lags behind live speech: worth knowing, not
		// broken (and a busy moment during the benchmark can cause it).
		return warn("bench", "%s: too slow to keep up with one live room; use a smaller model or faster machine", detail)
	}
	return ok("bench", "%s", detail)
}

// speechLike is a voiced, syllable-rate-modulated harmonic signal: not words, but it
// keeps the encoder and decoder as busy as speech of that length.
func speechLike(seconds float64) []float32 {
	n := int(seconds * domain.SampleRate)
	out := make([]float32, n)
	for i := range out {
		t := float64(i) / domain.SampleRate
		f0 := 120 + 20*math.Sin(2*math.Pi*0.7*t)
		var v float64
		for h := 1; h <= 8; h++ {
			v += math.Sin(2*math.Pi*f0*float64(h)*t) / float64(h)
		}
		env := 0.5 + 0.5*math.Sin(2*math.Pi*4*t) // about four syllables a second
		out[i] = float32(0.1 * env * v)
	}
	return out
}
