package fhir

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"scribe/internal/identifiers"
	"scribe/internal/nhsnumber"
)

// Violation is one rule a note breaks, worded for the clinician who has to fix it.
type Violation struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every rule a note breaks. It is a permanent failure: sending the
// same note again cannot succeed, so the outbox holds it and shows Error() to the user.
type ValidationError struct {
	Violations []Violation
}

func (e *ValidationError) Error() string {
	reasons := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		reasons[i] = v.Reason
	}
	return "not sent to the patient record: " + strings.Join(reasons, "; ")
}

var (
	odsPattern    = regexp.MustCompile(`^[A-Z0-9]{3,10}$`)
	snomedPattern = regexp.MustCompile(`^[1-9][0-9]{5,17}$`)
)

// Validate checks a note against the UK Core DocumentReference rules scribe promises,
// with cfg applied as BuildDocumentReference would. It returns nil or a
// *ValidationError naming every problem at once, so the clinician can fix them together.
func Validate(n Note, cfg Config) error {
	r := resolve(n, cfg)
	var vs []Violation
	add := func(field, format string, args ...any) {
		vs = append(vs, Violation{Field: field, Reason: fmt.Sprintf(format, args...)})
	}

	if u, err := url.Parse(r.identifierSystem); err != nil || u.Scheme == "" {
		add("identifier.system", "the document identifier system %q is not an absolute URI (check the FHIR configuration)", r.identifierSystem)
	}
	if _, err := uuid.Parse(n.DocumentID); err != nil {
		add("document_id", "the document has no valid identifier (internal error: %q is not a UUID)", n.DocumentID)
	}
	if strings.TrimSpace(n.NHSNumber) == "" {
		add("nhs_number", "no NHS number was entered for the patient")
	} else if err := nhsnumber.Validate(n.NHSNumber); err != nil {
		add("nhs_number", "the NHS number %q is not valid (%s)", n.NHSNumber, strings.TrimPrefix(err.Error(), nhsnumber.ErrInvalid.Error()+": "))
	}
	switch {
	case r.ods == "":
		add("practice_ods", "no practice ODS code is configured, so the record has no custodian (an administrator must set it)")
	case !odsPattern.MatchString(r.ods):
		add("practice_ods", "the practice ODS code %q is not valid (3 to 10 capital letters or digits)", r.ods)
	}
	if strings.TrimSpace(n.Clinician.DisplayName) == "" {
		add("clinician.display_name", "the approving clinician has no name in their profile")
	}
	c := n.Clinician
	sds, gmc, reg := strings.TrimSpace(c.SDSUserID), strings.TrimSpace(c.GMCNumber), strings.TrimSpace(c.RegistrationNumber)
	if sds == "" && gmc == "" && reg == "" {
		add("clinician", "the approving clinician's profile has no SDS user ID, GMC number or NMC/GPhC/HCPC registration")
	}
	if sds != "" {
		if err := identifiers.CheckSDS(sds); err != nil {
			add("clinician.sds_user_id", "the clinician's %v", err)
		}
	}
	if gmc != "" {
		if err := identifiers.Check(identifiers.GMC, gmc); err != nil {
			add("clinician.gmc_number", "the clinician's %v", err)
		}
	}
	if reg != "" || c.RegistrationBody != "" {
		if body, err := identifiers.ParseBody(c.RegistrationBody); err != nil {
			add("clinician.registration_body", "the clinician's %v", err)
		} else if err := identifiers.Check(body, reg); err != nil {
			add("clinician.registration_number", "the clinician's %v", err)
		}
	}
	if n.ConsultationStart.IsZero() || n.ConsultationEnd.IsZero() {
		add("consultation", "the consultation start or end time is missing")
	} else if n.ConsultationEnd.Before(n.ConsultationStart) {
		add("consultation", "the consultation ends before it starts")
	}
	if n.ApprovedAt.IsZero() {
		add("approved_at", "the note has no approval time")
	}
	if strings.TrimSpace(n.Text) == "" {
		add("text", "the approved note is empty")
	} else if !utf8.ValidString(n.Text) {
		add("text", "the approved note contains bytes that are not UTF-8 text")
	}
	if r.typ.System != SystemSNOMED || !snomedPattern.MatchString(r.typ.Code) {
		add("type", "the document type must be a SNOMED CT code (got %s|%s)", r.typ.System, r.typ.Code)
	}
	if c := r.category; c != nil && (c.System == "" || c.Code == "") {
		add("category", "the document category needs both a code system and a code")
	}
	if c := r.practiceSetting; c != nil && (c.System == "" || c.Code == "") {
		add("practice_setting", "the practice setting needs both a code system and a code")
	}
	if n.WithdrawsDocumentID != "" {
		if _, err := uuid.Parse(n.WithdrawsDocumentID); err != nil {
			add("withdraws_document_id", "the withdrawn document's identifier %q is not a UUID", n.WithdrawsDocumentID)
		}
	}
	if n.ReplacesDocumentID != "" {
		if _, err := uuid.Parse(n.ReplacesDocumentID); err != nil {
			add("replaces_document_id", "the amended document's identifier %q is not a UUID", n.ReplacesDocumentID)
		} else if n.ReplacesDocumentID == n.DocumentID {
			add("replaces_document_id", "an amendment cannot replace itself")
		}
	}
	if len(vs) > 0 {
		return &ValidationError{Violations: vs}
	}
	return nil
}
