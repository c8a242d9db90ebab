package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"scribe/internal/config"
	"scribe/internal/store"
)

func init() {
	register("backup", "copy the database consistently while scribe runs (scribe backup DEST)", cmdBackup)
}

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	dataDir := fs.String("data-dir", "", "data directory (default from config)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsagef("want one destination file: scribe backup [--config F] DEST")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	db := filepath.Join(cfg.DataDir, "scribe.db")
	if err := store.BackupFile(ctx, db, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s (transcripts stay encrypted: keep the data key separately)\n", db, pos[0])
	return nil
}
