package record

import (
	"strings"
	"testing"
	"time"
)

func TestTextLayout(t *testing.T) {
	start := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC) // 10:05 BST
	n := Note{Start: start, Stop: start.Add(8 * time.Minute), ApprovedAt: start.Add(20 * time.Minute),
		Approver: Who("Sam Nurse", "", "NMC", "12A3456E", "123456789012"), Text: "[00:00:01] Clinician: Hello.\n", Notice: "AMENDED. Reason."}
	got := Text(n)
	for _, want := range []string{
		"Consultation transcript\n\nDate: 1 Jul 2026 10:05–10:13 (UK time)\nNHS number: not recorded\n\nAMENDED. Reason.\n\n[00:00:01] Clinician: Hello.\n\n",
		"Reviewed and approved by Sam Nurse (NMC 12A3456E) on 1 Jul 2026 at 10:25.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("text lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Room:") {
		t.Error("a note without a room shows a Room line")
	}
	if Who("Dr X", "", "", "", "") != "Dr X" || Who("Dr Y", "", "", "", "123456789012") != "Dr Y (SDS 123456789012)" {
		t.Error("Who without a registration")
	}
}

// The layout is a record builder: what it lays out carries no control or bidirectional
// characters, whatever the note's parts hold (issue 14).
func TestLinesCarryNoControlCharacters(t *testing.T) {
	text := Text(Note{Room: "Room\x1b 1", Approver: "Dr \u202EA Patel", Notice: "amended\x07", Text: "[00:00:01] Clinician: dose\x00 5 mg\u200B\n"})
	for _, r := range text {
		if r != '\n' && (r < 0x20 || r == 0x7f || r == '\u202E' || r == '\u200B') {
			t.Fatalf("the laid-out note holds %U: %q", r, text)
		}
	}
	if !strings.Contains(text, "dose 5 mg") || !strings.Contains(text, "Dr A Patel") {
		t.Errorf("words lost with the characters: %q", text)
	}
}
