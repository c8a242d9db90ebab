package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"scribe/internal/config"
	"scribe/internal/fhir/fhirtest"
	"scribe/internal/server"
	"scribe/internal/store"
)

// H4: the idempotency key of a queued note (identifier system + document id) changed when
// epr.identifier_system changed between approval and delivery, so a note already on the
// EPR under the old key would be filed again under the new one.
func TestH4IdentifierSystemFrozenAtApproval(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.EPR.Folder = filepath.Join(dir, "export")
	cfg.EPR.PracticeODS = "A81001"
	cfg.EPR.IdentifierSystem = "https://gp.example/Id/scribe-old"
	wb, err := newWriteBack(ctx, cfg, st.DB(), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	note := server.ApprovedNote{SessionID: "s1", DocumentID: uuid.NewString(), NHSNumber: "9434765919",
		ClinicianName: "Dr A Patel", ClinicianGMC: "7654321", RoomName: "Room 1",
		ConsultationStart: start, ConsultationStop: start.Add(10 * time.Minute), ApprovedAt: start.Add(20 * time.Minute),
		Text: "Clinician: Hello."}
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := wb.onApproved(ctx, tx, note); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// The administrator changes the identifier system before the note went out.
	cfg.EPR.IdentifierSystem = "https://gp.example/Id/scribe-new"
	wb2, err := newWriteBack(ctx, cfg, st.DB(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if did, err := wb2.worker.RunOnce(ctx); !did || err != nil {
		t.Fatalf("RunOnce = %v, %v", did, err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.EPR.Folder, "DocumentReference-"+note.DocumentID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Identifier []struct{ System, Value string }
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Identifier) == 0 || doc.Identifier[0].System != "https://gp.example/Id/scribe-old" {
		t.Errorf("identifier %+v: want the system in force at approval", doc.Identifier)
	}
}

// H11: a note approved without an NHS number was held for ever (no way to add it), and a
// delivered note filed against the wrong patient could not be withdrawn. Now the
// clinician adds the number and sees the note sent without an administrator; amends a
// delivered note (a new version that replaces it, the old one superseded) and withdraws
// one (entered-in-error); each step is audited and the CSO sees the corrections.
func TestH11HeldNoteFixedAmendedAndWithdrawn(t *testing.T) {
	model, vad := testModels(t)
	fs := fhirtest.Start(t)
	nhs := fhirtest.NewNHSNumber()
	fs.SeedPatient(t, nhs, "Fixable")

	dir := t.TempDir()
	cfgPath := writeDemoFHIRConfig(t, dir, model, vad, fs.BaseURL, ", lookup_patient: true")
	base, out := startServe(t, "--demo", "--config", cfgPath)
	pw := regexp.MustCompile(`password "([^"]+)"`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("no demo password in %q", out)
	}
	a := newAPIClient(t, base, "demo", pw[1])
	deadline := time.Now().Add(3 * time.Minute)
	sess, get := approveDemoSession(t, a, "", "Patient reports a cough for three days.", deadline)
	waitDelivery := func(want string) {
		t.Helper()
		for get(); sess.Delivery != want; get() {
			if time.Now().After(deadline) || sess.Delivery == "failed" || (sess.Delivery == "held" && want != "held") {
				t.Fatalf("delivery %q (%s), want %s", sess.Delivery, sess.Reason, want)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	waitDelivery("held")
	if !strings.Contains(sess.Reason, "NHS number") {
		t.Errorf("held reason %q does not name the missing NHS number", sess.Reason)
	}

	// The clinician adds the NHS number; no administrator is involved.
	if st := a.call("PUT", "/api/sessions/"+sess.ID+"/nhs-number", map[string]string{"nhs_number": "943 476 5918"}, nil); st != 400 {
		t.Errorf("an invalid NHS number: HTTP %d, want 400", st)
	}
	if st := a.call("PUT", "/api/sessions/"+sess.ID+"/nhs-number", map[string]string{"nhs_number": nhs}, nil); st != 200 {
		t.Fatalf("add NHS number: HTTP %d", st)
	}
	waitDelivery("sent")
	search := func(id string) []json.RawMessage {
		return fs.Search(t, "DocumentReference", url.Values{"identifier": {"https://gp.example/Id/scribe-document|" + id}})
	}
	status := func(id string) string {
		docs := search(id)
		if len(docs) != 1 {
			t.Fatalf("document %s: %d copies on the EPR, want 1", id, len(docs))
		}
		var d struct {
			Status    string
			RelatesTo []struct {
				Code   string
				Target struct{ Identifier struct{ Value string } }
			}
		}
		json.Unmarshal(docs[0], &d)
		if len(d.RelatesTo) > 0 {
			return d.Status + " replaces " + d.RelatesTo[0].Target.Identifier.Value
		}
		return d.Status
	}
	if got := status(sess.DocumentID); got != "current" {
		t.Errorf("original: %s", got)
	}
	// Correcting the number of a delivered note is an amendment, not an edit.
	if st := a.call("PUT", "/api/sessions/"+sess.ID+"/nhs-number", map[string]string{"nhs_number": nhs}, nil); st != 409 {
		t.Errorf("changing the NHS number of a delivered note: HTTP %d, want 409", st)
	}

	var amended struct {
		DocumentID string `json:"document_id"`
	}
	if st := a.call("POST", "/api/sessions/"+sess.ID+"/amend", map[string]string{
		"text": "Patient reports a cough for three weeks.", "reason": "duration misheard"}, &amended); st != 201 || amended.DocumentID == "" {
		t.Fatalf("amend: HTTP %d %+v", st, amended)
	}
	waitDelivery("sent")
	if got := status(amended.DocumentID); got != "current replaces "+sess.DocumentID {
		t.Errorf("amendment: %s", got)
	}
	if got := status(sess.DocumentID); got != "superseded" {
		t.Errorf("original after the amendment: %s", got)
	}

	var withdrawn struct {
		DocumentID string `json:"document_id"`
	}
	if st := a.call("POST", "/api/sessions/"+sess.ID+"/withdraw", map[string]string{"reason": "filed against the wrong patient"}, &withdrawn); st != 201 {
		t.Fatalf("withdraw: HTTP %d", st)
	}
	waitDelivery("sent")
	if got := status(amended.DocumentID); !strings.HasPrefix(got, "entered-in-error") {
		t.Errorf("withdrawn amendment: %s", got)
	}

	// The CSO sees both corrections, with who, why and where they are.
	st, err := store.Open(context.Background(), filepath.Join(dir, "data", "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.CreateUser(context.Background(), store.NewUser{Username: "cso", DisplayName: "CSO", Role: store.RoleCSO, Password: "a long cso password"})
	if err != nil {
		t.Fatal(err)
	}
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{SessionID: sess.ID})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		switch e.Action {
		case "nhs_number_corrected", "note_amended", "note_withdrawn":
			actions = append(actions, string(e.Action))
			if strings.Contains(string(e.Details), nhs) {
				t.Errorf("%s audit details hold the NHS number: %s", e.Action, e.Details)
			}
		}
	}
	if strings.Join(actions, ",") != "nhs_number_corrected,note_amended,note_withdrawn" {
		t.Errorf("audit trail %v", actions)
	}
	cso := newAPIClient(t, base, "cso", "a long cso password")
	var corrections []struct {
		SessionID         string `json:"session_id"`
		Kind              string `json:"kind"`
		State             string `json:"state"`
		Actor             string `json:"actor"`
		Reason            string `json:"reason"`
		RelatedDocumentID string `json:"related_document_id"`
	}
	if st := cso.call("GET", "/api/safety/corrections", nil, &corrections); st != 200 || len(corrections) != 2 {
		t.Fatalf("CSO corrections: HTTP %d %+v", st, corrections)
	}
	w, am := corrections[0], corrections[1] // newest first
	if w.Kind != "withdraw" || w.RelatedDocumentID != amended.DocumentID || w.Reason != "filed against the wrong patient" || w.Actor != "demo" || w.State != "sent" {
		t.Errorf("withdrawal as the CSO sees it: %+v", w)
	}
	if am.Kind != "amend" || am.RelatedDocumentID != sess.DocumentID || am.Reason != "duration misheard" {
		t.Errorf("amendment as the CSO sees it: %+v", am)
	}
}
