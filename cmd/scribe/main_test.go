package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"scribe/internal/config"
	"scribe/internal/domain"
)

func testModels(t *testing.T) (model, vad string) {
	t.Helper()
	model, vad = config.SharedTestModel("for-tests-ggml-tiny.en.bin"), config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin")
	if model == "" || vad == "" {
		t.Skip("../shared/models not available")
	}
	return model, vad
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// Bad input never panics: one clear line on stderr and a non-zero exit.
func TestTranscribeBadInputGivesOneLineError(t *testing.T) {
	model, vad := testModels(t)
	dir := t.TempDir()
	wavHeader := func(dataSize uint32) []byte {
		var b bytes.Buffer
		b.WriteString("RIFF")
		binary.Write(&b, binary.LittleEndian, uint32(36+dataSize))
		b.WriteString("WAVEfmt ")
		for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(16000), uint32(32000), uint16(2), uint16(16)} {
			binary.Write(&b, binary.LittleEndian, v)
		}
		b.WriteString("data")
		binary.Write(&b, binary.LittleEndian, dataSize)
		return b.Bytes()
	}
	files := map[string][]byte{
		"empty.wav":     nil,
		"text.wav":      []byte("this is not audio at all, just some text\n"),
		"huge.wav":      append(wavHeader(0xFFFFFFF0), make([]byte, 100)...),
		"truncated.wav": wavHeader(32000)[:30],
		"mulaw.wav":     bytes.Replace(wavHeader(100), []byte{1, 0, 1, 0}, []byte{7, 0, 1, 0}, 1),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o600)
		code, _, stderr := runCLI("transcribe", p, "--model", model, "--vad-model", vad)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code == 0 && name != "huge.wav" {
			t.Errorf("%s: exit 0", name)
		}
		if code != 0 && (len(lines) != 1 || !strings.HasPrefix(lines[0], "scribe transcribe: ")) {
			t.Errorf("%s: want one error line, got %q", name, stderr)
		}
		t.Logf("%s: exit %d: %s", name, code, strings.TrimSpace(stderr))
	}
	jfk := filepath.Join(config.SharedDir(), "audio", "jfk.wav")
	for _, args := range [][]string{
		{"transcribe", jfk, "--model", filepath.Join(dir, "missing.bin"), "--vad-model", vad},
		{"transcribe", jfk, "--model", vad, "--vad-model", vad},
		{"transcribe", jfk, "--model", model, "--vad-model", model},
		{"transcribe", filepath.Join(dir, "nope.wav"), "--model", model, "--vad-model", vad},
	} {
		code, _, stderr := runCLI(args...)
		if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	if code, _, _ := runCLI("transcribe"); code != 2 {
		t.Errorf("missing file argument: exit %d, want 2", code)
	}
	if code, _, _ := runCLI("transcribe", jfk, "--format", "docx"); code != 2 {
		t.Errorf("unknown format: exit %d, want 2", code)
	}
}

func TestTranscribeAndVADCommands(t *testing.T) {
	model, vad := testModels(t)
	jfk := filepath.Join(config.SharedDir(), "audio", "jfk.wav")
	tr := transcribeJSON(t, jfk, model, vad)
	if tr.AudioSeconds < 10.9 || len(tr.Segments) == 0 || tr.Timings.TotalMS <= 0 {
		t.Errorf("transcript %+v", tr)
	}
	cues := map[string]*regexp.Regexp{
		"srt":  regexp.MustCompile(`(?m)^1\n00:00:00,\d{3} --> 00:00:0\d,\d{3}\n\S`),
		"vtt":  regexp.MustCompile(`^WEBVTT\n\n00:00:00\.\d{3} --> 00:00:0\d\.\d{3}\n<v (clinician|unknown)>`),
		"text": regexp.MustCompile(`(?m)^\[00:00:00\] (clinician|unknown): \S`),
	}
	for f, re := range cues {
		var b bytes.Buffer
		if err := writeTranscript(&b, &tr, f); err != nil || !re.MatchString(b.String()) {
			t.Errorf("%s output %q (%v)", f, b.String(), err)
		}
	}
	code, out, _ := runCLI("vad", jfk, "--vad-model", vad, "--format", "json")
	var v struct {
		Speech []domain.Interval `json:"speech"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || len(v.Speech) != 4 {
		t.Errorf("vad: exit %d, %s", code, out)
	}
}

// make run's command: the demo server starts, prints its URL, and /healthz answers.
func TestServeDemoPrintsURLAndAnswersHealthz(t *testing.T) {
	testModels(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dataDir := filepath.Join(t.TempDir(), "fresh") // made by serve itself
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer pw.Close()
		run(ctx, []string{"serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, pw, &errb)
	}()
	urlc := make(chan string, 1)
	go func() {
		b := make([]byte, 4096)
		var acc string
		for {
			n, err := pr.Read(b)
			acc += string(b[:n])
			if m := regexp.MustCompile(`running at (https://\S+)`).FindStringSubmatch(acc); m != nil {
				urlc <- m[1]
				io.Copy(io.Discard, pr)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var url string
	select {
	case url = <-urlc:
	case <-time.After(60 * time.Second):
		t.Fatalf("no URL printed; stderr: %s", errb.String())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	resp, err := c.Get(url + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	// Private from the first start: the data directory 0700, the database and its key 0600.
	for name, want := range map[string]os.FileMode{"": 0o700, "scribe.db": 0o600, "scribe.db-wal": 0o600, "scribe.db-shm": 0o600, "data.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dataDir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s/%s has mode %04o, want %04o", dataDir, name, fi.Mode().Perm(), want)
		}
	}
	// TLS offers no CBC or SHA-1 cipher suites, even to a TLS 1.2 client asking for them.
	host := strings.TrimSuffix(strings.TrimPrefix(url, "https://"), "/")
	weak := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
	if conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: weak}); err == nil {
		t.Errorf("a TLS 1.2 handshake with only CBC/SHA-1 suites succeeded: %s", tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
		conn.Close()
	}
	if conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Errorf("a TLS 1.2 client with AEAD suites cannot connect: %v", err)
	} else {
		conn.Close()
	}
	cancel()
	wg.Wait()
}
