package fhir_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"scribe/internal/fhir"
	"scribe/internal/fhir/fhirtest"
	"scribe/internal/nhsnumber"
)

// realNote is a valid note for a patient of its own, seeded on the server.
func realNote(t *testing.T, srv *fhirtest.Server) (fhir.Note, string) {
	nhs := fhirtest.NewNHSNumber()
	patientID := srv.SeedPatient(t, nhs, "Jones")
	n := noteFor(nhs)
	return n, patientID
}

func noteFor(nhs string) fhir.Note {
	start := time.Date(2026, 5, 14, 10, 0, 0, 0, time.UTC)
	return fhir.Note{
		DocumentID:        uuid.NewString(),
		SessionID:         "sess-real",
		NHSNumber:         nhs,
		Clinician:         fhir.Clinician{DisplayName: "Dr Sam Patel", GMCNumber: "1234567"},
		PracticeODS:       "A81001",
		ConsultationStart: start,
		ConsultationEnd:   start.Add(9 * time.Minute),
		ApprovedAt:        start.Add(15 * time.Minute),
		Text:              "Sore throat 2/7. Tonsils enlarged, no exudate. FeverPAIN 1. Self-care advice given — safety-net if worse.",
		Description:       "Consultation note",
	}
}

// testSystem is the document identifier system of the real-server tests.
const testSystem = "https://gp.example/Id/scribe-document"

