// Package identifiers checks UK professional identifiers and names their FHIR identifier
// systems: GMC (doctors), NMC (nurses, midwives), GPhC (pharmacists and pharmacy
// technicians), HCPC (allied health professionals) and the NHS SDS user id.
//
// Written for issue #15 (write-back needs them on every document); issue #14 plans one
// package for professional identifiers, and the two are meant to be merged.
package identifiers

import (
	"fmt"
	"regexp"
	"strings"
)

// Body is a regulator whose register numbers identify a clinician on the record.
type Body string

const (
	GMC  Body = "GMC"
	NMC  Body = "NMC"
	GPhC Body = "GPhC"
	HCPC Body = "HCPC"
)

// FHIR identifier systems (UK Core naming systems).
const (
	SystemGMC  = "https://fhir.hl7.org.uk/Id/gmc-number"
	SystemNMC  = "https://fhir.hl7.org.uk/Id/nmc-number"
	SystemGPhC = "https://fhir.hl7.org.uk/Id/gphc-number"
	SystemHCPC = "https://fhir.hl7.org.uk/Id/hcpc-number"
	SystemSDS  = "https://fhir.nhs.uk/Id/sds-user-id"
)

var rules = map[Body]struct {
	re     *regexp.Regexp
	system string
	form   string
}{
	// GMC reference numbers are 7 digits; the L+6 form is accepted as the issue asks
	// (temporary and locum registrations recorded that way by some systems).
	GMC:  {regexp.MustCompile(`^([0-9]{7}|L[0-9]{6})$`), SystemGMC, "7 digits, or L and 6 digits"},
	NMC:  {regexp.MustCompile(`^[0-9]{2}[A-Z][0-9]{4}[A-Z]$`), SystemNMC, "2 digits, a letter, 4 digits, a letter (e.g. 12A3456E)"},
	GPhC: {regexp.MustCompile(`^[0-9]{7}$`), SystemGPhC, "7 digits"},
	HCPC: {regexp.MustCompile(`^[A-Z]{2}[0-9]{4,6}$`), SystemHCPC, "2 letters and 4 to 6 digits (e.g. PA12345)"},
}

var sdsRE = regexp.MustCompile(`^[0-9]{12}$`)

// Normalize upper-cases and removes spaces.
func Normalize(s string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
}

// ParseBody names a regulator, case-insensitively.
func ParseBody(s string) (Body, error) {
	for b := range rules {
		if strings.EqualFold(string(b), strings.TrimSpace(s)) {
			return b, nil
		}
	}
	return "", fmt.Errorf("unknown professional register %q (want GMC, NMC, GPhC or HCPC)", s)
}

// Check validates a register number (already normalised) for body.
func Check(body Body, number string) error {
	r, ok := rules[body]
	if !ok {
		return fmt.Errorf("unknown professional register %q (want GMC, NMC, GPhC or HCPC)", body)
	}
	if !r.re.MatchString(number) {
		return fmt.Errorf("%s number %q is not valid (%s)", body, number, r.form)
	}
	return nil
}

// System is the FHIR identifier system of body's numbers.
func System(body Body) string { return rules[body].system }

// CheckSDS validates an SDS user id (12 digits).
func CheckSDS(id string) error {
	if !sdsRE.MatchString(id) {
		return fmt.Errorf("SDS user ID %q is not valid (12 digits)", id)
	}
	return nil
}
