package models

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sileroTestFile is the real Silero VAD v6.2.0 ggml file in the shared data; it is the
// same file the manifest's silero entry describes.
const sileroTestFile = "../../../shared/models/for-tests-silero-v6.2.0-ggml.bin"

func needSilero(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(sileroTestFile); err != nil {
		t.Skipf("shared Silero model not available (%v); it lives at ../shared/models beside the repo", err)
	}
	return sileroTestFile
}

func TestLoadEmbeddedManifest(t *testing.T) {
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Kind{"tiny.en": KindWhisper, "tiny": KindWhisper, "base.en": KindWhisper, "base": KindWhisper,
		"small.en": KindWhisper, "tiny.en-q8_0": KindWhisper, "silero-v6.2.0": KindVAD,
		"tiny.en-pypi": KindWhisper, "base-pypi": KindWhisper}
	if len(m.Models) != len(want) {
		t.Errorf("manifest has %d models, want %d", len(m.Models), len(want))
	}
	for name, kind := range want {
		e, ok := m.Find(name)
		if !ok {
			t.Errorf("model %s missing", name)
			continue
		}
		if e.Kind != kind {
			t.Errorf("%s kind = %s, want %s", name, e.Kind, kind)
		}
		if e.Kind == KindWhisper && len(e.Wheels) == 0 && e.URL != "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/"+e.File {
			t.Errorf("%s url = %s", name, e.URL)
		}
	}
	if e, ok := m.Find("ggml-base.en.bin"); !ok || e.Name != "base.en" || e.Size != 147964211 {
		t.Errorf("find by file name: %+v %v", e, ok)
	}
	if _, ok := m.Find("large-v9"); ok {
		t.Error("found a model that is not in the manifest")
	}
}

func TestParseRejectsBadEntries(t *testing.T) {
	good := `{"name":"x","kind":"whisper","file":"x.bin","size":10,"sha256":"` + strings.Repeat("a", 64) + `","url":"https://h/x.bin"}`
	if _, err := Parse([]byte(`{"models":[` + good + `]}`)); err != nil {
		t.Fatalf("good manifest rejected: %v", err)
	}
	cases := map[string]string{
		"bad kind":       strings.Replace(good, `"whisper"`, `"llm"`, 1),
		"path in file":   strings.Replace(good, `"x.bin"`, `"../x.bin"`, 1),
		"zero size":      strings.Replace(good, `"size":10`, `"size":0`, 1),
		"short digest":   strings.Replace(good, strings.Repeat("a", 64), "abc", 1),
		"upper digest":   strings.Replace(good, strings.Repeat("a", 64), strings.Repeat("A", 64), 1),
		"ftp url":        strings.Replace(good, "https://h/x.bin", "ftp://h/x.bin", 1),
		"duplicate name": good + "," + good,
	}
	for name, entries := range cases {
		if _, err := Parse([]byte(`{"models":[` + entries + `]}`)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Parse([]byte(`{"models":[`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func TestWithBaseURL(t *testing.T) {
	m, _ := Load()
	e, _ := m.WithBaseURL("http://mirror.local/models/").Find("tiny.en")
	if e.URL != "http://mirror.local/models/ggml-tiny.en.bin" {
		t.Errorf("url = %s", e.URL)
	}
	orig, _ := m.Find("tiny.en")
	if !strings.HasPrefix(orig.URL, "https://huggingface.co/") {
		t.Errorf("WithBaseURL changed the original manifest: %s", orig.URL)
	}
}

func TestVerifyRealSileroModel(t *testing.T) {
	path := needSilero(t)
	m, _ := Load()
	e, _ := m.Find("silero-v6.2.0")
	if err := Verify(path, e); err != nil {
		t.Fatal(err)
	}
	got, err := VerifyAny(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "silero-v6.2.0" {
		t.Errorf("VerifyAny identified %s", got.Name)
	}
	// The same file against another entry: wrong size, named in the error.
	tiny, _ := m.Find("tiny.en")
	err = Verify(path, tiny)
	var mm *MismatchError
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), "77704715") || !strings.Contains(err.Error(), "885098") {
		t.Errorf("verify against tiny.en: %v", err)
	}
}

func TestVerifyDigestMismatch(t *testing.T) {
	data, e := fakeModel(t, 4096)
	path := filepath.Join(t.TempDir(), "m.bin")
	data[0] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Verify(path, e)
	var mm *MismatchError
	if !errors.As(err, &mm) || mm.GotSHA == "" || !strings.Contains(err.Error(), e.SHA256) || !strings.Contains(err.Error(), mm.GotSHA) {
		t.Fatalf("err = %v, want a digest mismatch naming both digests", err)
	}
	m := Manifest{Models: []Entry{e}}
	if _, err := m.VerifyAny(path); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("VerifyAny: %v, want ErrUnknownModel", err)
	}
	data[0] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := m.VerifyAny(path); err != nil || got.Name != e.Name {
		t.Errorf("VerifyAny on the right bytes: %+v %v", got, err)
	}
	if err := Verify(filepath.Join(t.TempDir(), "absent"), e); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestCLIPullListVerify pulls the real Silero model from a local mirror through the
// CLI, as a site with its own model mirror would.
func TestCLIPullListVerify(t *testing.T) {
	data, err := os.ReadFile(needSilero(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := &modelServer{data: data}
	mux := http.NewServeMux()
	mux.Handle("/mirror/ggml-silero-v6.2.0.bin", srv)
	base := startServer(t, mux).URL + "/mirror"
	dir := t.TempDir()
	ctx := context.Background()
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := RunCLI(ctx, args, &out, &errOut)
		return out.String(), errOut.String(), err
	}

	out, _, err := run("list", "-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "silero-v6.2.0") || strings.Contains(out, "yes") {
		t.Errorf("list before pull:\n%s", out)
	}

	t.Setenv(BaseURLEnv, base)
	out, progress, err := run("pull", "silero-v6.2.0", "-dir", dir)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, progress)
	}
	if !strings.Contains(out, filepath.Join(dir, "ggml-silero-v6.2.0.bin")) || !strings.Contains(progress, "100.0%") {
		t.Errorf("pull output %q, progress %q", out, progress)
	}
	if srv.requests != 1 {
		t.Errorf("mirror got %d requests", srv.requests)
	}

	out, _, err = run("list", "-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "silero-v6.2.0") && !strings.HasSuffix(strings.TrimSpace(line), "yes") {
			t.Errorf("list after pull: %q", line)
		}
	}

	out, _, err = run("verify", filepath.Join(dir, "ggml-silero-v6.2.0.bin"))
	if err != nil || !strings.Contains(out, "silero-v6.2.0 (vad") {
		t.Errorf("verify: %q %v", out, err)
	}
	stranger := filepath.Join(dir, "stranger.bin")
	_ = os.WriteFile(stranger, []byte("not a model"), 0o644)
	if _, _, err := run("verify", stranger); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("verify stranger: %v", err)
	}
	if _, _, err := run("pull", "no-such-model", "-dir", dir); !errors.Is(err, ErrUsage) {
		t.Errorf("pull unknown: %v", err)
	}
	if _, _, err := run("frobnicate"); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown command: %v", err)
	}
}
