package fhir

import (
	"strings"
	"testing"
)

// From the review in issue #15: masterIdentifier, a generated narrative, and GMC numbers
// in their L+6 form.
func TestDocumentHasMasterIdentifierAndNarrative(t *testing.T) {
	n := testNote()
	doc, err := BuildDocumentReference(n, testConfig(), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if doc.MasterIdentifier == nil || doc.MasterIdentifier.Value == nil || *doc.MasterIdentifier.Value != "urn:uuid:"+n.DocumentID ||
		doc.MasterIdentifier.System == nil || *doc.MasterIdentifier.System != "urn:ietf:rfc:3986" {
		t.Errorf("masterIdentifier = %+v, want urn:ietf:rfc:3986 urn:uuid:%s", doc.MasterIdentifier, n.DocumentID)
	}
	if doc.Text == nil || doc.Text.Status.Code() != "generated" {
		t.Fatalf("text = %+v, want a generated narrative", doc.Text)
	}
	div := doc.Text.Div
	for _, want := range []string{`<div xmlns="http://www.w3.org/1999/xhtml">`, "Consultation note", "Dr Ada Jones", "943 476 5919"} {
		if !strings.Contains(div, want) {
			t.Errorf("narrative %q lacks %q", div, want)
		}
	}
}

func TestGMCNumberLetterForm(t *testing.T) {
	n := testNote()
	n.Clinician = Clinician{DisplayName: "Dr L Form", GMCNumber: "L123456"}
	if err := Validate(n, testConfig()); err != nil {
		t.Errorf("GMC L123456: %v", err)
	}
	for _, bad := range []string{"L12345", "123456", "X123456", "L1234567"} {
		n.Clinician.GMCNumber = bad
		if err := Validate(n, testConfig()); err == nil {
			t.Errorf("GMC %q accepted", bad)
		}
	}
}

func TestNonDoctorRegistrationAndPracticeSetting(t *testing.T) {
	n := testNote()
	n.Clinician = Clinician{DisplayName: "Sam Nurse", RegistrationBody: "NMC", RegistrationNumber: "12A3456E"}
	cfg := testConfig()
	cfg.PracticeSetting = Coding{System: SystemSNOMED, Code: "394814009", Display: "General practice"}
	doc, err := BuildDocumentReference(n, cfg, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := doc.Author[0].Identifier
	if *id.System != "https://fhir.hl7.org.uk/Id/nmc-number" || *id.Value != "12A3456E" {
		t.Errorf("author identifier %s|%s", *id.System, *id.Value)
	}
	if ps := doc.Context.PracticeSetting; ps == nil || *ps.Coding[0].Code != "394814009" {
		t.Errorf("practiceSetting = %+v", ps)
	}
	n.Clinician.RegistrationNumber = "12A3456"
	if err := Validate(n, cfg); err == nil || !strings.Contains(err.Error(), "NMC number") {
		t.Errorf("bad NMC PIN: err = %v", err)
	}
}
