package main

import (
	"context"
	"fmt"
	"io"

	"scribe/internal/keys"
)

func init() {
	register("key", "data key management (scribe key rotate: new key, re-encrypt everything)", cmdKey)
}

func cmdKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errUsagef("usage: scribe key rotate [--config F] [--data-dir D]  (stop scribe serve first)")
	}
	fs := newFlags("key rotate", stderr)
	df := addDataFlags(fs)
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	// Open first: this checks the current key matches the database before anything changes.
	st, cfg, err := df.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if src := st.Keyring().Source(); src != "key file "+cfg.KeyFile() {
		return fmt.Errorf("the data key comes from the %s: rotate it there (add a vN: line), then run scribe key rotate with the key file; this command rotates only %s", src, cfg.KeyFile())
	}
	v, err := keys.Rotate(cfg.KeyFile())
	if err != nil {
		return err
	}
	kr, err := keys.Load(cfg.KeyFile())
	if err != nil {
		return err
	}
	n, err := st.RotateKeys(ctx, kr)
	if err != nil {
		return fmt.Errorf("key v%d was added to %s but re-encryption failed (run scribe key rotate again; the old versions are kept): %w", v, cfg.KeyFile(), err)
	}
	fmt.Fprintf(stdout, "new data key v%d in %s; %d values re-encrypted. Older versions stay in the file for backups made before now.\n", v, cfg.KeyFile(), n)
	return nil
}
