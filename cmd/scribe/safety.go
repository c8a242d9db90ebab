package main

import (
	"context"
	"errors"
	"io"

	"scribe/internal/safety"
)

func init() {
	register("safety", "check the hazard log's test evidence; render the clinical safety case report", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		err := safety.RunCLI(ctx, args, stdout, stderr, version)
		if errors.Is(err, safety.ErrUsage) {
			return errors.Join(errUsage, err)
		}
		return err
	})
}
