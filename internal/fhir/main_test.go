package fhir_test

import (
	"os"
	"testing"

	"scribe/internal/fhir/fhirtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fhirtest.StopShared()
	os.Exit(code)
}
