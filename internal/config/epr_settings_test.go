package config

import (
	"strings"
	"testing"
)

// The settings issue #15 adds: SMART scopes, document category and practice setting, the
// folder sink's group, acknowledgement and retention, and the MESH sink.
func TestWritebackSettingsLoad(t *testing.T) {
	c, err := load(t, `epr:
  sink: fhir
  fhir_base_url: https://epr.example/fhir/R4
  identifier_system: https://gp.example/Id/scribe
  smart: {token_url: https://epr.example/token, client_id: scribe, key_file: /etc/scribe/smart.pem, key_id: k1,
          scopes: [system/DocumentReference.c, system/Patient.rs]}
  category: {system: http://snomed.info/sct, code: "734163000", display: Care plan}
  practice_setting: {system: http://snomed.info/sct, code: "394814009", display: General practice}
  folder_group: scribe-export
  folder_retention_days: 7
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.EPR.SMART.Scopes, " "); got != "system/DocumentReference.c system/Patient.rs" {
		t.Errorf("scopes = %q", got)
	}
	if c.EPR.Category.Code != "734163000" || c.EPR.PracticeSetting.Code != "394814009" {
		t.Errorf("category %+v, practice setting %+v", c.EPR.Category, c.EPR.PracticeSetting)
	}
	if c.EPR.FolderGroup != "scribe-export" || c.EPR.FolderRetentionDays != 7 {
		t.Errorf("folder group %q, retention %d", c.EPR.FolderGroup, c.EPR.FolderRetentionDays)
	}
}
