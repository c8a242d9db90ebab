package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"scribe/internal/audit"
	"scribe/internal/keys"
	"scribe/internal/store"
)

func init() {
	register("backup", "copy the database consistently while scribe runs (scribe backup DEST)", cmdBackup)
}

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", stderr)
	df := addDataFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsagef("want one destination file: scribe backup [--config F] DEST")
	}
	cfg, err := df.load()
	if err != nil {
		return err
	}
	// The data key signs the backup's audit checkpoint. Without it the backup is still
	// taken, without the anchor.
	var signer audit.Signer
	if kr, err := keys.Load(cfg.KeyFile()); err == nil {
		signer = kr
	} else {
		fmt.Fprintf(stderr, "warning: the data key is not readable here (%v): the backup carries no signed audit checkpoint\n", err)
	}
	db := filepath.Join(cfg.DataDir, "scribe.db")
	cp, err := store.BackupFile(ctx, db, pos[0], signer)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s (transcripts stay encrypted: keep the data key separately)\n", db, pos[0])
	if signer != nil {
		fmt.Fprintf(stdout, "audit checkpoint: seq %d, hash %s, signed with key %s (kept in the backup", cp.Seq, cp.Hash, cp.Key)
		if err := audit.AppendCheckpointFile(cfg.AuditCheckpointFile(), cp); err != nil {
			fmt.Fprintf(stdout, ")\n")
			fmt.Fprintf(stderr, "warning: %v\n", err)
		} else {
			fmt.Fprintf(stdout, " and in %s)\n", cfg.AuditCheckpointFile())
		}
	}
	return nil
}
