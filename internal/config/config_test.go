package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func load(t *testing.T, yaml string) (Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "scribe.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

// H4: a FHIR server must not receive notes under the .invalid placeholder identifier
// system: it is half of every note's idempotency key.
func TestH4FHIRSinkRefusesPlaceholderIdentifierSystem(t *testing.T) {
	for _, sys := range []string{"", "https://scribe.invalid/Id/approved-document", "not a uri"} {
		y := "epr: {sink: fhir, fhir_base_url: 'https://epr.example/fhir/R4', practice_ods: A81001"
		if sys != "" {
			y += ", identifier_system: '" + sys + "'"
		}
		if _, err := load(t, y+"}\n"); err == nil || !strings.Contains(err.Error(), "identifier_system") {
			t.Errorf("identifier_system %q: err = %v, want a refusal naming identifier_system", sys, err)
		}
	}
	if _, err := load(t, "epr: {sink: fhir, fhir_base_url: 'https://epr.example/fhir/R4', identifier_system: 'https://gp.example/Id/scribe'}\n"); err != nil {
		t.Errorf("a real identifier system was refused: %v", err)
	}
}
