package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"scribe/internal/audit"
	"scribe/internal/store"
)

// addAuditEntries appends n login events to dir's audit trail.
func addAuditEntries(t *testing.T, dir string, n int) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		if err := st.Audit(context.Background(), audit.Event{Actor: "gp", Action: audit.ActionLogin, Details: map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
	}
}

// rawDB opens dir's database as an attacker with the file would, guard triggers dropped.
func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{`DROP TRIGGER audit_log_no_update`, `DROP TRIGGER audit_log_no_delete`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// rewriteChain changes entry seq's actor and recomputes every hash from there on, by the
// hash input internal/audit documents, so the rewritten chain verifies by itself.
func rewriteChain(t *testing.T, db *sql.DB, seq int64) {
	t.Helper()
	jsonString := func(s string) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		return strings.TrimSpace(b.String())
	}
	var prev string
	if err := db.QueryRow(`SELECT hash FROM audit_log WHERE seq = ?`, seq-1).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT seq, at, actor, action, session_id, details FROM audit_log WHERE seq >= ? ORDER BY seq`, seq)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		seq                                 int64
		at, actor, action, session, details string
	}
	var rs []row
	for rows.Next() {
		var r row
		rows.Scan(&r.seq, &r.at, &r.actor, &r.action, &r.session, &r.details)
		rs = append(rs, r)
	}
	rows.Close()
	for _, r := range rs {
		if r.seq == seq {
			r.actor = "someone-else"
		}
		in := `{"seq":` + strconv.FormatInt(r.seq, 10) + `,"at":` + jsonString(r.at) + `,"actor":` + jsonString(r.actor) + `,"action":` + jsonString(r.action) +
			`,"session_id":` + jsonString(r.session) + `,"details":` + r.details + `,"prev_hash":` + jsonString(prev) + `}`
		sum := sha256.Sum256([]byte(in))
		hash := hex.EncodeToString(sum[:])
		if _, err := db.Exec(`UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?`, r.actor, prev, hash, r.seq); err != nil {
			t.Fatal(err)
		}
		prev = hash
	}
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// The audit chain is anchored outside the database: a backup records a signed
// checkpoint (in the backup and in the checkpoint file), and `scribe audit verify` names
// a truncated tail or a chain rewritten with recomputed hashes, which both verify by
// themselves.
func TestAuditVerifyCatchesTruncationAndRewriteWithCheckpoints(t *testing.T) {
	t.Setenv("SCRIBE_DATA_KEY", "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	seedStore(t, dir)
	addAuditEntries(t, dir, 40)
	backup := filepath.Join(t.TempDir(), "backup.db")
	if code, out, errOut := runCLI("backup", "--data-dir", dir, backup); code != 0 {
		t.Fatalf("backup: exit %d: %s %s", code, out, errOut)
	}
	if code, out, _ := runCLI("audit", "verify", "--data-dir", dir); code != 0 || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("intact chain: exit %d: %s", code, out)
	}
	rewritten := copyDir(t, dir)

	// Truncation: the last 21 entries deleted.
	raw := rawDB(t, dir)
	var last int64
	raw.QueryRow(`SELECT MAX(seq) FROM audit_log`).Scan(&last)
	if _, err := raw.Exec(`DELETE FROM audit_log WHERE seq > ?`, last-21); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, out, errOut := runCLI("audit", "verify", "--data-dir", dir)
	t.Logf("truncated: exit %d\n%s%s", code, out, errOut)
	if code == 0 || !strings.Contains(out, "truncated") || !strings.Contains(out, "21 entries") {
		t.Errorf("the last 21 entries deleted: exit %d, output %q; want the truncation named", code, out)
	}
	// The backup alone is enough of an anchor.
	os.Remove(filepath.Join(dir, "audit-checkpoints.log"))
	if code, out, _ := runCLI("audit", "verify", "--data-dir", dir, "--journal=false", "--backup", backup); code == 0 || !strings.Contains(out, "truncated") {
		t.Errorf("with only the backup's checkpoint: exit %d, %q", code, out)
	}

	// Rewrite: entry 10 changed and every later hash recomputed.
	raw = rawDB(t, rewritten)
	rewriteChain(t, raw, 10)
	raw.Close()
	code, out, errOut = runCLI("audit", "verify", "--data-dir", rewritten)
	t.Logf("rewritten: exit %d\n%s%s", code, out, errOut)
	if code == 0 || !strings.Contains(out, "rewritten") {
		t.Errorf("chain rewritten from seq 10: exit %d, output %q; want the rewrite named", code, out)
	}
	if !strings.Contains(out, "audit chain OK") {
		t.Errorf("precondition: the rewritten chain should verify by its own hashes: %q", out)
	}
}
