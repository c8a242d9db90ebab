// Package corpus turns the PriMock57 mock GP consultations into test audio with exact
// ground truth: it parses the Praat TextGrid transcripts, and renders each speaker's
// utterances with espeak-ng at their original times onto two channels (clinician left,
// patient right) plus a mono mix, recording where the speech really landed.
package corpus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// TextGrid is a Praat annotation object: a time domain and its tiers.
type TextGrid struct {
	XMin, XMax float64
	Tiers      []Tier
}

// Tier is an IntervalTier (Intervals set) or a TextTier, also called PointTier (Points set).
type Tier struct {
	Class      string // "IntervalTier" or "TextTier"
	Name       string
	XMin, XMax float64
	Intervals  []Interval
	Points     []Point
}

// Interval is a labelled span of an IntervalTier; Text is empty for silence.
type Interval struct {
	XMin, XMax float64
	Text       string
}

// Point is a labelled instant of a TextTier.
type Point struct {
	Time float64
	Mark string
}

const (
	classIntervalTier = "IntervalTier"
	classTextTier     = "TextTier"
	// maxTextGridBytes bounds what ParseTextGrid reads: the largest PriMock57 transcript
	// is about 40 KB, so this only stops a runaway input from exhausting memory.
	maxTextGridBytes = 64 << 20
)

// ErrTextGrid is wrapped by every parse error, so callers can tell bad input from I/O errors.
var ErrTextGrid = errors.New("malformed TextGrid")

// ParseTextGrid reads a Praat TextGrid in text form: the long ("ooTextFile" with labels
// such as `xmin = 0`) or the short format (values only), encoded as UTF-8 (with or without
// BOM) or UTF-16 with a BOM, as Praat writes them. Like Praat's own reader it looks only
// at the values in order: quoted strings, numbers and <flags>; labels, array indices and
// "!" comments are skipped, which is what makes both formats one grammar.
func ParseTextGrid(r io.Reader) (*TextGrid, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxTextGridBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read TextGrid: %w", err)
	}
	if len(raw) > maxTextGridBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrTextGrid, maxTextGridBytes)
	}
	text, err := decodeText(raw)
	if err != nil {
		return nil, err
	}
	p := &tgParser{lex: lexer{s: text}}
	tg, err := p.textGrid()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTextGrid, err)
	}
	return tg, nil
}

// decodeText turns the file's bytes into a Go string, handling the encodings Praat writes.
func decodeText(raw []byte) (string, error) {
	switch {
	case bytes.HasPrefix(raw, []byte{0xEF, 0xBB, 0xBF}):
		raw = raw[3:]
	case bytes.HasPrefix(raw, []byte{0xFE, 0xFF}):
		return decodeUTF16(raw[2:], true)
	case bytes.HasPrefix(raw, []byte{0xFF, 0xFE}):
		return decodeUTF16(raw[2:], false)
	}
	if !utf8.Valid(raw) {
		// Praat's "try ASCII, then ISO Latin-1" fallback for old files.
		var b strings.Builder
		for _, c := range raw {
			b.WriteRune(rune(c))
		}
		return b.String(), nil
	}
	return string(raw), nil
}

func decodeUTF16(b []byte, bigEndian bool) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("%w: UTF-16 text has an odd number of bytes", ErrTextGrid)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		if bigEndian {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	return string(utf16.Decode(u)), nil
}

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokString
	tokNumber
	tokFlag
)

func (k tokenKind) String() string {
	return [...]string{"end of file", "string", "number", "<flag>"}[k]
}

type token struct {
	kind tokenKind
	text string // string contents (quotes undone), number text, or flag name
	line int
}

// lexer yields the values of a Praat text file and skips everything else.
type lexer struct {
	s    string
	pos  int
	line int
}

