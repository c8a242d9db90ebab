package outbox

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/mattn/go-sqlite3"

	"scribe/internal/fhir"
	"scribe/internal/fhir/fhirtest"
	"scribe/internal/keys"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildWorker())
	}
	code := m.Run()
	fhirtest.StopShared()
	os.Exit(code)
}

func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=5000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := EnsureSchema(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func note(nhs string) fhir.Note {
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	return fhir.Note{
		DocumentID:        uuid.NewString(),
		SessionID:         "sess-" + uuid.NewString()[:8],
		NHSNumber:         nhs,
		Clinician:         fhir.Clinician{DisplayName: "Dr Lee", SDSUserID: "555566667777"},
		PracticeODS:       "A81001",
		ConsultationStart: start,
		ConsultationEnd:   start.Add(10 * time.Minute),
		ApprovedAt:        start.Add(20 * time.Minute),
		Text:              "Review of blood pressure. 138/86. Continue amlodipine 5 mg.",
	}
}

func enqueue(t *testing.T, db *sql.DB, n fhir.Note) int64 {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := Enqueue(context.Background(), tx, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return id
}

func get(t *testing.T, db *sql.DB, id int64) Item {
	t.Helper()
	it, err := Get(context.Background(), db, id)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// scriptedSink returns the scripted errors in turn, then succeeds. It is for worker
// logic (backoff, states); delivery itself is tested against the real server below.
type scriptedSink struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (s *scriptedSink) Deliver(ctx context.Context, n fhir.Note) (fhir.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return fhir.Receipt{}, err
	}
	return fhir.Receipt{Location: "mem://" + n.DocumentID, Created: true}, nil
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func testWorker(db *sql.DB, sink fhir.Sink, clock *fakeClock) *Worker {
	w := NewWorker(db, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Backoff = Backoff{Base: 10 * time.Second, Max: 80 * time.Second}
	w.MaxAttempts = 6
	w.Rand = func() float64 { return 0.5 }
	if clock != nil {
		w.Now = clock.Now
	}
	return w
}

func TestEnqueueFollowsTheApprovalTransaction(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	ctx := context.Background()
	n := note("9434765919")

	tx, _ := db.BeginTx(ctx, nil)
	if _, err := Enqueue(ctx, tx, n); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	if items, _ := List(ctx, db, Filter{}); len(items) != 0 {
		t.Fatalf("rolled-back approval left %d outbox entries", len(items))
	}

	id := enqueue(t, db, n)
	again := enqueue(t, db, n)
	if again != id {
		t.Errorf("re-enqueue gave id %d, want %d", again, id)
	}
	it := get(t, db, id)
	if it.State != StateQueued || it.Note.Text != n.Text || !it.Note.ApprovedAt.Equal(n.ApprovedAt) {
		t.Errorf("item = %+v", it)
	}
	items, err := List(ctx, db, Filter{SessionID: n.SessionID})
	if err != nil || len(items) != 1 {
		t.Fatalf("List by session = %v, %v", items, err)
	}
	if _, err := Get(ctx, db, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(999) = %v", err)
	}
}

func TestWorkerBacksOffThenDelivers(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	clock := &fakeClock{t: time.Now().Add(time.Second)} // after the enqueue time
	down := &fhir.DeliveryError{Reason: "the patient record server could not be reached"}
	busy := &fhir.DeliveryError{Reason: "busy (HTTP 429)", RetryAfter: 2 * time.Minute}
	sink := &scriptedSink{errs: []error{down, down, busy}}
	w := testWorker(db, sink, clock)
	id := enqueue(t, db, note("9434765919"))
	ctx := context.Background()

	// With Rand fixed at 0.5 each delay is 3/4 of the doubled base; Retry-After wins when longer.
	wantDelays := []time.Duration{7500 * time.Millisecond, 15 * time.Second, 2 * time.Minute}
	for i, want := range wantDelays {
		if did, err := w.RunOnce(ctx); !did || err != nil {
			t.Fatalf("attempt %d: did=%v err=%v", i+1, did, err)
		}
		it := get(t, db, id)
		if it.State != StateQueued || it.Attempts != i+1 || !strings.HasPrefix(it.Reason, "will retry:") {
			t.Fatalf("after attempt %d: %+v", i+1, it)
		}
		if got := it.NextAttemptAt.Sub(clock.t.Truncate(time.Millisecond)); got != want {
			t.Errorf("delay after attempt %d = %v, want %v", i+1, got, want)
		}
		// Not due yet: nothing happens.
		if did, _ := w.RunOnce(ctx); did {
			t.Fatalf("attempt %d retried before its time", i+1)
		}
		clock.t = clock.t.Add(want)
	}
	if did, err := w.RunOnce(ctx); !did || err != nil {
		t.Fatalf("final attempt: %v %v", did, err)
	}
	it := get(t, db, id)
	if it.State != StateSent || it.SentAt == nil || it.Location == "" || it.Reason != "" || it.Attempts != 4 {
		t.Errorf("after success: %+v", it)
	}
	if sink.calls != 4 {
		t.Errorf("sink called %d times, want 4", sink.calls)
	}
	if did, _ := w.RunOnce(ctx); did {
		t.Error("a sent note was delivered again")
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	b := Backoff{Base: time.Second, Max: time.Minute}
	for attempts, full := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 7: time.Minute, 30: time.Minute} {
		if lo, hi := b.Delay(attempts, 0), b.Delay(attempts, 0.999999); lo != full/2 || hi > full || hi < full*99/100 {
			t.Errorf("attempt %d: delay range [%v, %v], want [%v, %v)", attempts, lo, hi, full/2, full)
		}
	}
}

func TestWorkerHoldsPermanentFailuresAndAdminRetries(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	clock := &fakeClock{t: time.Now().Add(time.Second)} // after the enqueue time
	sink := &scriptedSink{errs: []error{&fhir.DeliveryError{Permanent: true, Reason: "no practice ODS code is configured"}}}
	w := testWorker(db, sink, clock)
	id := enqueue(t, db, note("9434765919"))
	ctx := context.Background()

	_, _ = w.RunOnce(ctx)
	it := get(t, db, id)
	if it.State != StateHeld || it.Reason != "no practice ODS code is configured" {
		t.Fatalf("item = %+v", it)
	}
	clock.t = clock.t.Add(time.Hour)
	if did, _ := w.RunOnce(ctx); did {
		t.Fatal("held note was retried without an admin")
	}
	if err := Retry(ctx, db, id); err != nil {
		t.Fatal(err)
	}
	if err := Retry(ctx, db, id); err == nil || !strings.Contains(err.Error(), "only held or failed") {
		t.Errorf("Retry of a queued note = %v", err)
	}
	if did, err := w.RunOnce(ctx); !did || err != nil {
		t.Fatal(did, err)
	}
	if it := get(t, db, id); it.State != StateSent {
		t.Errorf("after admin retry: %+v", it)
	}
	if err := Retry(ctx, db, 12345); !errors.Is(err, ErrNotFound) {
		t.Errorf("Retry(unknown) = %v", err)
	}
}

func TestWorkerGivesUpAfterMaxAttempts(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	clock := &fakeClock{t: time.Now().Add(time.Second)} // after the enqueue time
	var errs []error
	for i := 0; i < 10; i++ {
		errs = append(errs, &fhir.DeliveryError{Reason: "HTTP 503"})
	}
	w := testWorker(db, &scriptedSink{errs: errs}, clock)
	id := enqueue(t, db, note("9434765919"))
	for i := 0; i < 20; i++ {
		_, _ = w.RunOnce(context.Background())
		clock.t = clock.t.Add(time.Hour)
	}
	it := get(t, db, id)
	if it.State != StateFailed || it.Attempts != 6 || !strings.Contains(it.Reason, "gave up after 6 attempts: HTTP 503") {
		t.Errorf("item = %+v", it)
	}
}

// --- against the real FHIR server -------------------------------------------------

// flakyProxy fronts the real server and drops the first `drop` POSTs on the floor, as an
// EPR that is down would; it counts the POSTs that reached the server.
type flakyProxy struct {
	drop      atomic.Int32
	forwarded atomic.Int32
	proxy     *httputil.ReverseProxy
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		if p.drop.Add(-1) >= 0 {
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				_ = c.Close()
			}
			return
		}
		p.forwarded.Add(1)
	}
	p.proxy.ServeHTTP(w, r)
}

func startProxy(t *testing.T, srv *fhirtest.Server, drop int32) (*flakyProxy, string) {
	t.Helper()
	u, _ := url.Parse(srv.BaseURL)
	target := &url.URL{Scheme: u.Scheme, Host: u.Host}
	p := &flakyProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	p.drop.Store(drop)
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	return p, ts.URL + u.Path
}

func serverSink(t *testing.T, base string) *fhir.ServerSink {
	t.Helper()
	s, err := fhir.NewServerSink(fhir.ServerConfig{BaseURL: base, Config: fhir.Config{IdentifierSystem: "https://gp.example/Id/scribe-document"}, LookupPatient: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func copiesOnServer(t *testing.T, srv *fhirtest.Server, documentID string) int {
	t.Helper()
	return len(srv.Search(t, "DocumentReference", url.Values{"identifier": {"https://gp.example/Id/scribe-document|" + documentID}}))
}

// waitState runs until the entry reaches a settled state or the deadline passes.
func waitState(t *testing.T, db *sql.DB, id int64, want State) Item {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if it := get(t, db, id); it.State == want {
			return it
		}
		time.Sleep(20 * time.Millisecond)
	}
	it := get(t, db, id)
	t.Fatalf("entry %d is %s (%s), want %s", id, it.State, it.Reason, want)
	return it
}

func TestServerDownFirstAttemptsDeliversOnce(t *testing.T) {
	srv := fhirtest.Shared(t)
	nhs := fhirtest.NewNHSNumber()
	srv.SeedPatient(t, nhs, "Okafor")
	proxy, base := startProxy(t, srv, 3)
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	w := testWorker(db, serverSink(t, base), nil)
	w.Backoff = Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	n := note(nhs)
	id := enqueue(t, db, n)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	it := waitState(t, db, id, StateSent)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if it.Attempts != 4 {
		t.Errorf("attempts = %d, want 3 failures + 1 success", it.Attempts)
	}
	if got := proxy.forwarded.Load(); got != 1 {
		t.Errorf("%d POSTs reached the server, want 1", got)
	}
	if c := copiesOnServer(t, srv, n.DocumentID); c != 1 {
		t.Errorf("server holds %d copies, want 1", c)
	}
}

func TestBadNotesAreHeldAndNeverSent(t *testing.T) {
	srv := fhirtest.Shared(t)
	known := fhirtest.NewNHSNumber()
	srv.SeedPatient(t, known, "Evans")
	proxy, base := startProxy(t, srv, 0)
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	w := testWorker(db, serverSink(t, base), nil)
	ctx := context.Background()

	badNHS := note("9434765918")
	noODS := note(known)
	noODS.PracticeODS = ""
	unknown := note(fhirtest.NewNHSNumber())
	cases := []struct {
		n      fhir.Note
		reason string
	}{
		{badNHS, "NHS number \"9434765918\" is not valid"},
		{noODS, "no practice ODS code is configured"},
		{unknown, "no patient with NHS number"},
	}
	ids := make([]int64, len(cases))
	for i, tc := range cases {
		id := enqueue(t, db, tc.n)
		ids[i] = id
		if did, err := w.RunOnce(ctx); !did || err != nil {
			t.Fatal(did, err)
		}
		it := get(t, db, id)
		if it.State != StateHeld || !strings.Contains(it.Reason, tc.reason) {
			t.Errorf("entry for %q: %s %q", tc.reason, it.State, it.Reason)
		}
		if c := copiesOnServer(t, srv, tc.n.DocumentID); c != 0 {
			t.Errorf("held note %q is on the server", tc.reason)
		}
	}
	if got := proxy.forwarded.Load(); got != 0 {
		t.Errorf("%d POSTs for invalid notes", got)
	}
	// Held notes stay held: nothing is lost, nothing is re-sent.
	if did, _ := w.RunOnce(ctx); did {
		t.Error("held note picked up again")
	}
	if held, _ := List(ctx, db, Filter{State: StateHeld}); len(held) != 3 {
		t.Errorf("%d held entries, want 3", len(held))
	}

	// The clinician corrects the NHS number: the same document goes out once.
	fixed := badNHS
	fixed.NHSNumber = known
	if err := ReplaceNote(ctx, db, ids[0], fixed); err != nil {
		t.Fatal(err)
	}
	if _, err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if it := get(t, db, ids[0]); it.State != StateSent || copiesOnServer(t, srv, fixed.DocumentID) != 1 {
		t.Errorf("corrected note: %s %q", it.State, it.Reason)
	}
}

// --- crash between POST and recording ---------------------------------------------

const (
	childEnv     = "SCRIBE_OUTBOX_CHILD_DB"
	childBaseEnv = "SCRIBE_OUTBOX_CHILD_FHIR"
	childMarker  = "DELIVERED-NOT-RECORDED"
)

// runChildWorker is the crashing process: it delivers one note, announces that the POST
// returned, and blocks before recording the result until the parent kills it.
func runChildWorker() int {
	db, err := sql.Open("sqlite3", "file:"+os.Getenv(childEnv)+"?_journal_mode=WAL&_busy_timeout=5000&_txlock=immediate")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	sink, err := fhir.NewServerSink(fhir.ServerConfig{BaseURL: os.Getenv(childBaseEnv), Config: fhir.Config{IdentifierSystem: "https://gp.example/Id/scribe-document"}, LookupPatient: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w := NewWorker(db, sink, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	w.afterDeliver = func(_ Item, rc fhir.Receipt, err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "child delivery failed:", err)
			os.Exit(3)
		}
		fmt.Printf("%s %s\n", childMarker, rc.Location)
		select {} // wait for SIGKILL
	}
	if _, err := w.RunOnce(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return 4 // not reached when the hook fires
}

func TestCrashBetweenPostAndRecordDeliversExactlyOnce(t *testing.T) {
	srv := fhirtest.Shared(t)
	nhs := fhirtest.NewNHSNumber()
	srv.SeedPatient(t, nhs, "Novak")
	dbPath := filepath.Join(t.TempDir(), "o.db")
	db := openDB(t, dbPath)
	n := note(nhs)
	id := enqueue(t, db, n)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dbPath, childBaseEnv+"="+srv.BaseURL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), childMarker) {
				lines <- sc.Text()
				break
			}
		}
		close(lines)
		_, _ = io.Copy(io.Discard, out)
	}()
	var firstLocation string
	select {
	case line, ok := <-lines:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("child exited without delivering: %s", stderr.String())
		}
		firstLocation = strings.TrimSpace(strings.TrimPrefix(line, childMarker))
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not deliver in time: %s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to record anything
		t.Fatal(err)
	}
	_ = cmd.Wait()

	it := get(t, db, id)
	if it.State != StateSending || it.Attempts != 1 {
		t.Fatalf("after the crash the entry is %s/%d attempts, want sending/1", it.State, it.Attempts)
	}
	if c := copiesOnServer(t, srv, n.DocumentID); c != 1 {
		t.Fatalf("server holds %d copies after the first POST", c)
	}

	// Restart: the new worker re-queues the interrupted note and delivers it again.
	w := testWorker(db, serverSink(t, srv.BaseURL), nil)
	if n, err := w.Recover(context.Background()); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v", n, err)
	}
	var receipts []fhir.Receipt
	w.afterDeliver = func(_ Item, rc fhir.Receipt, _ error) { receipts = append(receipts, rc) }
	if did, err := w.RunOnce(context.Background()); !did || err != nil {
		t.Fatal(did, err)
	}
	it = get(t, db, id)
	if it.State != StateSent || it.Attempts != 2 {
		t.Errorf("after restart: %s, %d attempts (%s)", it.State, it.Attempts, it.Reason)
	}
	if len(receipts) != 1 || receipts[0].Created || receipts[0].Location != firstLocation {
		t.Errorf("redelivery receipt = %+v, want the existing resource %s", receipts, firstLocation)
	}
	if c := copiesOnServer(t, srv, n.DocumentID); c != 1 {
		t.Errorf("server holds %d copies after restart, want exactly 1", c)
	}
}

