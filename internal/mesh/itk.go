package mesh

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"scribe/internal/fhir"
	"scribe/internal/record"
)

// ITK3 and GP Connect Send Document identifiers.
const (
	profileBundle        = "https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1"
	profileMessageHeader = "https://fhir.nhs.uk/STU3/StructureDefinition/ITK-MessageHeader-2"
	extMessageHandling   = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2"
	systemMessageEvent   = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2"
	systemRecipientType  = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1"
	systemResponseCodes  = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1"
	messageDefinition    = "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-GPConnectSendDocument-MessageDefinition-Instance-1"
	eventSendDocument    = "ITK007C"
	// EventResponse is the event of an ITK3 response (acknowledgement) message.
	EventResponse = "ITK008M"
)

// LocalID is a note's MESH local id: its document id, and for each resend the
// receiver asked for, a suffix making it a new message.
func LocalID(n fhir.Note) string {
	if n.Resends > 0 {
		return fmt.Sprintf("%s.%d", n.DocumentID, n.Resends)
	}
	return n.DocumentID
}

// Payload is a note ready for MESH: the ITK3 message and what identifies it.
type Payload struct {
	LocalID string
	Subject string
	Body    []byte // the ITK3 Bundle, FHIR STU3 JSON
	PDF     []byte
}

