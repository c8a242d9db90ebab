// Package record lays out an approved note as it goes into a patient record by hand or
// as a document: plain text for a GP system's free-text consultation entry (copy to
// record) and the same as a PDF (document import, GP Connect Send Document).
package record

import (
	"strings"
	"time"
	_ "time/tzdata" // Europe/London on a box without the zone database

	"scribe/internal/cleantext"
	"scribe/internal/nhsnumber"
	"scribe/internal/pdf"
)

// ukTime is the zone the practice reads times in.
var ukTime = func() *time.Location {
	if l, err := time.LoadLocation("Europe/London"); err == nil {
		return l
	}
	return time.UTC
}()

// Note is what the layout needs.
type Note struct {
	Title      string // default "Consultation transcript"
	NHSNumber  string // "" when not recorded
	Room       string // "" to leave out
	Start      time.Time
	Stop       time.Time
	ApprovedAt time.Time
	// Approver is the approving clinician as people read them, e.g. "Dr A Patel (GMC 7654321)".
	Approver string
	// Text is the approved, speaker-labelled note.
	Text string
	// Notice, when set, is shown before the text (e.g. a withdrawal or an amendment).
	Notice string
}

// Who names a clinician with their registration, e.g. "Dr A Patel (GMC 7654321)": the GMC
// number, else an NMC/GPhC/HCPC registration, else the SDS user id.
func Who(name, gmc, regBody, regNumber, sds string) string {
	switch {
	case gmc != "":
		return name + " (GMC " + gmc + ")"
	case regNumber != "":
		return name + " (" + regBody + " " + regNumber + ")"
	case sds != "":
		return name + " (SDS " + sds + ")"
	}
	return name
}

// Lines is the note laid out: what it is, when, where, whose, the lines, who approved it.
func Lines(n Note) (title string, lines []string) {
	when := func(t time.Time, layout string) string { return t.In(ukTime).Format(layout) }
	nhs := "not recorded"
	if n.NHSNumber != "" {
		nhs = nhsnumber.Format(n.NHSNumber)
	}
	lines = []string{"Date: " + when(n.Start, "2 Jan 2006 15:04") + "–" + when(n.Stop, "15:04") + " (UK time)"}
	if n.Room != "" {
		lines = append(lines, "Room: "+n.Room)
	}
	lines = append(lines, "NHS number: "+nhs, "")
	if n.Notice != "" {
		lines = append(lines, n.Notice, "")
	}
	lines = append(lines, strings.Split(strings.TrimRight(n.Text, "\n"), "\n")...)
	lines = append(lines, "",
		"Reviewed and approved by "+n.Approver+" on "+when(n.ApprovedAt, "2 Jan 2006 at 15:04")+".",
		"Transcription only (scribe): what was said, not a clinical summary.")
	title = n.Title
	if title == "" {
		title = "Consultation transcript"
	}
	for i := range lines { // no control or bidi characters reach a record (cleantext)
		lines[i] = cleantext.Line(lines[i])
	}
	return cleantext.Line(title), lines
}

// Text is the note as one plain-text block.
func Text(n Note) string {
	title, lines := Lines(n)
	return title + "\n\n" + strings.Join(lines, "\n") + "\n"
}

// PDF is the note as a PDF with extractable text.
func PDF(n Note) ([]byte, error) {
	title, lines := Lines(n)
	return pdf.Render(pdf.Document{Title: title, Lines: lines, Created: n.ApprovedAt})
}

// FileTime is a timestamp for file names, in UK time.
func FileTime(t time.Time) string { return t.In(ukTime).Format("2006-01-02-1504") }