func TestFolderSinkThroughWorker(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	dir := t.TempDir()
	w := testWorker(db, &fhir.FolderSink{Dir: dir}, nil)
	w.Acks = &fhir.FolderSink{Dir: dir}
	id := enqueue(t, db, note("9434765919"))
	if _, err := w.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	it := get(t, db, id)
	if it.State != StateAwaiting || filepath.Dir(it.Location) != dir {
		t.Fatalf("item = %+v, want awaiting_ack: written is not yet filed", it)
	}
	if _, err := os.Stat(it.Location); err != nil {
		t.Error(err)
	}
	// The integration engine collects the file: the acknowledgement makes it sent.
	if err := os.MkdirAll(filepath.Join(dir, fhir.CollectedDir), 0o750); err != nil {
		t.Fatal(err)
	}
	collected := filepath.Join(dir, fhir.CollectedDir, filepath.Base(it.Location))
	if err := os.Rename(it.Location, collected); err != nil {
		t.Fatal(err)
	}
	if n, err := w.CollectAcks(context.Background()); n != 1 || err != nil {
		t.Fatalf("CollectAcks = %d, %v", n, err)
	}
	if it := get(t, db, id); it.State != StateSent || it.Location != collected {
		t.Errorf("after collection: %+v", it)
	}
}

