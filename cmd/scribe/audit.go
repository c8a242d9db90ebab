package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

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

// fileList is a repeatable flag of file names.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return errUsagef("usage: scribe audit verify [--config F] [--data-dir D] [--checkpoints FILE]… [--backup FILE]… [--journal=false]")
	}
	fs := newFlags("audit verify", stderr)
	df := addDataFlags(fs)
	var files, backups fileList
	fs.Var(&files, "checkpoints", "also read checkpoints from this file (a copy of the checkpoint file, saved journal output); repeatable")
	fs.Var(&backups, "backup", "also read the checkpoints kept in this backup (scribe backup); repeatable")
	journal := fs.Bool("journal", true, "also read checkpoints from the system journal (journalctl -u scribe), when there is one")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	st, cfg, err := df.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	anchors := audit.Anchors{Verifier: st.Keyring()}
	add := func(where string, cps []audit.Checkpoint, err error) {
		anchors.Looked = append(anchors.Looked, where)
		if err != nil {
			fmt.Fprintf(stderr, "warning: checkpoints in %s not read: %v\n", where, err)
		}
		anchors.Checkpoints = append(anchors.Checkpoints, cps...)
	}
	cps, err := audit.LoadCheckpoints(ctx, st.DB(), "the database")
	add("the database", cps, err)
	cps, err = audit.ReadCheckpointFile(cfg.AuditCheckpointFile())
	add(cfg.AuditCheckpointFile(), cps, err)
	for _, f := range files {
		cps, err := audit.ReadCheckpointFile(f)
		add(f, cps, err)
	}
	for _, b := range backups {
		cps, err := backupCheckpoints(ctx, b)
		add("backup "+b, cps, err)
	}
	if *journal {
		if cps, err, ok := journalCheckpoints(ctx); ok {
			add("the system journal (scribe.service)", cps, err)
		}
	}
	if err := audit.RunVerifyCLI(ctx, st.DB(), stdout, anchors); err != nil {
		return err
	}
	if pub, ok := st.Keyring().CheckpointPublicKey("v" + fmt.Sprint(st.Keyring().Current())); ok {
		fmt.Fprintf(stdout, "checkpoints are signed with key v%d, Ed25519 public key %s (keep a copy off this machine)\n", st.Keyring().Current(), base64.StdEncoding.EncodeToString(pub))
	}
	return nil
}

// backupCheckpoints reads the checkpoints kept in a backup file, read-only.
func backupCheckpoints(ctx context.Context, path string) ([]audit.Checkpoint, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(path)+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return audit.LoadCheckpoints(ctx, db, "backup "+path)
}

// journalCheckpoints reads the checkpoints scribe serve logged to the system journal; ok
// is false where there is no journalctl.
func journalCheckpoints(ctx context.Context) (cps []audit.Checkpoint, err error, ok bool) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "journalctl", "--quiet", "--no-pager", "--output=cat", "--unit=scribe.service").Output()
	if err != nil {
		return nil, fmt.Errorf("journalctl: %w", err), true
	}
	cps, err = audit.ParseCheckpoints(bytes.NewReader(out), "the system journal")
	return cps, err, true
}
