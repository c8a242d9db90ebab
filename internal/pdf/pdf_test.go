package pdf

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"scribe/internal/pdf/pdftext"
)

func TestRenderIsExtractable(t *testing.T) {
	lines := []string{
		"[00:00:01] Clinician: Good morning — what brings you in? Café, naïve, £20, “quotes” (and brackets) \\ backslash.",
		"[00:00:05] Patient: " + strings.Repeat("a long line that must wrap at a space ", 6),
	}
	for i := 0; i < 120; i++ { // several pages
		lines = append(lines, fmt.Sprintf("[00:%02d:%02d] Patient: line %d", i/60, i%60, i))
	}
	lines = append(lines, "Reviewed and approved by Dr A Patel (GMC 7654321). ✓ not in WinAnsi")
	b, err := Render(Document{Title: "Consultation transcript", Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("%PDF-1.4")) || !bytes.HasSuffix(b, []byte("%%EOF\n")) {
		t.Fatal("not a PDF")
	}
	text := pdftext.Extract(t, b)
	joined := pdftext.Words(text) // wrapping and layout aside
	for _, want := range []string{
		"Consultation transcript",
		"Good morning — what brings you in? Café, naïve, £20, “quotes” (and brackets) \\ backslash.",
		"line 0", "line 119",
		"Reviewed and approved by Dr A Patel (GMC 7654321). ? not in WinAnsi",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("extracted text lacks %q", want)
		}
	}
	if n := strings.Count(text, "\f"); n < 3 {
		t.Errorf("%d pages, want at least 3 for %d lines", n, len(lines))
	}
	// Wrapped at a space, nothing lost.
	if !strings.Contains(joined, strings.TrimSpace(strings.Join(strings.Fields(lines[1]), " "))) {
		t.Error("the wrapped line lost words")
	}
}

func TestWrap(t *testing.T) {
	got := Wrap("one two three four", 9)
	if strings.Join(got, "|") != "one two|three|four" {
		t.Errorf("Wrap = %q", got)
	}
	if got := Wrap(strings.Repeat("x", 25), 10); strings.Join(got, "|") != "xxxxxxxxxx|xxxxxxxxxx|xxxxx" {
		t.Errorf("Wrap of an unbroken word = %q", got)
	}
}
