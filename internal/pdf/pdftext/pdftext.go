// Package pdftext reads a PDF's text with poppler's pdftotext, as a document-workflow
// system's indexer would. Only tests import it.
package pdftext

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Extract returns the text of the PDF b (pages separated by form feeds). It skips the
// test when pdftotext is missing (poppler-utils is in the sid root where `make test` runs)
// and fails it when pdftotext complains.
func Extract(t testing.TB, b []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Skip("pdftotext (poppler-utils) is not installed; it is in the sid root where `make test` runs")
	}
	p := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "-enc", "UTF-8", "-layout", p, "-")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("pdftotext: %v: %s", err, errb.String())
	}
	if errb.Len() > 0 {
		t.Errorf("pdftotext complained: %s", errb.String())
	}
	return out.String()
}

// Words is the text with layout and line breaks reduced to single spaces.
func Words(text string) string { return strings.Join(strings.Fields(text), " ") }
