// Package pdf writes plain-text documents as PDF 1.4: A4 pages, the standard Courier
// fonts (no embedding, so any reader has them), WinAnsi encoding and compressed content
// streams. The text stays extractable (pdftotext, a document-workflow system's indexer).
// It is the rendition a GP system's document import (e.g. a Docman folder capture) takes,
// and the Binary inside a GP Connect Send Document message.
//
// Courier is monospaced (600/1000 em for every glyph), so lines are wrapped exactly by
// counting characters; characters outside WinAnsi are written as '?'.
package pdf

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Document is what a PDF shows: a bold heading line, then body lines, wrapped to the page.
type Document struct {
	Title   string // the PDF's Title (document properties) and its first, bold line
	Lines   []string
	Created time.Time
}

// Page geometry in points (1/72 inch): A4 with 2 cm margins, Courier 10 on 13.
const (
	pageW, pageH = 595, 842
	margin       = 56
	fontSize     = 10
	leading      = 13
)

// CharsPerLine and LinesPerPage follow from the geometry: every Courier glyph advances
// 600/1000 of the font size.
const (
	CharsPerLine = (pageW - 2*margin) * 1000 / (fontSize * 600)
	LinesPerPage = (pageH - 2*margin) / leading
)

// Render returns the PDF.
func Render(d Document) ([]byte, error) {
	var body []string
	for _, l := range d.Lines {
		body = append(body, Wrap(l, CharsPerLine)...)
	}
	// The title is line 1 of page 1, then a blank line.
	type line struct {
		text string
		bold bool
	}
	all := []line{{d.Title, true}, {"", false}}
	for _, l := range body {
		all = append(all, line{l, false})
	}
	var pages [][]line
	for len(all) > 0 {
		n := min(LinesPerPage, len(all))
		pages = append(pages, all[:n])
		all = all[n:]
	}

	w := &writer{}
	w.buf.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	// Object numbers: 1 catalog, 2 pages, 3 Courier, 4 Courier-Bold, 5 info, then per page
	// a page object and its content stream.
	const catalog, pagesObj, font, fontBold, info = 1, 2, 3, 4, 5
	first := 6
	kids := make([]string, len(pages))
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", first+2*i)
	}
	w.object(catalog, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", pagesObj))
	w.object(pagesObj, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages)))
	w.object(font, "<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
	w.object(fontBold, "<< /Type /Font /Subtype /Type1 /BaseFont /Courier-Bold /Encoding /WinAnsiEncoding >>")
	created := d.Created
	if created.IsZero() {
		created = time.Now()
	}
	w.object(info, fmt.Sprintf("<< /Title %s /Producer (scribe) /CreationDate (D:%s) >>",
		literal(d.Title), created.UTC().Format("20060102150405Z")))
	for i, p := range pages {
		var cs bytes.Buffer
		fmt.Fprintf(&cs, "BT\n%d TL\n%d %d Td\n", leading, margin, pageH-margin-fontSize)
		bold := false
		for j, l := range p {
			if j == 0 || l.bold != bold {
				f := "F1"
				if l.bold {
					f = "F2"
				}
				fmt.Fprintf(&cs, "/%s %d Tf\n", f, fontSize)
				bold = l.bold
			}
			if j > 0 {
				cs.WriteString("T*\n")
			}
			if l.text != "" {
				fmt.Fprintf(&cs, "%s Tj\n", literal(l.text))
			}
		}
		cs.WriteString("ET\n")
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		if _, err := zw.Write(cs.Bytes()); err != nil {
			return nil, fmt.Errorf("pdf: compress page %d: %w", i+1, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("pdf: compress page %d: %w", i+1, err)
		}
		pageObj, contents := first+2*i, first+2*i+1
		w.object(pageObj, fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> /Contents %d 0 R >>",
			pagesObj, pageW, pageH, font, fontBold, contents))
		w.stream(contents, z.Bytes())
	}
	w.finish(catalog, info)
	return w.buf.Bytes(), nil
}

// Wrap breaks s into lines of at most width characters, at spaces where it can.
func Wrap(s string, width int) []string {
	s = strings.TrimRight(strings.ReplaceAll(s, "\t", "    "), " \r")
	if utf8.RuneCountInString(s) <= width {
		return []string{s}
	}
	var out []string
	r := []rune(s)
	for len(r) > width {
		cut := width
		for i := width; i > width/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
		out = append(out, strings.TrimRight(string(r[:cut]), " "))
		r = r[cut:]
		for len(r) > 0 && r[0] == ' ' {
			r = r[1:]
		}
	}
	if len(r) > 0 {
		out = append(out, string(r))
	}
	return out
}

type writer struct {
	buf     bytes.Buffer
	offsets []int // by object number - 1
}

func (w *writer) begin(n int) {
	for len(w.offsets) < n {
		w.offsets = append(w.offsets, 0)
	}
	w.offsets[n-1] = w.buf.Len()
	fmt.Fprintf(&w.buf, "%d 0 obj\n", n)
}

func (w *writer) object(n int, dict string) {
	w.begin(n)
	w.buf.WriteString(dict)
	w.buf.WriteString("\nendobj\n")
}

func (w *writer) stream(n int, data []byte) {
	w.begin(n)
	fmt.Fprintf(&w.buf, "<< /Length %d /Filter /FlateDecode >>\nstream\n", len(data))
	w.buf.Write(data)
	w.buf.WriteString("\nendstream\nendobj\n")
}

func (w *writer) finish(root, info int) {
	xref := w.buf.Len()
	fmt.Fprintf(&w.buf, "xref\n0 %d\n0000000000 65535 f \n", len(w.offsets)+1)
	for _, off := range w.offsets {
		fmt.Fprintf(&w.buf, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&w.buf, "trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(w.offsets)+1, root, info, xref)
}

// winAnsi maps the characters above Latin-1's printable range that WinAnsi has.
var winAnsi = map[rune]byte{
	'€': 0x80, '‚': 0x82, 'ƒ': 0x83, '„': 0x84, '…': 0x85, '†': 0x86, '‡': 0x87, 'ˆ': 0x88, '‰': 0x89,
	'Š': 0x8A, '‹': 0x8B, 'Œ': 0x8C, 'Ž': 0x8E, '‘': 0x91, '’': 0x92, '“': 0x93, '”': 0x94, '•': 0x95,
	'–': 0x96, '—': 0x97, '˜': 0x98, '™': 0x99, 'š': 0x9A, '›': 0x9B, 'œ': 0x9C, 'ž': 0x9E, 'Ÿ': 0x9F,
}

// literal encodes s as a PDF string literal in WinAnsi.
func literal(s string) string {
	var b strings.Builder
	b.WriteByte('(')
	for _, r := range s {
		var c byte
		switch {
		case r == '(' || r == ')' || r == '\\':
			b.WriteByte('\\')
			c = byte(r)
		case r >= 0x20 && r < 0x7F, r >= 0xA0 && r <= 0xFF:
			c = byte(r)
		default:
			var ok bool
			if c, ok = winAnsi[r]; !ok {
				c = '?'
			}
		}
		if c >= 0x80 {
			fmt.Fprintf(&b, "\\%03o", c)
		} else {
			b.WriteByte(c)
		}
	}
	b.WriteByte(')')
	return b.String()
}
