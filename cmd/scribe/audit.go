package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"scribe/internal/audit"
	"scribe/internal/config"
	"scribe/internal/store"
)

func init() {
	register("audit", "check the hash-chained audit trail (scribe audit verify)", cmdAudit)
}

// dataFlags are the flags every data command shares.
type dataFlags struct {
	cfgPath, dataDir *string
}

func addDataFlags(fs interface {
	String(name, value, usage string) *string
}) dataFlags {
	return dataFlags{
		cfgPath: fs.String("config", "", "configuration file (YAML)"),
		dataDir: fs.String("data-dir", "", "data directory (default from config)"),
	}
}

func (d dataFlags) load() (config.Config, error) {
	cfg, err := config.Load(*d.cfgPath)
	if err != nil {
		return cfg, err
	}
	if *d.dataDir != "" {
		cfg.DataDir = *d.dataDir
	}
	return cfg, nil
}

// openStore loads the configuration and opens the database of an installed scribe.
func (d dataFlags) openStore(ctx context.Context) (*store.Store, config.Config, error) {
	cfg, err := d.load()
	if err != nil {
		return nil, cfg, err
	}
	st, err := openExistingStore(ctx, cfg)
	return st, cfg, err
}

// openExistingStore opens the database of an installed scribe, refusing to create one.
func openExistingStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	db := filepath.Join(cfg.DataDir, "scribe.db")
	if _, err := os.Stat(db); err != nil {
		return nil, fmt.Errorf("no scribe database at %s: %w", db, err)
	}
	return store.OpenWith(ctx, db, store.Options{KeyFile: cfg.KeyFile()})
}

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return errUsagef("usage: scribe audit verify [--config F] [--data-dir D]")
	}
	fs := newFlags("audit verify", stderr)
	df := addDataFlags(fs)
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	st, _, err := df.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return audit.RunVerifyCLI(ctx, st.DB(), stdout)
}
