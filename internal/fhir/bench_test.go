package fhir_test

import (
	"context"
	"testing"
	"time"

	"scribe/internal/fhir"
	"scribe/internal/fhir/fhirtest"
)

// BenchmarkBuildDocumentReference measures validating and shaping one note.
func BenchmarkBuildDocumentReference(b *testing.B) {
	n := noteFor(fhirtest.NewNHSNumber())
	for b.Loop() {
		doc, err := fhir.BuildDocumentReference(n, fhir.Config{}, fhir.BuildOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fhir.MarshalDocumentReference(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRealServerDeliver measures one full delivery (Patient search + conditional
// create) against the real test server on loopback.
func BenchmarkRealServerDeliver(b *testing.B) {
	srv := fhirtest.Shared(b)
	nhs := fhirtest.NewNHSNumber()
	srv.SeedPatient(b, nhs, "Bench")
	sink, err := fhir.NewServerSink(fhir.ServerConfig{BaseURL: srv.BaseURL, LookupPatient: true, Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		n := noteFor(nhs)
		b.StartTimer()
		if _, err := sink.Deliver(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
}