func (l *lexer) next() (token, error) {
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		switch {
		case c == '\n':
			l.line++
			l.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == '=' || c == ':' || c == '\f' || c == '\v':
			l.pos++
		case c == '!': // comment to end of line
			for l.pos < len(l.s) && l.s[l.pos] != '\n' {
				l.pos++
			}
		case c == '"':
			return l.str()
		case c == '<':
			end := strings.IndexByte(l.s[l.pos:], '>')
			if end < 0 {
				return token{}, fmt.Errorf("line %d: unterminated <flag>", l.line+1)
			}
			t := token{kind: tokFlag, text: l.s[l.pos+1 : l.pos+end], line: l.line + 1}
			l.pos += end + 1
			return t, nil
		case c == '[': // array index label such as "item [1]:" — not a value
			end := strings.IndexByte(l.s[l.pos:], ']')
			if end < 0 {
				return token{}, fmt.Errorf("line %d: unterminated [index]", l.line+1)
			}
			l.line += strings.Count(l.s[l.pos:l.pos+end], "\n")
			l.pos += end + 1
		case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
			start := l.pos
			for l.pos < len(l.s) && !isSpace(l.s[l.pos]) {
				l.pos++
			}
			return token{kind: tokNumber, text: l.s[start:l.pos], line: l.line + 1}, nil
		default: // a label word such as xmin, intervals, tiers?, File, type
			for l.pos < len(l.s) && !isSpace(l.s[l.pos]) && l.s[l.pos] != '=' && l.s[l.pos] != '"' && l.s[l.pos] != '[' {
				l.pos++
			}
		}
	}
	return token{kind: tokEOF, line: l.line + 1}, nil
}

// str reads a quoted string; Praat escapes a quote inside a string by doubling it.
func (l *lexer) str() (token, error) {
	startLine := l.line + 1
	l.pos++ // opening quote
	var b strings.Builder
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		if c == '"' {
			if l.pos+1 < len(l.s) && l.s[l.pos+1] == '"' {
				b.WriteByte('"')
				l.pos += 2
				continue
			}
			l.pos++
			return token{kind: tokString, text: b.String(), line: startLine}, nil
		}
		if c == '\n' {
			l.line++
		}
		b.WriteByte(c)
		l.pos++
	}
	return token{}, fmt.Errorf("line %d: unterminated string", startLine)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

type tgParser struct{ lex lexer }

func (p *tgParser) expect(kind tokenKind, what string) (token, error) {
	t, err := p.lex.next()
	if err != nil {
		return token{}, err
	}
	if t.kind != kind {
		return token{}, fmt.Errorf("line %d: expected %s (%s), found %s %q", t.line, what, kind, t.kind, t.text)
	}
	return t, nil
}

func (p *tgParser) str(what string) (string, error) {
	t, err := p.expect(tokString, what)
	return t.text, err
}

func (p *tgParser) num(what string) (float64, error) {
	t, err := p.expect(tokNumber, what)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(t.text, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("line %d: %s: %q is not a finite number", t.line, what, t.text)
	}
	return v, nil
}

func (p *tgParser) count(what string) (int, error) {
	t, err := p.expect(tokNumber, what)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(t.text)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("line %d: %s: %q is not a count", t.line, what, t.text)
	}
	// Every element takes at least three bytes of input, so a larger count is a lie that
	// would otherwise make us allocate for elements that are not there.
	if n > (len(p.lex.s)-p.lex.pos)/3+1 {
		return 0, fmt.Errorf("line %d: %s: %d elements cannot fit in the rest of the file", t.line, what, n)
	}
	return n, nil
}

func (p *tgParser) domain(what string, lo, hi float64) error {
	if hi < lo {
		return fmt.Errorf("%s: xmax %g before xmin %g", what, hi, lo)
	}
	return nil
}

func (p *tgParser) textGrid() (*TextGrid, error) {
	fileType, err := p.str(`file type "ooTextFile"`)
	if err != nil {
		return nil, err
	}
	if fileType != "ooTextFile" {
		return nil, fmt.Errorf("file type %q is not supported (want ooTextFile: save as text from Praat)", fileType)
	}
	class, err := p.str(`object class "TextGrid"`)
	if err != nil {
		return nil, err
	}
	if class != "TextGrid" {
		return nil, fmt.Errorf("object class %q is not TextGrid", class)
	}
	tg := &TextGrid{}
	if tg.XMin, err = p.num("TextGrid xmin"); err != nil {
		return nil, err
	}
	if tg.XMax, err = p.num("TextGrid xmax"); err != nil {
		return nil, err
	}
	if err := p.domain("TextGrid", tg.XMin, tg.XMax); err != nil {
		return nil, err
	}
	flag, err := p.expect(tokFlag, "tiers? <exists> or <absent>")
	if err != nil {
		return nil, err
	}
	switch flag.text {
	case "absent":
		return tg, nil
	case "exists":
	default:
		return nil, fmt.Errorf("line %d: tiers flag <%s> (want <exists> or <absent>)", flag.line, flag.text)
	}
	n, err := p.count("number of tiers")
	if err != nil {
		return nil, err
	}
	tg.Tiers = make([]Tier, 0, n)
	for i := range n {
		tier, err := p.tier()
		if err != nil {
			return nil, fmt.Errorf("tier %d: %w", i+1, err)
		}
		tg.Tiers = append(tg.Tiers, tier)
	}
	return tg, nil
}

