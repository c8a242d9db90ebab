package fhir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FolderSink writes each DocumentReference as a JSON file into a directory that an
// integration engine (IM1, GP Connect over MESH, …) collects from. Files appear
// atomically: written to a temporary name, synced, then renamed, so a collector never
// reads half a document. The subject is a logical reference by NHS number.
type FolderSink struct {
	Dir    string
	Config Config
}

// FileName is the name a document gets in the export folder.
func FileName(documentID string) string { return "DocumentReference-" + documentID + ".json" }

// Deliver implements Sink. Writing the same note twice leaves one file with the same content.
func (s *FolderSink) Deliver(ctx context.Context, n Note) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	doc, err := BuildDocumentReference(n, s.Config, BuildOptions{})
	if err != nil {
		return Receipt{}, err
	}
	body, err := MarshalDocumentReference(doc)
	if err != nil {
		return Receipt{}, permanent("the document could not be encoded", err)
	}
	st, err := os.Stat(s.Dir)
	if err != nil || !st.IsDir() {
		if err == nil {
			err = fmt.Errorf("%s is not a directory", s.Dir)
		}
		return Receipt{}, permanent("the export folder is missing (an administrator must check the FHIR export settings)", err)
	}
	final := filepath.Join(s.Dir, FileName(n.DocumentID))
	_, statErr := os.Stat(final)
	existed := statErr == nil
	if err := writeFileAtomic(final, body); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return Receipt{}, permanent("scribe may not write to the export folder (an administrator must fix its permissions)", err)
		}
		return Receipt{}, retryable("writing to the export folder failed", 0, err)
	}
	return Receipt{Location: final, Created: !existed}, nil
}

// writeFileAtomic replaces path with data so that readers see the old file or the new
// one, never a mixture, and the new one survives a power cut once this returns.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	// A leading dot keeps collectors that pick up *.json from taking the temporary file.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(0o640); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	// Sync the directory so the rename itself is durable.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for sync: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
