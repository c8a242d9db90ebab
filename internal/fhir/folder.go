package fhir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FolderSink writes each DocumentReference as a JSON file into a directory that an
// integration engine (IM1, GP Connect over MESH, …) collects from. Files appear
// atomically: written to a temporary name, synced, then renamed, so a collector never
// reads half a document. The subject is a logical reference by NHS number.
//
// The files hold NHS numbers and transcripts in plaintext, so they are private: mode 0600,
// or 0640 owned by Group (the engine's) when set. A delivery is not complete when the file
// is written: it waits for the engine's acknowledgement, by this convention —
//
//   - filed: the engine moves the file into collected/ (or deletes it);
//   - refused: the engine moves it into rejected/, optionally with a one-line
//     rejected/<file>.reason saying why.
//
// Collected and rejected files are deleted after Retention (default 7 days).
type FolderSink struct {
	Dir    string
	Config Config
	// Group names the group that owns the files (mode 0640); empty: mode 0600.
	Group string
	// Retention is how long collected and rejected files are kept.
	Retention time.Duration
	// Now is the clock for retention (default time.Now).
	Now func() time.Time
}

// Subfolders of the export folder in the acknowledgement convention.
const (
	CollectedDir = "collected"
	RejectedDir  = "rejected"
)

// FileName is the name a document gets in the export folder.
func FileName(documentID string) string { return "DocumentReference-" + documentID + ".json" }

func (s *FolderSink) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// fileMode and gid are how export files are written: 0600, or 0640 to the named group.
func (s *FolderSink) fileMode() (os.FileMode, int, error) {
	if s.Group == "" {
		return 0o600, -1, nil
	}
	g, err := user.LookupGroup(s.Group)
	if err != nil {
		return 0, -1, permanent(fmt.Sprintf("the export folder's group %q does not exist (an administrator must check epr.folder_group)", s.Group), err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, -1, permanent(fmt.Sprintf("the export folder's group %q has no numeric id", s.Group), err)
	}
	return 0o640, gid, nil
}

// Deliver implements Sink: the file is written (once: a copy already collected or waiting
// is not written again) and the receipt is Pending until the engine acknowledges it.
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
	mode, gid, err := s.fileMode()
	if err != nil {
		return Receipt{}, err
	}
	name := FileName(n.DocumentID)
	final := filepath.Join(s.Dir, name)
	pending := Receipt{Location: final, Pending: true, Reason: "written to the export folder; waiting for the integration engine to collect it"}
	// A retry after a crash must not hand the engine a second copy of a document it has
	// already collected: its acknowledgement is still there.
	if _, err := os.Stat(filepath.Join(s.Dir, CollectedDir, name)); err == nil {
		return pending, nil
	}
	_, statErr := os.Stat(final)
	pending.Created = statErr != nil
	if err := writeFileAtomic(final, body, mode, gid); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return Receipt{}, permanent("scribe may not write to the export folder or give files to its group (an administrator must fix its permissions or epr.folder_group)", err)
		}
		return Receipt{}, retryable("writing to the export folder failed", 0, err)
	}
	return pending, nil
}

// Acknowledgements implements Acknowledger by the folder convention, and deletes
// collected and rejected files older than the retention period.
func (s *FolderSink) Acknowledgements(ctx context.Context, waiting []Waiting) ([]Ack, error) {
	var acks []Ack
	for _, w := range waiting {
		name := FileName(w.DocumentID)
		collected := filepath.Join(s.Dir, CollectedDir, name)
		rejected := filepath.Join(s.Dir, RejectedDir, name)
		switch {
		case exists(filepath.Join(s.Dir, name)):
			continue
		case exists(collected):
			acks = append(acks, Ack{DocumentID: w.DocumentID, Outcome: AckFiled, Location: collected,
				Reason: "collected by the integration engine"})
		case exists(rejected):
			why := "no reason given"
			if b, err := os.ReadFile(rejected + ".reason"); err == nil && strings.TrimSpace(string(b)) != "" {
				why = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
			}
			acks = append(acks, Ack{DocumentID: w.DocumentID, Outcome: AckRefused,
				Reason: "the integration engine refused the document: " + why + " (fix it, then retry)"})
		default:
			acks = append(acks, Ack{DocumentID: w.DocumentID, Outcome: AckFiled, Reason: "collected by the integration engine (file removed)"})
		}
	}
	return acks, s.sweep()
}

// sweep deletes collected and rejected files older than the retention period.
func (s *FolderSink) sweep() error {
	keep := s.Retention
	if keep <= 0 {
		keep = 7 * 24 * time.Hour
	}
	cutoff := s.now().Add(-keep)
	var errs []error
	for _, sub := range []string{CollectedDir, RejectedDir} {
		entries, err := os.ReadDir(filepath.Join(s.Dir, sub))
		if err != nil {
			continue // the engine has not made it (yet)
		}
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
				continue
			}
			if err := os.Remove(filepath.Join(s.Dir, sub, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// writeFileAtomic replaces path with data so that readers see the old file or the new
// one, never a mixture, and the new one survives a power cut once this returns.
func writeFileAtomic(path string, data []byte, mode os.FileMode, gid int) (err error) {
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
	if gid >= 0 {
		if err = tmp.Chown(-1, gid); err != nil {
			return fmt.Errorf("give %s to group %d: %w", tmp.Name(), gid, err)
		}
	}
	if err = tmp.Chmod(mode); err != nil {
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
