package fhir

import (
	"crypto/sha1" // FHIR R4 Attachment.hash is defined as SHA-1.
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"scribe/internal/identifiers"
	"scribe/internal/nhsnumber"
)

// DocumentReference is the R4 resource type we build and send.
type DocumentReference = r4.DocumentReference

// BuildOptions carry what only the delivering sink knows.
type BuildOptions struct {
	// PatientID is the server's logical id of the Patient, when a search resolved it;
	// without it the subject is a logical reference by NHS number.
	PatientID string
	// ReplacesID is the server's logical id of the replaced DocumentReference, when known.
	ReplacesID string
}

// BuildDocumentReference validates the note and shapes it into a UK Core DocumentReference.
func BuildDocumentReference(n Note, cfg Config, opts BuildOptions) (DocumentReference, error) {
	if err := Validate(n, cfg); err != nil {
		return DocumentReference{}, err
	}
	r := resolve(n, cfg)
	nhs, _ := nhsnumber.Normalize(n.NHSNumber) // valid: checked above

	raw := []byte(n.Text)
	sum := sha1.Sum(raw)
	data := base64.StdEncoding.EncodeToString(raw)
	hash := base64.StdEncoding.EncodeToString(sum[:])
	size := len(raw)

	subject := r4.Reference{
		Type:       ptr("Patient"),
		Identifier: &r4.Identifier{System: ptr(SystemNHSNumber), Value: ptr(nhs)},
	}
	if opts.PatientID != "" {
		subject.Reference = ptr("Patient/" + opts.PatientID)
	}

	clinician := r4.Reference{Type: ptr("Practitioner"), Display: ptr(n.Clinician.DisplayName)}
	system, value := clinicianIdentifier(n.Clinician)
	clinician.Identifier = &r4.Identifier{System: ptr(system), Value: ptr(value)}

	// A withdrawal is the withdrawn document again, marked entered-in-error.
	id, status, description := n.DocumentID, r4.DocumentReferenceStatusCurrent, optional(n.Description)
	if n.WithdrawsDocumentID != "" {
		id, status = n.WithdrawsDocumentID, r4.DocumentReferenceStatusEnteredInError
		description = ptr("Withdrawn by the clinician (entered in error): " + n.Reason)
	}
	doc := DocumentReference{
		Meta: &r4.Meta{Profile: []string{ProfileUKCoreDocumentReference}},
		Text: &r4.Narrative{Status: r4.NarrativeStatusGenerated, Div: narrative(r, nhs)},
		// The document's own id, stable across versions of the record it is filed in.
		MasterIdentifier: &r4.Identifier{System: ptr("urn:ietf:rfc:3986"), Value: ptr("urn:uuid:" + id)},
		Identifier:       []r4.Identifier{{System: ptr(r.identifierSystem), Value: ptr(id)}},
		Status:           status,
		DocStatus:        ptr(r4.CompositionStatusFinal),
		Type:             &r4.CodeableConcept{Coding: []r4.Coding{toCoding(r.typ)}},
		Subject:          &subject,
		Date:             ptr(instant(n.ApprovedAt)),
		Author:           []r4.Reference{clinician},
		// The approving clinician is also the one who attests the content.
		Authenticator: &clinician,
		Custodian: &r4.Reference{
			Type:       ptr("Organization"),
			Identifier: &r4.Identifier{System: ptr(SystemODSOrganisation), Value: ptr(r.ods)},
		},
		Description: description,
		Content: []r4.DocumentReferenceContent{{Attachment: r4.Attachment{
			ContentType: ptr("text/plain; charset=utf-8"),
			Language:    ptr(r.language),
			Data:        &data,
			Size:        &size,
			Hash:        &hash,
			Title:       ptr(r.title),
			Creation:    ptr(instant(n.ApprovedAt)),
		}}},
		Context: &r4.DocumentReferenceContext{Period: &r4.Period{
			Start: ptr(instant(n.ConsultationStart)),
			End:   ptr(instant(n.ConsultationEnd)),
		}},
	}
	if r.practiceSetting != nil {
		doc.Context.PracticeSetting = &r4.CodeableConcept{Coding: []r4.Coding{toCoding(*r.practiceSetting)}}
	}
	if r.category != nil {
		doc.Category = []r4.CodeableConcept{{Coding: []r4.Coding{toCoding(*r.category)}}}
	}
	if n.ReplacesDocumentID != "" {
		target := r4.Reference{
			Type:       ptr("DocumentReference"),
			Identifier: &r4.Identifier{System: ptr(r.identifierSystem), Value: ptr(n.ReplacesDocumentID)},
		}
		if opts.ReplacesID != "" {
			target.Reference = ptr("DocumentReference/" + opts.ReplacesID)
		}
		doc.RelatesTo = []r4.DocumentReferenceRelatesTo{{Code: r4.DocumentRelationshipTypeReplaces, Target: target}}
	}
	return doc, nil
}

// clinicianIdentifier picks the approving clinician's identifier for the record: the SDS
// user id, else the GMC number, else the NMC/GPhC/HCPC registration.
func clinicianIdentifier(c Clinician) (system, value string) {
	switch {
	case c.SDSUserID != "":
		return SystemSDSUserID, c.SDSUserID
	case c.GMCNumber != "":
		return SystemGMCNumber, c.GMCNumber
	}
	body, _ := identifiers.ParseBody(c.RegistrationBody) // validated
	return identifiers.System(body), c.RegistrationNumber
}

// narrative is the DocumentReference's human-readable summary (XHTML): what the document
// is, whose, when and who approved it. The approved text itself is the attachment.
func narrative(r resolved, nhs string) string {
	e := html.EscapeString
	when := func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") }
	return `<div xmlns="http://www.w3.org/1999/xhtml"><p><b>` + e(r.title) + `</b></p>` +
		`<p>Patient NHS number ` + e(nhsnumber.Format(nhs)) + `. Consultation ` + e(when(r.ConsultationStart)) +
		` to ` + e(when(r.ConsultationEnd)) + `.</p><p>Reviewed and approved by ` + e(r.Clinician.DisplayName) +
		` on ` + e(when(r.ApprovedAt)) + `. Transcription only: not a clinical summary. The approved text is attached (text/plain).</p></div>`
}

// MarshalDocumentReference renders the resource as FHIR JSON.
func MarshalDocumentReference(doc DocumentReference) ([]byte, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode DocumentReference: %w", err)
	}
	return b, nil
}

// identifierSearch is the search (and, encoded, the If-None-Exist) that finds a document:
// a system with + or & in it must be URL-encoded to match anything.
func identifierSearch(system, documentID string) url.Values {
	return url.Values{"identifier": {system + "|" + documentID}}
}

// instant renders a FHIR instant: seconds precision and an explicit timezone. UTC keeps
// the rendering independent of the host's zone.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func toCoding(c Coding) r4.Coding {
	return r4.Coding{System: ptr(c.System), Code: ptr(c.Code), Display: optional(c.Display)}
}

func ptr[T any](v T) *T { return &v }

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
