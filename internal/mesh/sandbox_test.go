package mesh_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"scribe/internal/fhir"
	"scribe/internal/mesh"
	"scribe/internal/mesh/meshtest"
	"scribe/internal/outbox"
	"scribe/internal/pdf/pdftext"
	"scribe/internal/store"
)

// These tests run the whole MESH route against NHS England's own MESH sandbox: scribe's
// outbox worker sends GP Connect Send Document messages from the hub's mailbox, the
// test plays the practice system on the practice's mailbox over the same MESH API, and
// the practice's ITK3 acknowledgements come back through MESH.

type harness struct {
	t        *testing.T
	sandbox  *meshtest.Sandbox
	practice *meshtest.Practice
	sink     *mesh.Sink
	worker   *outbox.Worker
	db       *store.Store
}

func newHarness(t *testing.T, baseURL string, sandbox *meshtest.Sandbox) *harness {
	t.Helper()
	if sandbox == nil {
		sandbox = meshtest.Start(t)
	}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := outbox.EnsureSchema(context.Background(), st.DB()); err != nil {
		t.Fatal(err)
	}
	sink, err := mesh.NewSink(mesh.SinkConfig{Client: sandbox.Client(t, meshtest.ScribeMailbox, baseURL), To: meshtest.PracticeMailbox,
		FHIR: fhir.Config{IdentifierSystem: "https://hub.example/Id/scribe-document", PracticeODS: "Y12345"}})
	if err != nil {
		t.Fatal(err)
	}
	w := outbox.NewWorker(st.DB(), sink, nil)
	w.Audit = st.AuditTx
	w.Rand = func() float64 { return 0 }
	return &harness{t: t, sandbox: sandbox, sink: sink, worker: w, db: st,
		practice: &meshtest.Practice{Client: sandbox.Client(t, meshtest.PracticeMailbox, "")}}
}

func note(nhs, text string) fhir.Note {
	start := time.Date(2026, 5, 14, 10, 0, 0, 0, time.UTC)
	return fhir.Note{DocumentID: uuid.NewString(), IdentifierSystem: "https://hub.example/Id/scribe-document", SessionID: "s-" + uuid.NewString()[:8],
		NHSNumber: nhs, Clinician: fhir.Clinician{DisplayName: "Dr Sam Patel", GMCNumber: "1234567"},
		ConsultationStart: start, ConsultationEnd: start.Add(9 * time.Minute), ApprovedAt: start.Add(15 * time.Minute), Text: text}
}

