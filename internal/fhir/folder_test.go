package fhir

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFolderSinkWritesAtomicallyAndIdempotently(t *testing.T) {
	dir := t.TempDir()
	s := &FolderSink{Dir: dir}
	n := testNote()
	rc, err := s.Deliver(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if !rc.Created || rc.Location != filepath.Join(dir, FileName(n.DocumentID)) {
		t.Errorf("receipt = %+v", rc)
	}
	first, err := os.ReadFile(rc.Location)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(first, &doc); err != nil || doc["resourceType"] != "DocumentReference" {
		t.Fatalf("file is not a DocumentReference: %v %s", err, first)
	}

	rc2, err := s.Deliver(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if rc2.Created {
		t.Error("second delivery reported Created")
	}
	second, _ := os.ReadFile(rc.Location)
	if string(first) != string(second) {
		t.Error("redelivery changed the file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want only the document (no temporary files)", names)
	}
}

func TestFolderSinkMissingFolderIsHeld(t *testing.T) {
	s := &FolderSink{Dir: filepath.Join(t.TempDir(), "gone")}
	_, err := s.Deliver(context.Background(), testNote())
	if !IsPermanent(err) || !strings.Contains(Reason(err), "export folder is missing") {
		t.Errorf("err = %v, want permanent missing-folder error", err)
	}
}

func TestFolderSinkInvalidNoteWritesNothing(t *testing.T) {
	dir := t.TempDir()
	n := testNote()
	n.NHSNumber = "9434765918"
	_, err := (&FolderSink{Dir: dir}).Deliver(context.Background(), n)
	if !IsPermanent(err) || !strings.Contains(Reason(err), "NHS number") {
		t.Errorf("err = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("invalid note left %d files", len(entries))
	}
}
