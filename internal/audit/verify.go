package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Problem kinds Verify reports.
const (
	Edited    = "edited"    // the entry's content no longer matches its hash
	Deleted   = "deleted"   // entries are missing before this one
	Reordered = "reordered" // the entry's content belongs at another position
	Inserted  = "inserted"  // entries were added that were never part of the chain
)

// Problem is the first break in the chain.
type Problem struct {
	Seq    int64  // the first bad entry (for Deleted: the first missing seq)
	Kind   string // Edited, Deleted, Reordered or Inserted
	Detail string
}

func (p Problem) String() string {
	return fmt.Sprintf("audit chain broken at seq %d (%s): %s", p.Seq, p.Kind, p.Detail)
}

// Report is the result of Verify. Problem is nil when the chain is intact.
type Report struct {
	Entries int64  // entries checked (up to the first problem)
	Head    string // hash of the last good entry; keep a copy off the machine
	Problem *Problem
}

// OK reports whether the whole chain verified.
func (r Report) OK() bool { return r.Problem == nil }

// ErrChainBroken is returned by RunVerifyCLI when the chain does not verify.
var ErrChainBroken = errors.New("audit chain broken")

// Verify walks the whole chain in seq order and reports the first bad entry. The error is
// for failures to read the database; a broken chain is a Report with a Problem.
func Verify(ctx context.Context, db *sql.DB) (Report, error) {
	rep := Report{Head: Genesis}
	rows, err := db.QueryContext(ctx,
		`SELECT seq, at, actor, action, session_id, details, prev_hash, hash FROM audit_log ORDER BY seq`)
	if err != nil {
		return rep, fmt.Errorf("audit verify: %w", err)
	}
	prev := entry{Hash: Genesis} // seq 0 stands for the genesis
	var bad *entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.SessionID, &e.Details, &e.PrevHash, &e.Hash); err != nil {
			rows.Close()
			return rep, fmt.Errorf("audit verify: %w", err)
		}
		if e.Seq != prev.Seq+1 || e.computeHash() != e.Hash || e.PrevHash != prev.Hash {
			bad = &e
			break
		}
		rep.Entries++
		rep.Head = e.Hash
		prev = e
	}
	// Close before classifying: diagnose queries again, and a one-connection pool would
	// otherwise wait for itself.
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("audit verify: %w", err)
	}
	if bad != nil {
		p, err := diagnose(ctx, db, prev, *bad)
		if err != nil {
			return rep, err
		}
		rep.Problem = &p
	}
	return rep, nil
}

// diagnose explains why e does not follow prev.
func diagnose(ctx context.Context, db *sql.DB, prev, e entry) (Problem, error) {
	if e.Seq != prev.Seq+1 {
		return Problem{Seq: prev.Seq + 1, Kind: Deleted,
			Detail: fmt.Sprintf("entries %d to %d are missing (next entry is %d)", prev.Seq+1, e.Seq-1, e.Seq)}, nil
	}
	// Which entry does this one claim to follow? Genesis counts as entry 0.
	pred := int64(-1)
	if e.PrevHash == Genesis {
		pred = 0
	} else {
		err := db.QueryRowContext(ctx, `SELECT seq FROM audit_log WHERE hash = ? LIMIT 1`, e.PrevHash).Scan(&pred)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Problem{}, fmt.Errorf("audit verify: %w", err)
		}
	}
	if e.computeHash() != e.Hash {
		// Content that hashes correctly at the position after its claimed predecessor
		// was moved here intact rather than edited.
		if pred >= 0 && pred+1 != e.Seq {
			moved := e
			moved.Seq = pred + 1
			if moved.computeHash() == e.Hash {
				if moved.Seq < e.Seq {
					// Pushed later while everything before it still verifies: something
					// was slipped in ahead of it.
					return Problem{Seq: moved.Seq, Kind: Inserted,
						Detail: fmt.Sprintf("entries %d to %d were inserted; entry %d now sits at %d", moved.Seq, e.Seq-1, moved.Seq, e.Seq)}, nil
				}
				return Problem{Seq: e.Seq, Kind: Reordered,
					Detail: fmt.Sprintf("holds the content of entry %d", moved.Seq)}, nil
			}
		}
		return Problem{Seq: e.Seq, Kind: Edited, Detail: "content does not match its hash"}, nil
	}
	if pred >= 0 {
		return Problem{Seq: e.Seq, Kind: Reordered,
			Detail: fmt.Sprintf("links to entry %d instead of entry %d", pred, prev.Seq)}, nil
	}
	return Problem{Seq: e.Seq, Kind: Inserted,
		Detail: fmt.Sprintf("prev_hash links to no entry in the log (entry %d's hash expected)", prev.Seq)}, nil
}

// Anchors are the checkpoints `scribe audit verify` found outside the chain, and where it
// looked for them.
type Anchors struct {
	Checkpoints []Checkpoint
	Verifier    Verifier
	Looked      []string // the places searched, for the "none found" warning
}

// RunVerifyCLI verifies the chain, then compares it with the signed checkpoints in
// anchors, and prints the outcome, for `scribe audit verify`. It returns an error (so the
// command exits non-zero) when the chain is broken, truncated or rewritten.
func RunVerifyCLI(ctx context.Context, db *sql.DB, stdout io.Writer, anchors Anchors) error {
	rep, err := Verify(ctx, db)
	if err != nil {
		return err
	}
	var failed *Problem
	if rep.Problem != nil {
		fmt.Fprintf(stdout, "%s\n%d entries verified before it; last good hash %s\n", rep.Problem, rep.Entries, rep.Head)
		failed = rep.Problem
	} else {
		fmt.Fprintf(stdout, "audit chain OK: %d entries, head %s\n", rep.Entries, rep.Head)
	}
	ar, err := CheckAnchors(ctx, db, anchors.Checkpoints, anchors.Verifier)
	if err != nil {
		return err
	}
	switch {
	case ar.Problem != nil && ar.Problem.Kind == Rewritten:
		fmt.Fprintf(stdout, "audit chain rewritten (from seq %d on at the earliest): %s\n", ar.Problem.Seq, ar.Problem.Detail)
		if failed == nil {
			failed = ar.Problem
		}
	case ar.Problem != nil:
		fmt.Fprintf(stdout, "audit chain %s at seq %d: %s\n", ar.Problem.Kind, ar.Problem.Seq, ar.Problem.Detail)
		if failed == nil {
			failed = ar.Problem
		}
	case ar.Newest != nil:
		fmt.Fprintf(stdout, "anchored: the chain matches %d signed checkpoint(s); the newest is %s\n", ar.Valid, ar.Newest)
	default:
		fmt.Fprintf(stdout, "WARNING: no signed checkpoint found (looked in: %s): a truncated or rewritten chain cannot be told from an intact one\n", strings.Join(anchors.Looked, "; "))
	}
	if ar.Invalid > 0 {
		fmt.Fprintf(stdout, "WARNING: %d checkpoint(s) ignored: bad signature or unknown key (forged, corrupted, or signed with a data key this machine does not have)\n", ar.Invalid)
	}
	if failed != nil {
		return fmt.Errorf("%w at seq %d (%s)", ErrChainBroken, failed.Seq, failed.Kind)
	}
	return nil
}