func (h *harness) enqueue(n fhir.Note) int64 {
	h.t.Helper()
	id, err := outbox.Enqueue(context.Background(), h.db.DB(), n)
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// deliverDue makes every queued note due and gives each an attempt.
func (h *harness) deliverDue() {
	h.t.Helper()
	if _, err := h.db.DB().Exec(`UPDATE fhir_outbox SET next_attempt_at = 0 WHERE state = 'queued'`); err != nil {
		h.t.Fatal(err)
	}
	for {
		did, err := h.worker.RunOnce(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		if !did {
			return
		}
	}
}

func (h *harness) item(id int64) outbox.Item {
	h.t.Helper()
	it, err := outbox.Get(context.Background(), h.db.DB(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return it
}

func (h *harness) collect(want int) []meshtest.Received {
	h.t.Helper()
	got, err := h.practice.Collect(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if len(got) != want {
		h.t.Fatalf("the practice received %d messages, want %d", len(got), want)
	}
	return got
}

func (h *harness) respond(r meshtest.Received, code, itk, diag string) {
	h.t.Helper()
	if err := h.practice.Respond(context.Background(), r, code, itk, diag); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) acks() {
	h.t.Helper()
	if _, err := h.worker.CollectAcks(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) wantState(id int64, state outbox.State, reason string) outbox.Item {
	h.t.Helper()
	it := h.item(id)
	if it.State != state || !strings.Contains(it.Reason, reason) {
		h.t.Fatalf("note %d: %s (%s), want %s (%s)", id, it.State, it.Reason, state, reason)
	}
	return it
}

// The happy path: sent, received by the practice (infrastructure acknowledgement: still
// waiting), filed (business acknowledgement: sent). The message is a GP Connect Send
// Document ITK3 Bundle with the note as a PDF whose text is the note.
func TestMESHDeliveredAndAcknowledged(t *testing.T) {
	h := newHarness(t, "", nil)
	n := note("9434765919", "[00:00:01] Clinician: How is the cough?\n[00:00:04] Patient: Better since Tuesday.")
	id := h.enqueue(n)
	h.deliverDue()
	it := h.wantState(id, outbox.StateAwaiting, "waiting for the practice")

	r := h.collect(1)[0]
	if r.WorkflowID != mesh.WorkflowConsultReport || r.Event != "ITK007C" || r.BundleID != n.DocumentID || r.LocalID != n.DocumentID {
		t.Errorf("message: workflow %s, event %s, bundle %s, local id %s", r.WorkflowID, r.Event, r.BundleID, r.LocalID)
	}
	if r.Handling["BusAckRequested"] != true || r.Handling["InfAckRequested"] != true {
		t.Errorf("handling specification %v: both acknowledgements must be requested", r.Handling)
	}
	if r.NHSNumber != "9434765919" {
		t.Errorf("patient NHS number %q", r.NHSNumber)
	}
	ids, _ := r.Document["identifier"].([]any)
	if len(ids) == 0 || ids[0].(map[string]any)["value"] != n.DocumentID {
		t.Errorf("document identifier %v", r.Document["identifier"])
	}
	text := pdftext.Words(pdftext.Extract(t, r.PDF))
	for _, want := range []string{"Consultation transcript", "NHS number: 943 476 5919", "Patient: Better since Tuesday.", "Reviewed and approved by Dr Sam Patel (GMC 1234567)"} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF lacks %q: %s", want, text)
		}
	}
	if !strings.Contains(it.Location, r.MeshID) {
		t.Errorf("outbox location %q does not name MESH message %s", it.Location, r.MeshID)
	}

	h.respond(r, "ok", "20013", "")
	h.acks()
	h.wantState(id, outbox.StateAwaiting, "received by the practice's system")
	h.respond(r, "ok", "30001", "")
	h.acks()
	h.wantState(id, outbox.StateSent, "filed by the practice")
	// The acknowledgements leave scribe's inbox once recorded.
	h.acks()
	if left, err := h.sandbox.Client(t, meshtest.ScribeMailbox, "").Inbox(context.Background()); err != nil || len(left) != 0 {
		t.Errorf("scribe's inbox after the outcome was recorded: %v, %v", left, err)
	}
}

// Outage: MESH down, the note waits and retries; back up, it goes exactly once.
func TestMESHOutage(t *testing.T) {
	h := newHarness(t, "", nil)
	h.sandbox.Stop()
	id := h.enqueue(note("9434765919", "Clinician: Outage test."))
	h.deliverDue()
	h.wantState(id, outbox.StateQueued, "MESH could not be reached")
	h.deliverDue()
	if it := h.item(id); it.State != outbox.StateQueued || it.Attempts != 2 {
		t.Fatalf("after two failed attempts: %+v", it)
	}
	h.sandbox.Restart()
	h.deliverDue()
	h.wantState(id, outbox.StateAwaiting, "")
	h.collect(1)
}

// Duplicates: a delivery repeated after a crash (the send went out, the result was not
// recorded) finds the first message by its local id and sends nothing; a practice that
// answers "duplicate document" has the note, so it counts as filed.
func TestMESHDuplicate(t *testing.T) {
	h := newHarness(t, "", nil)
	n := note("9434765919", "Clinician: Duplicate test.")
	first, err := h.sink.Deliver(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.sink.Deliver(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if again.Location != first.Location || again.Created {
		t.Errorf("repeat delivery %+v, want the first message %s found again", again, first.Location)
	}
	id := h.enqueue(n)
	h.deliverDue() // the worker's own attempt: found, not sent
	h.wantState(id, outbox.StateAwaiting, "")
	r := h.collect(1)[0]
	h.respond(r, "fatal-error", "20008", "Duplicate Document received")
	h.acks()
	h.wantState(id, outbox.StateSent, "already had it")
}

// Refusals: the practice's business refusal, MESH's non-delivery report and an unknown
// recipient each hold the note with a reason a person can act on; a transient error at
// the practice sends it again as a new message.
func TestMESHRejected(t *testing.T) {
	h := newHarness(t, "", nil)
	refused := h.enqueue(note("9434765919", "Clinician: Business refusal."))
	undelivered := h.enqueue(note("9434765919", "Clinician: Never collected."))
	transient := h.enqueue(note("9434765919", "Clinician: Try again."))
	h.deliverDue()
	got := h.collect(3)
	byLocal := map[string]meshtest.Received{}
	for _, r := range got {
		byLocal[r.LocalID] = r
	}
	h.respond(byLocal[h.item(refused).DocumentID], "fatal-error", "30002", "Patient not registered at this practice")
	_, msgID, _ := strings.Cut(strings.TrimPrefix(h.item(undelivered).Location, "mesh:"), ":")
	h.sandbox.Report(t, meshtest.ScribeMailbox, msgID, h.item(undelivered).DocumentID)
	h.respond(byLocal[h.item(transient).DocumentID], "transient-error", "30003", "Filing queue unavailable")
	h.acks()
	h.wantState(refused, outbox.StateHeld, "Patient not registered at this practice")
	h.wantState(undelivered, outbox.StateHeld, "MESH could not deliver it")
	h.wantState(transient, outbox.StateQueued, "temporary problem")

	h.deliverDue()
	resent := h.collect(1)[0]
	if resent.LocalID != h.item(transient).DocumentID+".1" {
		t.Errorf("resend local id %q, want a new message identity", resent.LocalID)
	}
	h.respond(resent, "ok", "30001", "")
	h.acks()
	h.wantState(transient, outbox.StateSent, "filed")

	// Once the practice has fixed what it refused, a retry sends a new message.
	if err := outbox.Retry(context.Background(), h.db.DB(), refused); err != nil {
		t.Fatal(err)
	}
	h.deliverDue()
	if again := h.collect(1)[0]; again.LocalID != h.item(refused).DocumentID+".1" {
		t.Errorf("retry after a refusal: local id %q, want a new message", again.LocalID)
	}
	h.wantState(refused, outbox.StateAwaiting, "")

	// An unknown recipient mailbox is refused by MESH at once.
	bad, err := mesh.NewSink(mesh.SinkConfig{Client: h.sandbox.Client(t, meshtest.ScribeMailbox, ""), To: "NOSUCHBOX",
		FHIR: fhir.Config{IdentifierSystem: "https://hub.example/Id/scribe-document", PracticeODS: "Y12345"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Deliver(context.Background(), note("9434765919", "Clinician: Nobody there."))
	if !fhir.IsPermanent(err) || !strings.Contains(fhir.Reason(err), "MESH refused the message") {
		t.Errorf("unknown recipient: err = %v, want held", err)
	}
}

// A sandbox restart mid-delivery: the send reaches MESH, the reply is lost and MESH
// restarts before the retry. Nothing is lost or doubled: the retry finds the message by
// its local id, and a note queued while MESH was down goes once when it is back.
func TestMESHRestartMidDelivery(t *testing.T) {
	sandbox := meshtest.Start(t)
	target, _ := url.Parse(sandbox.URL)
	var dropped atomic.Int32
	dropped.Store(1)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/outbox") && dropped.Load() > 0 {
			dropped.Add(-1)
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r) // MESH accepts the message...
			go sandbox.Stop()    // ...and goes down before anyone hears back
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	h := newHarness(t, proxy.URL, sandbox)

	first := h.enqueue(note("9434765919", "Clinician: Sent as MESH went down."))
	h.deliverDue()
	h.wantState(first, outbox.StateQueued, "MESH could not be reached")
	time.Sleep(200 * time.Millisecond) // let the stop finish
	second := h.enqueue(note("9434765919", "Clinician: Approved while MESH was down."))
	h.deliverDue()
	h.wantState(second, outbox.StateQueued, "MESH")

	sandbox.Restart()
	defer func() {
		if t.Failed() {
			t.Log(sandbox.Log())
		}
	}()
	h.deliverDue()
	h.wantState(first, outbox.StateAwaiting, "")
	h.wantState(second, outbox.StateAwaiting, "")
	got := h.collect(2)
	seen := map[string]int{}
	for _, r := range got {
		seen[r.LocalID]++
		h.respond(r, "ok", "30001", "")
	}
	if seen[h.item(first).DocumentID] != 1 || seen[h.item(second).DocumentID] != 1 {
		t.Errorf("messages per note: %v", seen)
	}
	h.acks()
	h.wantState(first, outbox.StateSent, "filed")
	h.wantState(second, outbox.StateSent, "filed")
}