// BuildPayload makes the GP Connect Send Document message for a note: an ITK3 message
// Bundle (MessageHeader asking for infrastructure and business acknowledgements,
// DocumentReference, the note as a PDF Binary, Patient, Organization, Practitioner).
// An amendment's document replaces the earlier one; Send Document has no withdrawal, so a
// withdrawal is a notice document that replaces the withdrawn one and asks the practice to
// mark it entered in error.
func BuildPayload(n fhir.Note, cfg fhir.Config, sender string, now time.Time) (Payload, error) {
	shown := n
	notice := ""
	switch {
	case n.WithdrawsDocumentID != "":
		shown.WithdrawsDocumentID, shown.ReplacesDocumentID = "", n.WithdrawsDocumentID
		shown.Title = "WITHDRAWN: consultation transcript entered in error"
		shown.Description = "Withdrawal notice: " + n.Reason
		notice = fmt.Sprintf("WITHDRAWN - ENTERED IN ERROR. The consultation transcript sent earlier (document %s) must not stay in this patient's record: %s. Please mark it entered in error.",
			n.WithdrawsDocumentID, n.Reason)
	case n.ReplacesDocumentID != "":
		notice = fmt.Sprintf("AMENDED. This version replaces the consultation transcript sent earlier (document %s): %s.", n.ReplacesDocumentID, n.Reason)
	}
	doc, err := fhir.BuildDocumentReference(shown, cfg, fhir.BuildOptions{})
	if err != nil {
		return Payload{}, err
	}
	c := n.Clinician
	pdfBytes, err := record.PDF(record.Note{Title: shown.Title, NHSNumber: *doc.Subject.Identifier.Value, Start: n.ConsultationStart,
		Stop: n.ConsultationEnd, ApprovedAt: n.ApprovedAt, Approver: record.Who(c.DisplayName, c.GMCNumber, c.RegistrationBody, c.RegistrationNumber, c.SDSUserID), Text: n.Text, Notice: notice})
	if err != nil {
		return Payload{}, fmt.Errorf("render the PDF: %w", err)
	}

	localID := LocalID(n)
	ref := func() (string, string) { id := uuid.NewString(); return id, "urn:uuid:" + id }
	hdrID, hdrURL := ref()
	docID, docURL := ref()
	binID, binURL := ref()
	patID, patURL := ref()
	orgID, orgURL := ref()
	praID, praURL := ref()
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	ident := func(id *r4.Identifier) map[string]any {
		return map[string]any{"system": str(id.System), "value": str(id.Value)}
	}
	coding := func(cc *r4.CodeableConcept) map[string]any {
		c := cc.Coding[0]
		m := map[string]any{"system": str(c.System), "code": str(c.Code)}
		if c.Display != nil {
			m["display"] = *c.Display
		}
		return map[string]any{"coding": []any{m}}
	}
	stamp := now.UTC().Format(time.RFC3339)

	docRef := map[string]any{
		"resourceType":     "DocumentReference",
		"id":               docID,
		"masterIdentifier": ident(doc.MasterIdentifier),
		"identifier":       []any{ident(&doc.Identifier[0])},
		"status":           "current",
		"type":             coding(doc.Type),
		"subject":          map[string]any{"reference": patURL},
		"created":          str(doc.Date),
		"indexed":          stamp,
		"author":           []any{map[string]any{"reference": praURL}},
		"custodian":        map[string]any{"reference": orgURL},
		"description":      str(doc.Description),
		"content": []any{map[string]any{"attachment": map[string]any{
			"contentType": "application/pdf", "url": binURL, "title": shown.Title,
			"size": len(pdfBytes), "creation": str(doc.Date),
		}}},
		"context": map[string]any{"period": map[string]any{"start": str(doc.Context.Period.Start), "end": str(doc.Context.Period.End)}},
	}
	if shown.Title == "" {
		docRef["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)["title"] = "Consultation transcript"
	}
	if doc.Context.PracticeSetting != nil {
		docRef["context"].(map[string]any)["practiceSetting"] = coding(doc.Context.PracticeSetting)
	}
	if len(doc.Category) > 0 {
		docRef["class"] = coding(&doc.Category[0])
	}
	if len(doc.RelatesTo) > 0 {
		docRef["relatesTo"] = []any{map[string]any{"code": "replaces",
			"target": map[string]any{"identifier": ident(doc.RelatesTo[0].Target.Identifier)}}}
	}
	author := doc.Author[0]
	bundle := map[string]any{
		"resourceType": "Bundle",
		"id":           localID,
		"meta":         map[string]any{"profile": []string{profileBundle}},
		"identifier":   map[string]any{"system": "https://tools.ietf.org/html/rfc4122", "value": localID},
		"type":         "message",
		"entry": []any{
			entry(hdrURL, map[string]any{
				"resourceType": "MessageHeader",
				"id":           hdrID,
				"meta":         map[string]any{"profile": []string{profileMessageHeader}},
				"extension": []any{map[string]any{"url": extMessageHandling, "extension": []any{
					map[string]any{"url": "BusAckRequested", "valueBoolean": true},
					map[string]any{"url": "InfAckRequested", "valueBoolean": true},
					map[string]any{"url": "RecipientType", "valueCoding": map[string]any{"system": systemRecipientType, "code": "FA", "display": "For Action"}},
					map[string]any{"url": "MessageDefinition", "valueReference": map[string]any{"reference": messageDefinition}},
					map[string]any{"url": "SenderReference", "valueString": "None"},
					map[string]any{"url": "LocalExtension", "valueString": "None"},
				}}},
				"event":     map[string]any{"system": systemMessageEvent, "code": eventSendDocument, "display": "ITK GP Connect Send Document"},
				"sender":    map[string]any{"reference": orgURL},
				"timestamp": stamp,
				"source":    map[string]any{"endpoint": sender},
				"focus":     map[string]any{"reference": docURL},
			}),
			entry(docURL, docRef),
			entry(binURL, map[string]any{"resourceType": "Binary", "id": binID, "contentType": "application/pdf",
				"content": base64.StdEncoding.EncodeToString(pdfBytes)}),
			entry(patURL, map[string]any{"resourceType": "Patient", "id": patID,
				"identifier": []any{ident(doc.Subject.Identifier)}}),
			entry(orgURL, map[string]any{"resourceType": "Organization", "id": orgID,
				"identifier": []any{ident(doc.Custodian.Identifier)}}),
			entry(praURL, map[string]any{"resourceType": "Practitioner", "id": praID,
				"identifier": []any{ident(author.Identifier)}, "name": []any{map[string]any{"text": str(author.Display)}}}),
		},
	}
	b, err := json.Marshal(bundle)
	if err != nil {
		return Payload{}, fmt.Errorf("encode the ITK3 message: %w", err)
	}
	return Payload{LocalID: localID, Subject: shown.Title, Body: b, PDF: pdfBytes}, nil
}

func entry(fullURL string, resource map[string]any) map[string]any {
	return map[string]any{"fullUrl": fullURL, "resource": resource}
}

// Response is an ITK3 response (acknowledgement) message, as far as scribe reads it.
type Response struct {
	// RespondsTo is the Bundle id (our local id) of the message it answers.
	RespondsTo string
	// Code is MessageHeader.response.code: ok, transient-error or fatal-error.
	Code string
	// ITKCode is the ITK3 response code (e.g. 20013 infrastructure, 30001 business ack).
	ITKCode     string
	Display     string
	Diagnostics string
}

// ParseResponse reads an ITK3 response Bundle.
func ParseResponse(b []byte) (Response, error) {
	var bundle struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil || bundle.ResourceType != "Bundle" {
		return Response{}, errors.New("not a FHIR Bundle")
	}
	var r Response
	for _, e := range bundle.Entry {
		var res struct {
			ResourceType string `json:"resourceType"`
			Event        struct {
				Code string `json:"code"`
			} `json:"event"`
			Response struct {
				Identifier string `json:"identifier"`
				Code       string `json:"code"`
			} `json:"response"`
			Issue []struct {
				Details struct {
					Coding []struct {
						System  string `json:"system"`
						Code    string `json:"code"`
						Display string `json:"display"`
					} `json:"coding"`
				} `json:"details"`
				Diagnostics string `json:"diagnostics"`
			} `json:"issue"`
		}
		if json.Unmarshal(e.Resource, &res) != nil {
			continue
		}
		switch res.ResourceType {
		case "MessageHeader":
			if res.Event.Code != EventResponse {
				return Response{}, fmt.Errorf("not an ITK3 response (event %q)", res.Event.Code)
			}
			r.RespondsTo, r.Code = res.Response.Identifier, res.Response.Code
		case "OperationOutcome":
			for _, is := range res.Issue {
				for _, c := range is.Details.Coding {
					if c.System == systemResponseCodes && r.ITKCode == "" {
						r.ITKCode, r.Display = c.Code, c.Display
					}
				}
				if is.Diagnostics != "" {
					r.Diagnostics = strings.TrimSpace(strings.Join([]string{r.Diagnostics, is.Diagnostics}, " "))
				}
			}
		}
	}
	if r.RespondsTo == "" || r.Code == "" {
		return Response{}, errors.New("ITK3 response without response.identifier or response.code")
	}
	return r, nil
}

// Outcome maps an ITK3 response onto the outbox: the business acknowledgement (30001)
// means filed; the infrastructure one (20013) means received, still waiting; a duplicate
// (20007, 20008) means the practice already has it; a transient error asks for a resend;
// anything else negative is a refusal a person must look at.
func (r Response) Outcome() (fhir.AckOutcome, string) {
	detail := strings.TrimSpace(strings.Join([]string{r.ITKCode, r.Display}, " "))
	if r.Diagnostics != "" {
		detail += ": " + r.Diagnostics
	}
	switch {
	case r.ITKCode == "30001":
		return fhir.AckFiled, "filed by the practice (ITK business acknowledgement)"
	case r.ITKCode == "20007" || r.ITKCode == "20008":
		return fhir.AckFiled, "the practice already had it (ITK " + detail + ")"
	case r.Code == "transient-error":
		return fhir.AckResend, "the practice's system had a temporary problem (ITK " + detail + ")"
	case r.Code == "ok":
		return fhir.AckWaiting, "received by the practice's system (ITK infrastructure acknowledgement); waiting for it to be filed"
	}
	return fhir.AckRefused, "the practice's system refused it (ITK " + detail + "); fix it, then amend or retry"
}
