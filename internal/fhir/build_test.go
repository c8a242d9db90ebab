package fhir

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func testNote() Note {
	start := time.Date(2026, 3, 29, 9, 10, 0, 0, time.FixedZone("BST", 3600))
	return Note{
		DocumentID:        uuid.NewString(),
		SessionID:         "sess-1",
		NHSNumber:         "943 476 5919",
		Clinician:         Clinician{DisplayName: "Dr Ada Jones", SDSUserID: "123456789012", GMCNumber: "7654321"},
		PracticeODS:       "A81001",
		ConsultationStart: start,
		ConsultationEnd:   start.Add(12 * time.Minute),
		ApprovedAt:        start.Add(20 * time.Minute),
		Text:              "Cough for 3 days. No fever. Chest clear. Advice: fluids & rest <review in 1 week>. Café.",
		Title:             "Consultation note",
		Description:       "GP consultation, transcribed by scribe",
	}
}

func testConfig() Config {
	return Config{Category: Coding{System: SystemSNOMED, Code: "823651000000106", Display: "Clinical note"}}
}

func TestBuildDocumentReferenceShape(t *testing.T) {
	n := testNote()
	doc, err := BuildDocumentReference(n, testConfig(), BuildOptions{PatientID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalDocumentReference(doc)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ResourceType string `json:"resourceType"`
		Meta         struct{ Profile []string }
		Identifier   []struct{ System, Value string }
		Status       string
		DocStatus    string
		Type         struct{ Coding []Coding }
		Category     []struct{ Coding []Coding }
		Subject      struct {
			Reference  string
			Identifier struct{ System, Value string }
		}
		Date   string
		Author []struct {
			Identifier struct{ System, Value string }
		}
		Authenticator struct{ Display string }
		Custodian     struct {
			Identifier struct{ System, Value string }
		}
		Description string
		Content     []struct {
			Attachment struct {
				ContentType, Language, Data, Hash, Title, Creation string
				Size                                               int
			}
		}
		Context   struct{ Period struct{ Start, End string } }
		RelatesTo []any
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
	check("resourceType", m.ResourceType, "DocumentReference")
	check("meta.profile", strings.Join(m.Meta.Profile, ","), ProfileUKCoreDocumentReference)
	check("identifier.system", m.Identifier[0].System, DefaultIdentifierSystem)
	check("identifier.value", m.Identifier[0].Value, n.DocumentID)
	check("status", m.Status, "current")
	check("docStatus", m.DocStatus, "final")
	check("type", m.Type.Coding[0].Code, "371531000")
	check("type.system", m.Type.Coding[0].System, SystemSNOMED)
	check("category", m.Category[0].Coding[0].Code, "823651000000106")
	check("subject.reference", m.Subject.Reference, "Patient/p1")
	check("subject.identifier", m.Subject.Identifier.System+"|"+m.Subject.Identifier.Value, SystemNHSNumber+"|9434765919")
	check("date", m.Date, "2026-03-29T08:30:00Z")
	check("author", m.Author[0].Identifier.System+"|"+m.Author[0].Identifier.Value, SystemSDSUserID+"|123456789012")
	check("authenticator", m.Authenticator.Display, "Dr Ada Jones")
	check("custodian", m.Custodian.Identifier.System+"|"+m.Custodian.Identifier.Value, SystemODSOrganisation+"|A81001")
	check("context.period.start", m.Context.Period.Start, "2026-03-29T08:10:00Z")
	check("context.period.end", m.Context.Period.End, "2026-03-29T08:22:00Z")
	check("description", m.Description, n.Description)
	a := m.Content[0].Attachment
	check("contentType", a.ContentType, "text/plain; charset=utf-8")
	check("language", a.Language, "en-GB")
	check("title", a.Title, "Consultation note")
	check("creation", a.Creation, "2026-03-29T08:30:00Z")
	raw, err := base64.StdEncoding.DecodeString(a.Data)
	if err != nil {
		t.Fatal(err)
	}
	check("attachment text", string(raw), n.Text)
	if a.Size != len(n.Text) || a.Size == len([]rune(n.Text)) {
		t.Errorf("size = %d, want %d raw bytes (text has multi-byte characters)", a.Size, len(n.Text))
	}
	sum := sha1.Sum([]byte(n.Text))
	check("hash", a.Hash, base64.StdEncoding.EncodeToString(sum[:]))
	if m.RelatesTo != nil {
		t.Errorf("relatesTo = %v on a first version", m.RelatesTo)
	}
}

func TestBuildAuthorFallsBackToGMC(t *testing.T) {
	n := testNote()
	n.Clinician.SDSUserID = ""
	doc, err := BuildDocumentReference(n, Config{}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *doc.Author[0].Identifier.System; got != SystemGMCNumber {
		t.Errorf("author system = %q, want GMC", got)
	}
	if doc.Subject.Reference != nil {
		t.Errorf("subject.reference = %q without a resolved patient", *doc.Subject.Reference)
	}
	if doc.Category != nil {
		t.Errorf("category set without configuration: %+v", doc.Category)
	}
}

func TestBuildAmendmentRelatesTo(t *testing.T) {
	n := testNote()
	n.ReplacesDocumentID = uuid.NewString()
	doc, err := BuildDocumentReference(n, Config{}, BuildOptions{ReplacesID: "old-1"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MarshalDocumentReference(doc)
	var m struct {
		RelatesTo []struct {
			Code   string
			Target struct {
				Reference  string
				Identifier struct{ Value string }
			}
		}
	}
	_ = json.Unmarshal(b, &m)
	if len(m.RelatesTo) != 1 || m.RelatesTo[0].Code != "replaces" || m.RelatesTo[0].Target.Reference != "DocumentReference/old-1" ||
		m.RelatesTo[0].Target.Identifier.Value != n.ReplacesDocumentID {
		t.Errorf("relatesTo = %+v", m.RelatesTo)
	}
}

func TestValidateReportsEveryViolation(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(*Note, *Config)
		fields []string
		reason string
	}{
		{"bad check digit", func(n *Note, _ *Config) { n.NHSNumber = "9434765918" }, []string{"nhs_number"}, "check digit"},
		{"no NHS number", func(n *Note, _ *Config) { n.NHSNumber = "" }, []string{"nhs_number"}, "no NHS number"},
		{"missing ODS", func(n *Note, _ *Config) { n.PracticeODS = "" }, []string{"practice_ods"}, "no practice ODS code"},
		{"bad ODS", func(n *Note, _ *Config) { n.PracticeODS = "a8-1" }, []string{"practice_ods"}, "not valid"},
		{"no clinician id", func(n *Note, _ *Config) { n.Clinician.SDSUserID, n.Clinician.GMCNumber = "", "" }, []string{"clinician"}, "no SDS user ID, GMC number or NMC/GPhC/HCPC registration"},
		{"bad GMC", func(n *Note, _ *Config) { n.Clinician.GMCNumber = "12" }, []string{"clinician.gmc_number"}, "7 digits"},
		{"time travel", func(n *Note, _ *Config) { n.ConsultationEnd = n.ConsultationStart.Add(-time.Minute) }, []string{"consultation"}, "ends before it starts"},
		{"empty text", func(n *Note, _ *Config) { n.Text = "  \n" }, []string{"text"}, "empty"},
		{"non-SNOMED type", func(_ *Note, c *Config) { c.Type = Coding{System: "http://loinc.org", Code: "11488-4"} }, []string{"type"}, "SNOMED CT"},
		{"self amendment", func(n *Note, _ *Config) { n.ReplacesDocumentID = n.DocumentID }, []string{"replaces_document_id"}, "replace itself"},
		{"several at once", func(n *Note, _ *Config) { n.NHSNumber, n.PracticeODS, n.Text = "123", "", "" }, []string{"nhs_number", "practice_ods", "text"}, "want 10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, cfg := testNote(), Config{}
			tc.edit(&n, &cfg)
			err := Validate(n, cfg)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want *ValidationError", err)
			}
			var got []string
			for _, v := range ve.Violations {
				got = append(got, v.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields = %v, want %v", got, tc.fields)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not mention %q", err, tc.reason)
			}
			if !IsPermanent(err) {
				t.Error("validation failure is not permanent")
			}
			if _, err := BuildDocumentReference(n, cfg, BuildOptions{}); err == nil {
				t.Error("BuildDocumentReference accepted an invalid note")
			}
		})
	}
}

func TestConfigPracticeODSFillsGap(t *testing.T) {
	n := testNote()
	n.PracticeODS = ""
	if err := Validate(n, Config{PracticeODS: "B82005"}); err != nil {
		t.Fatalf("configured ODS code not used: %v", err)
	}
}
