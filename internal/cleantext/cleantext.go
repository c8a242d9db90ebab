// Package cleantext removes the characters that have no business in a clinical note but
// can hide in pasted or machine text: control characters (NUL, BEL, ESC and the rest of
// Unicode's Cc category) and format characters (Cf: bidirectional overrides and isolates
// such as U+202E, zero-width spaces and joiners, the byte order mark, soft hyphens). A
// right-to-left override can make a note read differently on screen from what it says,
// and control characters upset the systems a note is filed into.
//
// It is used where text enters scribe (the API) and where the record's text is built.
package cleantext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line cleans one line of text: tabs, line and paragraph separators become spaces, every
// other control or format character is removed. Invalid UTF-8 is returned unchanged, for
// the caller's validation to refuse.
func Line(s string) string { return clean(s, false) }

// Text cleans text that may have several lines: like Line, but newlines are kept (a
// carriage return before one is dropped).
func Text(s string) string { return clean(s, true) }

func clean(s string, keepNewlines bool) string {
	if !utf8.ValidString(s) || !needsCleaning(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n' && keepNewlines:
			b.WriteRune(r)
		case r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r):
			// dropped, \r included (a \r\n pair keeps its \n)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsCleaning(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && (unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029') {
			return true
		}
	}
	return false
}
