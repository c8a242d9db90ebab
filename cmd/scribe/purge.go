package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scribe/internal/config"
	"scribe/internal/spool"
)

func init() {
	register("purge", "delete transcripts past retention after approval (--dry-run lists them)", cmdPurge)
}

func cmdPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("purge", stderr)
	df := addDataFlags(fs)
	dry := fs.Bool("dry-run", false, "only list what would be removed")
	days := fs.Int("retention-days", 0, "days a transcript is kept after approval (and write-back); default retention.transcript_days (30)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *days < 0 {
		return errUsagef("--retention-days must be at least 1")
	}
	st, cfg, err := df.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if *days == 0 {
		*days = cfg.Retention.TranscriptDays
	}
	if *dry {
		if err := listSpools(spoolDir(cfg), stdout); err != nil {
			return err
		}
	}
	ps, err := st.PurgeCandidates(ctx, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	verb := "purged"
	if *dry {
		verb = "would purge"
	}
	for _, p := range ps {
		if !*dry {
			if err := st.PurgeTranscript(ctx, p); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "%s session %s (approved %s): %d segments, %d edits, %d flags, document %v\n",
			verb, p.SessionID, p.ApprovedAt.Format(time.RFC3339), p.Segments, p.Edits, p.Flags, p.Document)
	}
	fmt.Fprintf(stdout, "%s %d sessions (retention %d days after approval)\n", verb, len(ps), *days)
	return nil
}

// spoolDir is where a server keeps encrypted audio spools (audio.retention until-approved).
func spoolDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "spool") }

// listSpools shows the audio spool files present. Their keys live only in the server
// process that wrote them, so any file no running server holds is unreadable and is
// removed (and recorded) by the next server start.
func listSpools(dir string, stdout io.Writer) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		entries, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("audio spool directory: %w", err)
	}
	var n int
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), spool.Ext) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		n++
		total += info.Size()
		fmt.Fprintf(stdout, "would delete audio spool %s (session %s): %d bytes, encrypted, written %s\n",
			filepath.Join(dir, e.Name()), strings.TrimSuffix(e.Name(), spool.Ext), info.Size(), info.ModTime().UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "would delete %d audio spool files, %d bytes (removable unless a running server holds them; the next server start sweeps them)\n", n, total)
	return nil
}
