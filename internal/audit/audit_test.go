package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=5000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newLog returns a log in a fresh database file plus the file's path, for a second raw
// connection to tamper with.
func newLog(t *testing.T, n int) (*Log, *sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	db := openDB(t, path)
	ctx := context.Background()
	if err := EnsureSchema(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSchema(ctx, db); err != nil { // idempotent
		t.Fatal(err)
	}
	l := New(db)
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		ev := Event{At: base.Add(time.Duration(i) * time.Second), Actor: "dr.jones", Action: ActionSegmentEdit,
			SessionID: "sess-1", Details: map[string]any{"segment_id": fmt.Sprintf("seg-%d", i), "n": i}}
		if err := l.Append(ctx, ev); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	return l, db, path
}

// unguard plays an attacker with write access to the file: a second connection rebuilds
// audit_log without its triggers and uniqueness constraint.
func unguard(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw := openDB(t, path)
	mustExec(t, raw, `
		CREATE TABLE copy AS SELECT * FROM audit_log;
		DROP TABLE audit_log;
		CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, at TEXT, actor TEXT, action TEXT,
			session_id TEXT, details TEXT, prev_hash TEXT, hash TEXT);
		INSERT INTO audit_log SELECT * FROM copy;
		DROP TABLE copy;`)
	return raw
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mustVerify(t *testing.T, db *sql.DB) Report {
	t.Helper()
	rep, err := Verify(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func wantProblem(t *testing.T, db *sql.DB, seq int64, kind string) Report {
	t.Helper()
	rep := mustVerify(t, db)
	if rep.Problem == nil {
		t.Fatalf("tampering not detected: %+v", rep)
	}
	if rep.Problem.Seq != seq || rep.Problem.Kind != kind {
		t.Fatalf("got %v, want seq %d %s", rep.Problem, seq, kind)
	}
	return rep
}

func TestChainOf50Verifies(t *testing.T) {
	_, db, _ := newLog(t, 50)
	var out bytes.Buffer
	if err := RunVerifyCLI(context.Background(), db, &out, Anchors{}); err != nil {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "audit chain OK: 50 entries") {
		t.Fatalf("output %q", out.String())
	}
	var head string
	if err := db.QueryRow(`SELECT hash FROM audit_log WHERE seq = 50`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, db); rep.Head != head || rep.Entries != 50 {
		t.Fatalf("report %+v, want head %s", rep, head)
	}
}

func TestEmptyLogVerifies(t *testing.T) {
	_, db, _ := newLog(t, 0)
	if rep := mustVerify(t, db); !rep.OK() || rep.Entries != 0 || rep.Head != Genesis {
		t.Fatalf("%+v", rep)
	}
}

func TestTriggersRefuseUpdateAndDelete(t *testing.T) {
	_, db, _ := newLog(t, 3)
	for _, q := range []string{`UPDATE audit_log SET actor = 'x' WHERE seq = 2`, `DELETE FROM audit_log WHERE seq = 2`} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want refusal", q, err)
		}
	}
	if !mustVerify(t, db).OK() {
		t.Fatal("chain broken by refused statements")
	}
}

func TestEditedDetailsNamed(t *testing.T) {
	_, db, path := newLog(t, 50)
	raw := unguard(t, path)
	mustExec(t, raw, `UPDATE audit_log SET details = '{"n":17,"segment_id":"seg-99"}' WHERE seq = 17`)
	rep := wantProblem(t, db, 17, Edited)
	if rep.Entries != 16 {
		t.Fatalf("entries before problem = %d", rep.Entries)
	}
	var out bytes.Buffer
	err := RunVerifyCLI(context.Background(), db, &out, Anchors{})
	if !errors.Is(err, ErrChainBroken) || !strings.Contains(out.String(), "seq 17 (edited)") {
		t.Fatalf("err %v, output %q", err, out.String())
	}
}

func TestEditedTimestampNamed(t *testing.T) {
	_, db, path := newLog(t, 10)
	raw := unguard(t, path)
	mustExec(t, raw, `UPDATE audit_log SET at = '2025-03-01T08:00:00Z' WHERE seq = 4`)
	wantProblem(t, db, 4, Edited)
}

func TestDeletedMiddleRowNamed(t *testing.T) {
	_, db, path := newLog(t, 50)
	raw := unguard(t, path)
	mustExec(t, raw, `DELETE FROM audit_log WHERE seq = 25`)
	rep := wantProblem(t, db, 25, Deleted)
	if !strings.Contains(rep.Problem.Detail, "25 to 25") {
		t.Fatalf("detail %q", rep.Problem.Detail)
	}
}

func TestDeletedFirstRowNamed(t *testing.T) {
	_, db, path := newLog(t, 5)
	raw := unguard(t, path)
	mustExec(t, raw, `DELETE FROM audit_log WHERE seq = 1`)
	wantProblem(t, db, 1, Deleted)
}

// Deleting a row and renumbering the rest hides the gap; the hashes still give it away.
func TestDeletedAndRenumberedDetected(t *testing.T) {
	_, db, path := newLog(t, 10)
	raw := unguard(t, path)
	mustExec(t, raw, `DELETE FROM audit_log WHERE seq = 5`)
	mustExec(t, raw, `UPDATE audit_log SET seq = seq + 1000 WHERE seq > 5`)
	mustExec(t, raw, `UPDATE audit_log SET seq = seq - 1001 WHERE seq > 1000`)
	wantProblem(t, db, 5, Edited)
}

func TestSwappedRowsDetected(t *testing.T) {
	_, db, path := newLog(t, 30)
	raw := unguard(t, path)
	cols := `at, actor, action, session_id, details, prev_hash, hash`
	mustExec(t, raw, `CREATE TABLE tmp AS SELECT * FROM audit_log WHERE seq IN (10, 20)`)
	mustExec(t, raw, `UPDATE audit_log SET (`+cols+`) = (SELECT `+cols+` FROM tmp WHERE tmp.seq = 30 - audit_log.seq) WHERE seq IN (10, 20)`)
	rep := wantProblem(t, db, 10, Reordered)
	if !strings.Contains(rep.Problem.Detail, "entry 20") {
		t.Fatalf("detail %q", rep.Problem.Detail)
	}
}

// Swapping only the described content (keeping the hash columns) reads as an edit.
func TestSwappedContentDetected(t *testing.T) {
	_, db, path := newLog(t, 30)
	raw := unguard(t, path)
	cols := `at, details`
	mustExec(t, raw, `CREATE TABLE tmp AS SELECT * FROM audit_log WHERE seq IN (10, 20)`)
	mustExec(t, raw, `UPDATE audit_log SET (`+cols+`) = (SELECT `+cols+` FROM tmp WHERE tmp.seq = 30 - audit_log.seq) WHERE seq IN (10, 20)`)
	wantProblem(t, db, 10, Edited)
}

// An attacker who shifts later rows up and slips a correctly hashed entry into the gap.
func TestInsertedRowNamed(t *testing.T) {
	_, db, path := newLog(t, 40)
	raw := unguard(t, path)
	var prevHash string
	if err := raw.QueryRow(`SELECT hash FROM audit_log WHERE seq = 29`).Scan(&prevHash); err != nil {
		t.Fatal(err)
	}
	mustExec(t, raw, `UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 30`)
	mustExec(t, raw, `UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000`)
	forged := entry{Seq: 30, At: "2025-03-01T09:00:29.5Z", Actor: "dr.jones", Action: string(ActionSessionApprove),
		SessionID: "sess-1", Details: "{}", PrevHash: prevHash}
	forged.Hash = forged.computeHash()
	mustExec(t, raw, `INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?)`, forged.Seq, forged.At, forged.Actor,
		forged.Action, forged.SessionID, forged.Details, forged.PrevHash, forged.Hash)
	wantProblem(t, db, 30, Inserted)
}

func TestForeignRowAppendedNamed(t *testing.T) {
	_, db, path := newLog(t, 5)
	raw := unguard(t, path)
	forged := entry{Seq: 6, At: "2025-03-01T10:00:00Z", Actor: "mallory", Action: string(ActionLogin),
		Details: "{}", PrevHash: strings.Repeat("ab", 32)}
	forged.Hash = forged.computeHash()
	mustExec(t, raw, `INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?)`, forged.Seq, forged.At, forged.Actor,
		forged.Action, forged.SessionID, forged.Details, forged.PrevHash, forged.Hash)
	wantProblem(t, db, 6, Inserted)
}

func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	l, db, _ := newLog(t, 0)
	// A second Log on its own pool, as a second component of the process might hold:
	// its mutex does not cover the first, so SQLite's write lock must.
	path := ""
	if err := db.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	other := New(openDB(t, path))
	const goroutines, each = 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lg := l
			if g%2 == 1 {
				lg = other
			}
			for i := range each {
				ev := Event{Actor: fmt.Sprintf("user%d", g), Action: ActionSegmentFlag,
					Details: map[string]any{"segment_id": fmt.Sprintf("g%d-%d", g, i), "flag": "wrong_words"}}
				if err := lg.Append(context.Background(), ev); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if rep := mustVerify(t, db); !rep.OK() || rep.Entries != goroutines*each {
		t.Fatalf("%+v %v", rep, rep.Problem)
	}
}

func TestAppendTxRollsBackWithCaller(t *testing.T) {
	l, db, _ := newLog(t, 3)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendTx(ctx, tx, Event{Actor: "admin", Action: ActionConfigChange, Details: map[string]any{"key": "retention"}}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	if err := l.Append(ctx, Event{Actor: "admin", Action: ActionLogout}); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, db); !rep.OK() || rep.Entries != 4 {
		t.Fatalf("%+v", rep)
	}
}

// The package comment documents the hash input so others can verify the log without this
// code; rebuild it from that description.
func TestHashMatchesDocumentedLayout(t *testing.T) {
	l, db, _ := newLog(t, 0)
	at := time.Date(2025, 3, 1, 9, 30, 0, 120000000, time.FixedZone("BST", 3600))
	err := l.Append(context.Background(), Event{At: at, Actor: "dr.<jones>", Action: ActionAudioDeleted,
		SessionID: "s1", Details: map[string]any{"reason": "approved", "bytes": int64(6400000000), "z": map[string]any{"b": 1, "a": true}}})
	if err != nil {
		t.Fatal(err)
	}
	doc := `{"seq":1,"at":"2025-03-01T08:30:00.12Z","actor":"dr.<jones>","action":"audio_deleted","session_id":"s1",` +
		`"details":{"bytes":6400000000,"reason":"approved","z":{"a":true,"b":1}},"prev_hash":"` + Genesis + `"}`
	sum := sha256.Sum256([]byte(doc))
	var hash, details string
	if err := db.QueryRow(`SELECT hash, details FROM audit_log WHERE seq = 1`).Scan(&hash, &details); err != nil {
		t.Fatal(err)
	}
	if hash != hex.EncodeToString(sum[:]) {
		t.Fatalf("hash %s does not match documented layout (details %s)", hash, details)
	}
}

func TestGuardRejectsPatientData(t *testing.T) {
	l, db, _ := newLog(t, 0)
	ctx := context.Background()
	type s struct {
		Text string `json:"text"`
	}
	rejected := []map[string]any{
		{"text": "patient reports chest pain"},
		{"new_text": "x"},
		{"segmentText": "x"},
		{"Transcript": "x"},
		{"transcript_id": "x"},
		{"nhs_number": 9434765919},
		{"nhsNumber": "x"},
		{"patient": "943 476 5919"},
		{"note": "ref 943-476-5919 today"},
		{"id": "9434765919"},
		{"id": "1234567890"}, // fails the check digit: still refused
		{"nested": map[string]any{"list": []any{"ok", "9434765919"}}},
		{"edit": s{Text: "hello"}},
	}
	for _, d := range rejected {
		err := l.Append(ctx, Event{Actor: "dr.jones", Action: ActionSegmentEdit, Details: d})
		if !errors.Is(err, ErrRejected) {
			t.Errorf("%v: err = %v, want ErrRejected", d, err)
		}
	}
	for _, ev := range []Event{
		{Actor: "9434765919", Action: ActionLoginFailed},
		{Actor: "dr.jones", Action: ActionLogin, SessionID: "943 476 5919"},
		{Actor: "dr.jones", Action: "made_up"},
		{Action: ActionLogin},
	} {
		if err := l.Append(ctx, ev); !errors.Is(err, ErrRejected) {
			t.Errorf("%+v: err = %v, want ErrRejected", ev, err)
		}
	}
	accepted := []map[string]any{
		{"segment_id": "0b9c8a6e-1234-4567-8901-123456789012", "context": "review"},
		{"session": "s1", "bytes": int64(6400000000), "reason": "approved"},
		{"consent_by": "dr.jones", "consent_at": "2025-03-01T09:00:00Z"},
		{"phone_ext": "12345", "count": "12345678901"},
		{"status": 201, "version": 2},
	}
	for _, d := range accepted {
		if err := l.Append(ctx, Event{Actor: "dr.jones", Action: ActionSessionStart, Details: d}); err != nil {
			t.Errorf("%v: %v", d, err)
		}
	}
	if rep := mustVerify(t, db); !rep.OK() || rep.Entries != int64(len(accepted)) {
		t.Fatalf("%+v", rep)
	}
}

func BenchmarkAppend(b *testing.B) {
	db := openDB(b, filepath.Join(b.TempDir(), "audit.db"))
	if err := EnsureSchema(context.Background(), db); err != nil {
		b.Fatal(err)
	}
	l := New(db)
	ev := Event{Actor: "dr.jones", Action: ActionSegmentEdit, SessionID: "s1", Details: map[string]any{"segment_id": "seg-1"}}
	for b.Loop() {
		if err := l.Append(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify10k(b *testing.B) {
	db := openDB(b, filepath.Join(b.TempDir(), "audit.db"))
	ctx := context.Background()
	if err := EnsureSchema(ctx, db); err != nil {
		b.Fatal(err)
	}
	l := New(db)
	tx, _ := db.BeginTx(ctx, nil)
	for i := range 10000 {
		if err := l.AppendTx(ctx, tx, Event{Actor: "system", Action: ActionAudioDeleted, Details: map[string]any{"bytes": i}}); err != nil {
			b.Fatal(err)
		}
	}
	tx.Commit()
	for b.Loop() {
		if rep, err := Verify(ctx, db); err != nil || !rep.OK() {
			b.Fatal(err, rep.Problem)
		}
	}
}