// An outbox table made by an earlier version (no awaiting_ack state, no kind) is rebuilt
// with its rows and ids intact.
func TestSchemaUpgradeKeepsRows(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	if _, err := db.ExecContext(ctx, `DROP TABLE fhir_outbox`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE fhir_outbox (
	id INTEGER PRIMARY KEY AUTOINCREMENT, document_id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
	note_json TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('queued','sending','sent','held','failed')),
	reason TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, sent_at INTEGER, location TEXT NOT NULL DEFAULT '')`); err != nil {
		t.Fatal(err)
	}
	n := note("9434765919")
	b, _ := json.Marshal(n)
	if _, err := db.ExecContext(ctx, `INSERT INTO fhir_outbox (id, document_id, session_id, note_json, state, next_attempt_at, created_at, updated_at)
		VALUES (7, ?, ?, ?, 'held', 1, 1, 1)`, n.DocumentID, n.SessionID, string(b)); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSchema(ctx, db); err != nil {
		t.Fatal(err)
	}
	it := get(t, db, 7)
	if it.State != StateHeld || it.Kind != KindNote || it.Note.Text != n.Text {
		t.Errorf("after upgrade: %+v", it)
	}
	if _, err := db.ExecContext(ctx, `UPDATE fhir_outbox SET state = 'awaiting_ack' WHERE id = 7`); err != nil {
		t.Errorf("the new state is refused after the upgrade: %v", err)
	}
}

// With a data key loaded, the stored note (approved text, NHS number) is ciphertext and
// still reads back; rows written before the key was loaded stay readable.
func TestStoredNotesAreSealed(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	ctx := context.Background()
	plain := note("9434765919")
	if _, err := Enqueue(ctx, db, plain); err != nil {
		t.Fatal(err)
	}
	kr, err := keys.New(map[int][]byte{1: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	UseSealer(kr)
	t.Cleanup(func() { sealer.Store(nil) })
	sealed := note("9434765919")
	id, err := Enqueue(ctx, db, sealed)
	if err != nil {
		t.Fatal(err)
	}
	var raw string
	db.QueryRowContext(ctx, `SELECT note_json FROM fhir_outbox WHERE id = ?`, id).Scan(&raw)
	if strings.Contains(raw, "9434765919") || strings.Contains(raw, sealed.Text) {
		t.Fatalf("stored note holds plaintext: %q", raw)
	}
	items, err := List(ctx, db, Filter{})
	if err != nil || len(items) != 2 {
		t.Fatalf("list: %v, %d items", err, len(items))
	}
	for _, it := range items {
		if it.Note.NHSNumber != "9434765919" {
			t.Errorf("entry %d did not read back: %+v", it.ID, it.Note)
		}
	}
}
