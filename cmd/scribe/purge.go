package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"scribe/internal/store"
)

func init() {
	register("purge", "delete transcripts past retention after approval (--dry-run lists them)", cmdPurge)
}

func cmdPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("purge", stderr)
	df := addDataFlags(fs)
	dry := fs.Bool("dry-run", false, "only list what would be removed")
	days := fs.Int("retention-days", int(store.DefaultTranscriptRetention/(24*time.Hour)), "days a transcript is kept after approval (and write-back)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *days < 1 {
		return errUsagef("--retention-days must be at least 1")
	}
	st, _, err := df.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
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
