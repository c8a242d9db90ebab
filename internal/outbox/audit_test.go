package outbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"scribe/internal/audit"
	"scribe/internal/fhir"
	"scribe/internal/store"
)

// The worker records every attempt and every result in the real audit trail of the
// store's database, through the store's own handle, with the outcome and the EPR's HTTP
// status and never the note's text. The EPR answers 503 once, then 201 for the first
// note, and 422 for the second (the only stand-in: a real server cannot be made to fail
// on cue).
func TestWorkerAuditsAttemptsAndResults(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := st.DB()
	if err := EnsureSchema(ctx, db); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	epr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metadata" { // the CapabilityStatement: conditional create honoured
			w.Header().Set("Content-Type", "application/fhir+json")
			_, _ = io.WriteString(w, `{"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[{"type":"DocumentReference","conditionalCreate":true}]}]}`)
			return
		}
		if r.Method == http.MethodGet { // the search after an ambiguous 503: nothing there
			_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","entry":[]}`)
			return
		}
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Location", "DocumentReference/1/_history/1")
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusUnprocessableEntity)
		}
	}))
	defer epr.Close()
	sink, err := fhir.NewServerSink(fhir.ServerConfig{BaseURL: epr.URL, Config: fhir.Config{IdentifierSystem: "https://gp.example/Id/scribe-document"}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now().Add(time.Second)}
	w := testWorker(db, sink, clock)
	w.Audit = st.AuditTx
	first, second := note("9434765919"), note("9434765919")
	enqueue(t, db, first)
	for range 2 { // 503, then 201 once the backoff has passed
		if did, err := w.RunOnce(ctx); !did || err != nil {
			t.Fatal(did, err)
		}
		clock.t = clock.t.Add(time.Hour)
	}
	enqueue(t, db, second)
	clock.t = clock.t.Add(time.Hour)
	if did, err := w.RunOnce(ctx); !did || err != nil {
		t.Fatal(did, err)
	}

	type ev struct {
		action string
		d      map[string]any
	}
	events := func(session string) []ev {
		es, err := st.AuditEntries(ctx, store.AuditFilter{SessionID: session})
		if err != nil {
			t.Fatal(err)
		}
		var out []ev
		for _, e := range es {
			if strings.Contains(string(e.Details), "amlodipine") || strings.Contains(string(e.Details), "9434765919") {
				t.Errorf("audit entry %d holds note text or the NHS number: %s", e.Seq, e.Details)
			}
			var d map[string]any
			json.Unmarshal(e.Details, &d)
			out = append(out, ev{e.Action, d})
		}
		return out
	}
	check := func(got []ev, want [][3]any, doc string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("audit events %+v, want %v", got, want)
		}
		for i, w := range want {
			g := got[i]
			if g.action != w[0] || g.d["document_id"] != doc || (w[1] != nil && g.d["outcome"] != w[1]) || (w[2] != nil && g.d["http_status"] != w[2]) {
				t.Errorf("event %d = %s %v, want %v", i, g.action, g.d, w)
			}
		}
	}
	A, R := string(audit.ActionWritebackAttempt), string(audit.ActionWritebackResult)
	check(events(first.SessionID), [][3]any{{A, nil, nil}, {R, "retry", 503.0}, {A, nil, nil}, {R, "sent", 201.0}}, first.DocumentID)
	check(events(second.SessionID), [][3]any{{A, nil, nil}, {R, "held", 422.0}}, second.DocumentID)
	if rep, err := st.VerifyAudit(ctx); err != nil || !rep.OK() {
		t.Fatalf("audit chain: %+v %v", rep, err)
	}
}