func (p *tgParser) tier() (Tier, error) {
	var t Tier
	var err error
	if t.Class, err = p.str("tier class"); err != nil {
		return t, err
	}
	if t.Name, err = p.str("tier name"); err != nil {
		return t, err
	}
	if t.XMin, err = p.num("tier xmin"); err != nil {
		return t, err
	}
	if t.XMax, err = p.num("tier xmax"); err != nil {
		return t, err
	}
	if err := p.domain("tier "+t.Name, t.XMin, t.XMax); err != nil {
		return t, err
	}
	switch t.Class {
	case classIntervalTier:
		n, err := p.count("number of intervals")
		if err != nil {
			return t, err
		}
		t.Intervals = make([]Interval, 0, n)
		for i := range n {
			var iv Interval
			if iv.XMin, err = p.num("interval xmin"); err != nil {
				return t, fmt.Errorf("interval %d: %w", i+1, err)
			}
			if iv.XMax, err = p.num("interval xmax"); err != nil {
				return t, fmt.Errorf("interval %d: %w", i+1, err)
			}
			if err := p.domain(fmt.Sprintf("interval %d", i+1), iv.XMin, iv.XMax); err != nil {
				return t, err
			}
			if iv.Text, err = p.str("interval text"); err != nil {
				return t, fmt.Errorf("interval %d: %w", i+1, err)
			}
			t.Intervals = append(t.Intervals, iv)
		}
	case classTextTier, "PointTier":
		t.Class = classTextTier
		n, err := p.count("number of points")
		if err != nil {
			return t, err
		}
		t.Points = make([]Point, 0, n)
		for i := range n {
			var pt Point
			if pt.Time, err = p.num("point time"); err != nil {
				return t, fmt.Errorf("point %d: %w", i+1, err)
			}
			if pt.Mark, err = p.str("point mark"); err != nil {
				return t, fmt.Errorf("point %d: %w", i+1, err)
			}
			t.Points = append(t.Points, pt)
		}
	default:
		return t, fmt.Errorf("unknown tier class %q (want IntervalTier or TextTier)", t.Class)
	}
	return t, nil
}

// WriteTextGrid writes tg in Praat's long text format (UTF-8), the format PriMock57 uses.
func WriteTextGrid(w io.Writer, tg *TextGrid) error {
	var b strings.Builder
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	fmt.Fprintf(&b, "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\nxmin = %s \nxmax = %s \n", f(tg.XMin), f(tg.XMax))
	fmt.Fprintf(&b, "tiers? <exists> \nsize = %d \nitem []: \n", len(tg.Tiers))
	for i, t := range tg.Tiers {
		fmt.Fprintf(&b, "    item [%d]:\n        class = %s \n        name = %s \n        xmin = %s \n        xmax = %s \n",
			i+1, q(t.Class), q(t.Name), f(t.XMin), f(t.XMax))
		if t.Class == classTextTier {
			fmt.Fprintf(&b, "        points: size = %d \n", len(t.Points))
			for j, pt := range t.Points {
				fmt.Fprintf(&b, "        points [%d]:\n            number = %s \n            mark = %s \n", j+1, f(pt.Time), q(pt.Mark))
			}
			continue
		}
		fmt.Fprintf(&b, "        intervals: size = %d \n", len(t.Intervals))
		for j, iv := range t.Intervals {
			fmt.Fprintf(&b, "        intervals [%d]:\n            xmin = %s \n            xmax = %s \n            text = %s \n",
				j+1, f(iv.XMin), f(iv.XMax), q(iv.Text))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
