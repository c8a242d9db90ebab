package audit

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"
	"time"

	"scribe/internal/keys"
)

func testKeyring(t *testing.T, fill byte) *keys.Keyring {
	t.Helper()
	kr, err := keys.New(map[int][]byte{1: bytes.Repeat([]byte{fill}, keys.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// rewriteFrom plays an attacker who rewrites entry seq's actor and recomputes every hash
// from there on, so that the chain verifies again.
func rewriteFrom(t *testing.T, raw *sql.DB, seq int64) {
	t.Helper()
	rows, err := raw.Query(`SELECT seq, at, actor, action, session_id, details, prev_hash, hash FROM audit_log WHERE seq >= ? ORDER BY seq`, seq-1)
	if err != nil {
		t.Fatal(err)
	}
	var es []entry
	for rows.Next() {
		var e entry
		rows.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.SessionID, &e.Details, &e.PrevHash, &e.Hash)
		es = append(es, e)
	}
	rows.Close()
	prev := es[0].Hash
	for _, e := range es[1:] {
		if e.Seq == seq {
			e.Actor = "someone-else"
		}
		e.PrevHash = prev
		e.Hash = e.computeHash()
		mustExec(t, raw, `UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Actor, e.PrevHash, e.Hash, e.Seq)
		prev = e.Hash
	}
}

func TestCheckpointsCatchTruncationAndRewrite(t *testing.T) {
	ctx := context.Background()
	kr := testKeyring(t, 7)
	l, db, path := newLog(t, 600)
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	cp1, err := NewCheckpoint(ctx, db, kr, at)
	if err != nil || cp1.Seq != 600 {
		t.Fatalf("checkpoint: %+v %v", cp1, err)
	}
	for i := range 21 {
		l.Append(ctx, Event{Actor: "dr.jones", Action: ActionLogin, Details: map[string]any{"n": i}})
	}
	cp2, _ := NewCheckpoint(ctx, db, kr, at.Add(time.Hour))
	if rep, err := CheckAnchors(ctx, db, []Checkpoint{cp1, cp2}, kr); err != nil || rep.Problem != nil || rep.Valid != 2 || rep.Newest.Seq != 621 {
		t.Fatalf("intact chain: %+v %v", rep, err)
	}

	// Deleting the last 21 rows leaves a valid chain that the newest checkpoint outruns.
	raw := unguard(t, path)
	mustExec(t, raw, `DELETE FROM audit_log WHERE seq > 600`)
	if rep := mustVerify(t, db); !rep.OK() {
		t.Fatalf("precondition: the truncated chain should verify by itself: %+v", rep)
	}
	rep, err := CheckAnchors(ctx, db, []Checkpoint{cp2, cp1}, kr)
	if err != nil || rep.Problem == nil || rep.Problem.Kind != Truncated || rep.Problem.Seq != 601 || !strings.Contains(rep.Problem.Detail, "21 entries were deleted") {
		t.Fatalf("truncation: %+v %v", rep.Problem, err)
	}

	// Rewriting from entry 500 with every later hash recomputed: the chain verifies, the
	// checkpoint of seq 600 no longer matches.
	rewriteFrom(t, raw, 500)
	if rep := mustVerify(t, db); !rep.OK() {
		t.Fatalf("precondition: the rewritten chain should verify by itself: %+v", rep)
	}
	early, _ := CheckpointAt(ctx, db, kr, 400, at.Add(-time.Hour))
	rep, _ = CheckAnchors(ctx, db, []Checkpoint{cp1, early}, kr)
	if rep.Problem == nil || rep.Problem.Kind != Rewritten || rep.Problem.Seq != 401 || !strings.Contains(rep.Problem.Detail, "entry 600") {
		t.Fatalf("rewrite: %+v", rep.Problem)
	}
	var out bytes.Buffer
	if err := RunVerifyCLI(ctx, db, &out, Anchors{Checkpoints: []Checkpoint{cp1}, Verifier: kr}); err == nil || !strings.Contains(out.String(), "audit chain rewritten") {
		t.Fatalf("CLI on a rewritten chain: %v\n%s", err, out.String())
	}

	// A checkpoint signed with another key, or altered, is ignored, not trusted.
	forged := cp1
	forged.Hash = strings.Repeat("0", 64)
	other, _ := NewCheckpoint(ctx, db, testKeyring(t, 9), at)
	if rep, _ := CheckAnchors(ctx, db, []Checkpoint{forged, other}, kr); rep.Valid != 0 || rep.Invalid != 2 || rep.Problem != nil {
		t.Errorf("forged checkpoints: %+v", rep)
	}
}

// CheckpointAt is a checkpoint of entry seq as it is now (test helper: an older one).
func CheckpointAt(ctx context.Context, db *sql.DB, s Signer, seq int64, at time.Time) (Checkpoint, error) {
	c := Checkpoint{Seq: seq, At: at.UTC().Format(time.RFC3339Nano)}
	if err := db.QueryRowContext(ctx, `SELECT hash FROM audit_log WHERE seq = ?`, seq).Scan(&c.Hash); err != nil {
		return c, err
	}
	key, sig, err := s.SignCheckpoint(c.message())
	c.Key, c.Sig = key, encodeSig(sig)
	return c, err
}

// Checkpoints come back from each place they are written: the checkpoint file's JSON
// lines, slog's text and JSON output (the journal), and the database table.
func TestCheckpointsRoundTripThroughFileJournalAndTable(t *testing.T) {
	ctx := context.Background()
	kr := testKeyring(t, 3)
	_, db, _ := newLog(t, 5)
	cp, _ := NewCheckpoint(ctx, db, kr, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("audit checkpoint", cp.LogArgs()...)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("audit checkpoint", cp.LogArgs()...)
	file := t.TempDir() + "/checkpoints.log"
	if err := AppendCheckpointFile(file, cp); err != nil {
		t.Fatal(err)
	}
	if err := SaveCheckpoint(ctx, db, cp); err != nil {
		t.Fatal(err)
	}
	fromFile, _ := ReadCheckpointFile(file)
	fromText, _ := ParseCheckpoints(strings.NewReader("unrelated line\n"+text.String()), "journal")
	fromJSON, _ := ParseCheckpoints(&js, "journal")
	fromTable, _ := LoadCheckpoints(ctx, db, "database")
	for name, got := range map[string][]Checkpoint{"file": fromFile, "slog text": fromText, "slog JSON": fromJSON, "table": fromTable} {
		if len(got) != 1 || got[0].Seq != cp.Seq || got[0].Hash != cp.Hash || got[0].At != cp.At || !got[0].Valid(kr) {
			t.Errorf("%s: %+v (want %+v)", name, got, cp)
		}
	}
	t.Logf("journal line: %s", strings.TrimSpace(text.String()))
}
