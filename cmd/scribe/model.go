package main

import (
	"context"
	"io"

	"scribe/internal/corpus"
	"scribe/internal/models"
)

func init() {
	register("model", "list, pull (sha256-checked) and verify whisper/VAD models", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return models.RunCLI(ctx, args, stdout, stderr)
	})
	register("corpus", "render PriMock57 consultations to test audio with espeak-ng", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if len(args) == 0 || args[0] != "render" {
			return errUsagef("usage: scribe corpus render [flags]")
		}
		return corpus.RunRenderCLI(ctx, args[1:], stdout, stderr)
	})
}
