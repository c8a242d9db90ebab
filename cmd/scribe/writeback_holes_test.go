package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"scribe/internal/config"
	"scribe/internal/server"
	"scribe/internal/store"
)

// H4: the idempotency key of a queued note (identifier system + document id) changed when
// epr.identifier_system changed between approval and delivery, so a note already on the
// EPR under the old key would be filed again under the new one.
func TestH4IdentifierSystemFrozenAtApproval(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.EPR.Folder = filepath.Join(dir, "export")
	cfg.EPR.PracticeODS = "A81001"
	cfg.EPR.IdentifierSystem = "https://gp.example/Id/scribe-old"
	wb, err := newWriteBack(ctx, cfg, st.DB(), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	note := server.ApprovedNote{SessionID: "s1", DocumentID: uuid.NewString(), NHSNumber: "9434765919",
		ClinicianName: "Dr A Patel", ClinicianGMC: "7654321", RoomName: "Room 1",
		ConsultationStart: start, ConsultationStop: start.Add(10 * time.Minute), ApprovedAt: start.Add(20 * time.Minute),
		Text: "Clinician: Hello."}
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := wb.onApproved(ctx, tx, note); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// The administrator changes the identifier system before the note went out.
	cfg.EPR.IdentifierSystem = "https://gp.example/Id/scribe-new"
	wb2, err := newWriteBack(ctx, cfg, st.DB(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if did, err := wb2.worker.RunOnce(ctx); !did || err != nil {
		t.Fatalf("RunOnce = %v, %v", did, err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.EPR.Folder, "DocumentReference-"+note.DocumentID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Identifier []struct{ System, Value string }
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Identifier) == 0 || doc.Identifier[0].System != "https://gp.example/Id/scribe-old" {
		t.Errorf("identifier %+v: want the system in force at approval", doc.Identifier)
	}
}
