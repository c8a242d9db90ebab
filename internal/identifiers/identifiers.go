// Package identifiers checks and normalises the identifiers of UK health professionals
// that scribe records for the clinicians who approve notes, and that the write-back
// names as a note's author: General Medical Council (GMC) reference numbers, NHS Spine
// Directory Service (SDS) user ids, Nursing and Midwifery Council (NMC) PINs, General
// Pharmaceutical Council (GPhC) registration numbers and Health and Care Professions
// Council (HCPC) registration numbers.
//
// Formats (NHS Data Model and Dictionary; UK Core identifier systems):
//
//	GMC   7 digits, e.g. 7654321; or L and 6 digits, e.g. L123456
//	SDS   12 digits (the smartcard's user id), e.g. 555021935107
//	NMC   2 digits, a letter, 4 digits, a letter, e.g. 71A2998E
//	GPhC  7 digits, e.g. 2033467
//	HCPC  2 letters (the profession) and 5 or 6 digits, e.g. PH123456, PA12345
//
// Spaces are removed and letters upper-cased before checking; anything else that does
// not fit is refused with an error wrapping ErrInvalid that names the expected form.
package identifiers

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Kind is a kind of professional identifier.
type Kind string

// The kinds this package knows.
const (
	GMC  Kind = "gmc"
	SDS  Kind = "sds"
	NMC  Kind = "nmc"
	GPhC Kind = "gphc"
	HCPC Kind = "hcpc"
)

// ErrInvalid is wrapped by every error Normalize returns.
var ErrInvalid = errors.New("invalid professional identifier")

type format struct {
	name    string // what people call it
	pattern *regexp.Regexp
	want    string // the expected form, for error messages
	system  string // FHIR identifier system
}

var formats = map[Kind]format{
	GMC:  {"GMC number", regexp.MustCompile(`^(?:[0-9]{7}|L[0-9]{6})$`), "7 digits, or L and 6 digits", "https://fhir.hl7.org.uk/Id/gmc-number"},
	SDS:  {"SDS user ID", regexp.MustCompile(`^[0-9]{12}$`), "12 digits", "https://fhir.nhs.uk/Id/sds-user-id"},
	NMC:  {"NMC PIN", regexp.MustCompile(`^[0-9]{2}[A-Z][0-9]{4}[A-Z]$`), "2 digits, a letter, 4 digits and a letter, like 71A2998E", "https://fhir.hl7.org.uk/Id/nmc-number"},
	GPhC: {"GPhC number", regexp.MustCompile(`^[0-9]{7}$`), "7 digits", "https://fhir.hl7.org.uk/Id/gphc-number"},
	HCPC: {"HCPC number", regexp.MustCompile(`^[A-Z]{2}[0-9]{5,6}$`), "2 letters and 5 or 6 digits, like PH123456", "https://fhir.hl7.org.uk/Id/hcpc-number"},
}

// Normalize checks s as an identifier of kind k and returns it without spaces, letters
// upper-case. An empty s is an error: callers decide whether an identifier is optional.
func Normalize(k Kind, s string) (string, error) {
	f, ok := formats[k]
	if !ok {
		return "", fmt.Errorf("%w: unknown kind %q", ErrInvalid, k)
	}
	v := strings.ToUpper(strings.Join(strings.Fields(s), ""))
	if !f.pattern.MatchString(v) {
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return "", fmt.Errorf("%w: %s %q is not %s", ErrInvalid, f.name, v, f.want)
	}
	return v, nil
}

// Name is what people call an identifier of kind k ("GMC number").
func Name(k Kind) string { return formats[k].name }

// System is the FHIR identifier system URI for kind k ("" when unknown).
func System(k Kind) string { return formats[k].system }