func newRealSink(t *testing.T, srv *fhirtest.Server, cfg fhir.Config) *fhir.ServerSink {
	t.Helper()
	if cfg.IdentifierSystem == "" {
		cfg.IdentifierSystem = testSystem
	}
	s, err := fhir.NewServerSink(fhir.ServerConfig{BaseURL: srv.BaseURL, Config: cfg, LookupPatient: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func identifierQuery(id string) url.Values {
	return url.Values{"identifier": {testSystem + "|" + id}}
}

func TestRealServerAcceptsDocumentReference(t *testing.T) {
	srv := fhirtest.Shared(t)
	n, patientID := realNote(t, srv)
	sink := newRealSink(t, srv, fhir.Config{})
	ctx := context.Background()

	rc, err := sink.Deliver(ctx, n)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if !rc.Created || !strings.Contains(rc.Location, "/DocumentReference/") {
		t.Errorf("receipt = %+v", rc)
	}

	byID := srv.Search(t, "DocumentReference", identifierQuery(n.DocumentID))
	if len(byID) != 1 {
		t.Fatalf("found %d DocumentReferences by identifier, want 1", len(byID))
	}
	byPatient := srv.Search(t, "DocumentReference", url.Values{"patient": {"Patient/" + patientID}})
	if len(byPatient) != 1 {
		t.Fatalf("found %d DocumentReferences by patient, want 1", len(byPatient))
	}
	var doc struct {
		Status  string
		Subject struct{ Reference string }
		Content []struct {
			Attachment struct {
				Data, Hash string
				Size       int
			}
		}
	}
	if err := json.Unmarshal(byPatient[0], &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Subject.Reference != "Patient/"+patientID {
		t.Errorf("subject = %q", doc.Subject.Reference)
	}
	a := doc.Content[0].Attachment
	raw, err := base64.StdEncoding.DecodeString(a.Data)
	if err != nil || string(raw) != n.Text {
		t.Errorf("attachment decodes to %q (%v), want the approved text", raw, err)
	}
	sum := sha1.Sum(raw)
	if a.Hash != base64.StdEncoding.EncodeToString(sum[:]) || a.Size != len(raw) {
		t.Errorf("hash/size = %s/%d do not match the data", a.Hash, a.Size)
	}

	// Delivering again (a retry after a lost reply) finds the existing resource.
	rc2, err := sink.Deliver(ctx, n)
	if err != nil {
		t.Fatalf("second Deliver: %v", err)
	}
	if rc2.Created || rc2.Location != rc.Location {
		t.Errorf("second receipt = %+v, want the first resource again (%s)", rc2, rc.Location)
	}
	if got := srv.Search(t, "DocumentReference", identifierQuery(n.DocumentID)); len(got) != 1 {
		t.Errorf("after a repeat delivery the server holds %d copies", len(got))
	}
}

func TestRealServerPatientLookupHolds(t *testing.T) {
	srv := fhirtest.Shared(t)
	// Two records for one NHS number: a duplicate registration the EPR must merge.
	dup := fhirtest.NewNHSNumber()
	srv.SeedPatient(t, dup, "Smith")
	srv.SeedPatient(t, dup, "Smyth")
	unknown := fhirtest.NewNHSNumber()
	sink := newRealSink(t, srv, fhir.Config{})

	for _, tc := range []struct{ nhs, want string }{
		{unknown, "no patient with NHS number " + nhsnumber.Format(unknown) + " on the EPR"},
		{dup, "2 patients with NHS number " + nhsnumber.Format(dup)},
	} {
		n := noteFor(tc.nhs)
		_, err := sink.Deliver(context.Background(), n)
		if !fhir.IsPermanent(err) || !strings.Contains(fhir.Reason(err), tc.want) {
			t.Errorf("NHS %s: err = %v, want permanent %q", tc.nhs, err, tc.want)
		}
		if got := srv.Search(t, "DocumentReference", identifierQuery(n.DocumentID)); len(got) != 0 {
			t.Errorf("NHS %s: a held note reached the server", tc.nhs)
		}
	}
}

func TestRealServerValidationErrorIsHeld(t *testing.T) {
	srv := fhirtest.Shared(t)
	// A language code with a double space breaks the R4 `code` datatype; our own rules do
	// not cover it, so this is the server's validator speaking.
	sink := newRealSink(t, srv, fhir.Config{Language: "en  GB"})
	n, _ := realNote(t, srv)
	_, err := sink.Deliver(context.Background(), n)
	if !fhir.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if r := fhir.Reason(err); !strings.Contains(r, "HTTP 400") || !strings.Contains(r, "language") {
		t.Errorf("reason %q does not explain the server's objection", r)
	}
	if got := srv.Search(t, "DocumentReference", identifierQuery(n.DocumentID)); len(got) != 0 {
		t.Error("rejected document is on the server")
	}
}

func TestRealServerAmendmentSupersedes(t *testing.T) {
	srv := fhirtest.Shared(t)
	sink := newRealSink(t, srv, fhir.Config{})
	ctx := context.Background()

	orig, _ := realNote(t, srv)
	if _, err := sink.Deliver(ctx, orig); err != nil {
		t.Fatal(err)
	}
	amended := noteFor(orig.NHSNumber)
	amended.Text = orig.Text + " Addendum: penicillin allergy confirmed."
	amended.ReplacesDocumentID = orig.DocumentID
	for i := 0; i < 2; i++ { // the second run is a retry and must change nothing
		if _, err := sink.Deliver(ctx, amended); err != nil {
			t.Fatalf("amendment delivery %d: %v", i, err)
		}
	}

	var old struct {
		ID     string
		Status string
	}
	olds := srv.Search(t, "DocumentReference", identifierQuery(orig.DocumentID))
	if len(olds) != 1 {
		t.Fatalf("%d originals", len(olds))
	}
	_ = json.Unmarshal(olds[0], &old)
	if old.Status != "superseded" {
		t.Errorf("original status = %q, want superseded", old.Status)
	}
	news := srv.Search(t, "DocumentReference", identifierQuery(amended.DocumentID))
	if len(news) != 1 {
		t.Fatalf("%d amendments on the server, want 1", len(news))
	}
	var nw struct {
		Status    string
		RelatesTo []struct {
			Code   string
			Target struct{ Reference string }
		}
	}
	_ = json.Unmarshal(news[0], &nw)
	if nw.Status != "current" || len(nw.RelatesTo) != 1 || nw.RelatesTo[0].Code != "replaces" ||
		nw.RelatesTo[0].Target.Reference != "DocumentReference/"+old.ID {
		t.Errorf("amendment = %+v", nw)
	}

	// An amendment of a document the EPR never received is held.
	orphan := noteFor(orig.NHSNumber)
	orphan.ReplacesDocumentID = uuid.NewString()
	_, err := sink.Deliver(ctx, orphan)
	if !fhir.IsPermanent(err) || !strings.Contains(fhir.Reason(err), "not on the patient record yet") {
		t.Errorf("orphan amendment err = %v", err)
	}
}

// The test server's UK Core tightening must itself catch what our validator guards
// against, or a builder regression could slip through the real-server tests.
func TestRealServerEnforcesUKCoreRules(t *testing.T) {
	srv := fhirtest.Shared(t)
	n := noteFor(fhirtest.NewNHSNumber())
	doc, err := fhir.BuildDocumentReference(n, fhir.Config{}, fhir.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := fhir.MarshalDocumentReference(doc)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "custodian")
	m["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)["size"] = 3
	var oo struct {
		Issue []struct {
			Details    struct{ Text string }
			Expression []string
		}
	}
	srv.Do(t, "POST", "DocumentReference", m, 400, &oo)
	var got []string
	for _, is := range oo.Issue {
		got = append(got, strings.Join(is.Expression, ","))
	}
	want := "DocumentReference.custodian DocumentReference.content[0].attachment.size"
	if strings.Join(got, " ") != want {
		t.Errorf("issues at %v, want %s", got, want)
	}
}
