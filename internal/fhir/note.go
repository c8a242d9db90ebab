// Package fhir turns an approved consultation note into a UK Core DocumentReference (FHIR
// R4) and delivers it to the patient record through a pluggable Sink: a folder an
// integration engine collects from, or a FHIR server.
//
// The R4 structs come from github.com/samply/golang-fhir-models (v0.3.2, the only version
// the module proxy serves; fastenhealth/gofhir-models is not served at all). Its known gaps
// do not bite here: we never need `contained`; every enum we emit (status, docStatus,
// relatesTo.code) is always set explicitly, so "unset enums marshal as their first value"
// cannot leak; and its HTML-escaped JSON (<, >, & as \u003c…) is still valid JSON that
// decodes to the same text. Where we must round-trip a resource we did not build (setting
// an old document to superseded) we edit the raw JSON instead, so nothing the library
// does not model is dropped.
package fhir

import (
	"net/url"
	"strings"
	"time"

	"scribe/internal/identifiers"
)

// Identifier systems and profile URLs from the UK Core and NHS England naming systems.
const (
	ProfileUKCoreDocumentReference = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-DocumentReference"
	SystemNHSNumber                = "https://fhir.nhs.uk/Id/nhs-number"
	SystemODSOrganisation          = "https://fhir.nhs.uk/Id/ods-organization-code"
	SystemSDSUserID                = identifiers.SystemSDS
	SystemGMCNumber                = identifiers.SystemGMC
	SystemSNOMED                   = "http://snomed.info/sct"

	// DefaultIdentifierSystem names scribe's approved-document identifiers when the
	// deployment does not configure its own URI.
	DefaultIdentifierSystem = "https://scribe.invalid/Id/approved-document"
)

// Coding is a code from a code system, with the display text shown to people.
type Coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// DefaultType is SNOMED CT 371531000 "Report of clinical encounter".
var DefaultType = Coding{System: SystemSNOMED, Code: "371531000", Display: "Report of clinical encounter"}

// Clinician is the approving clinician. At least one of SDSUserID, GMCNumber and a
// professional registration (NMC, GPhC, HCPC) is needed to identify them on the record.
type Clinician struct {
	DisplayName string `json:"display_name"`
	SDSUserID   string `json:"sds_user_id,omitempty"`
	GMCNumber   string `json:"gmc_number,omitempty"`
	// RegistrationBody and RegistrationNumber identify a non-doctor: NMC, GPhC or HCPC.
	RegistrationBody   string `json:"registration_body,omitempty"`
	RegistrationNumber string `json:"registration_number,omitempty"`
}

// Note is an approved consultation note on its way to the patient record. It is stored
// as JSON in the outbox, so field names are part of the on-disk format.
type Note struct {
	// DocumentID is a UUID minted once per approved document; it becomes the
	// DocumentReference identifier and so the idempotency key for delivery.
	DocumentID string `json:"document_id"`
	// IdentifierSystem is the identifier system in force when the note was approved,
	// frozen with it: the idempotency key is system|DocumentID, so a later change of
	// epr.identifier_system must not change it for notes already queued. Empty (notes
	// queued before it existed) or the placeholder: the sink's configured system.
	IdentifierSystem string    `json:"identifier_system,omitempty"`
	SessionID        string    `json:"session_id"`
	NHSNumber        string    `json:"nhs_number"`
	Clinician        Clinician `json:"clinician"`
	// PracticeODS is the custodian's ODS code; empty means "use the sink's configured
	// practice", so fixing the configuration and retrying repairs a held note.
	PracticeODS       string    `json:"practice_ods,omitempty"`
	ConsultationStart time.Time `json:"consultation_start"`
	ConsultationEnd   time.Time `json:"consultation_end"`
	ApprovedAt        time.Time `json:"approved_at"`
	Text              string    `json:"text"`
	Title             string    `json:"title,omitempty"`
	Description       string    `json:"description,omitempty"`
	// Type and Category override the configured codes for this note when set.
	Type     *Coding `json:"type,omitempty"`
	Category *Coding `json:"category,omitempty"`
	// ReplacesDocumentID is set on an amendment: the DocumentID of the note it replaces.
	ReplacesDocumentID string `json:"replaces_document_id,omitempty"`
	// WithdrawsDocumentID is set on a withdrawal: the DocumentID of the delivered note to
	// mark entered-in-error. Such a note carries no new document of its own.
	WithdrawsDocumentID string `json:"withdraws_document_id,omitempty"`
	// Reason is the clinician's reason for an amendment or withdrawal.
	Reason string `json:"reason,omitempty"`
	// Resends counts the receiver's requests to send the note again (an ITK3 transient
	// error): a message-based route gives each resend its own message identity.
	Resends int `json:"resends,omitempty"`
}

// Config holds the deployment settings that shape every DocumentReference.
type Config struct {
	// IdentifierSystem is the URI under which DocumentIDs are unique (default
	// DefaultIdentifierSystem).
	IdentifierSystem string
	// PracticeODS is used when a note carries no ODS code of its own.
	PracticeODS string
	// Type defaults to DefaultType; Category is omitted when empty.
	Type     Coding
	Category Coding
	// PracticeSetting is context.practiceSetting (omitted when empty).
	PracticeSetting Coding
	// Language of the attachment (default en-GB).
	Language string
}

func (c Config) withDefaults() Config {
	if c.IdentifierSystem == "" {
		c.IdentifierSystem = DefaultIdentifierSystem
	}
	if c.Type.Code == "" {
		c.Type = DefaultType
	}
	if c.Language == "" {
		c.Language = "en-GB"
	}
	return c
}

// resolved is a note with the configuration applied: the values that actually go out.
type resolved struct {
	Note
	identifierSystem string
	ods              string
	typ              Coding
	category         *Coding
	practiceSetting  *Coding
	language         string
	title            string
}

// isPlaceholderSystem reports whether system is (a variant of) the .invalid default, which
// no EPR ever saw as a real key (a FHIR sink refuses to start with it).
func isPlaceholderSystem(system string) bool {
	u, err := url.Parse(system)
	return err == nil && (u.Hostname() == "invalid" || strings.HasSuffix(u.Hostname(), ".invalid"))
}

func resolve(n Note, cfg Config) resolved {
	cfg = cfg.withDefaults()
	r := resolved{Note: n, identifierSystem: cfg.IdentifierSystem, ods: n.PracticeODS, typ: cfg.Type, language: cfg.Language}
	if n.IdentifierSystem != "" && !isPlaceholderSystem(n.IdentifierSystem) {
		r.identifierSystem = n.IdentifierSystem
	}
	if r.ods == "" {
		r.ods = cfg.PracticeODS
	}
	if n.Type != nil {
		r.typ = *n.Type
	}
	if n.Category != nil {
		c := *n.Category
		r.category = &c
	} else if cfg.Category.Code != "" {
		c := cfg.Category
		r.category = &c
	}
	if cfg.PracticeSetting.Code != "" {
		c := cfg.PracticeSetting
		r.practiceSetting = &c
	}
	r.title = n.Title
	if r.title == "" {
		r.title = r.typ.Display
	}
	if r.title == "" {
		r.title = "Consultation note"
	}
	return r
}
