package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"

	"scribe/internal/nhsnumber"
	"scribe/internal/store"
)

// osActor names, for the audit trail, the operating-system user running a data command:
// "os:alice", or "os:alice (sudo)" when alice ran it through sudo as another user.
func osActor() string {
	if su := os.Getenv("SUDO_USER"); su != "" {
		return "os:" + su + " (sudo)"
	}
	if u, err := user.Current(); err == nil {
		return "os:" + u.Username
	}
	return fmt.Sprintf("os:uid %d", os.Getuid())
}

func init() {
	register("export", "subject access: everything held about a patient as JSON (scribe export --nhs-number N)", cmdExport)
}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	df := addDataFlags(fs)
	number := fs.String("nhs-number", "", "the patient's NHS number")
	out := fs.String("out", "", "write the JSON to this file (mode 0600) instead of stdout")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *number == "" {
		return errUsagef("usage: scribe export --nhs-number N [--out FILE] [--config F] [--data-dir D]")
	}
	nhs, err := nhsnumber.Normalize(*number)
	if err != nil {
		return fmt.Errorf("NHS number: %w", err)
	}
	st, _, err := df.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	rec, err := st.ExportSubject(store.WithActor(ctx, osActor()), nhs)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(stderr, "%d sessions written to %s\n", len(rec.Sessions), *out)
	return nil
}
