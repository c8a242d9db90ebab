// Package nhsnumber validates, normalises and formats NHS numbers: ten digits whose last
// digit is a Modulus 11 check digit over the first nine, and not a placeholder.
//
// Modulus 11 lets through numbers nobody was ever given: every all-same-digit number
// (0000000000, 1111111111, … 9999999999 all pass) and numbers below the lowest range ever
// issued (Scotland's CHI numbers start at 010 100 0000; England, Wales and the Isle of
// Man use 3xx–7xx, Northern Ireland 320–399). Those are what people type to get past a
// form, so they are refused as placeholders. The test range 999 000 0000–999 999 9999
// (never issued, valid by the check) is accepted apart from 9999999999: demonstrations and
// test systems use it.
package nhsnumber

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error Validate and Normalize return, so callers can
// tell a bad NHS number from other failures with errors.Is.
var ErrInvalid = errors.New("invalid NHS number")

// Normalize strips the spaces and hyphens people type into NHS numbers and returns the
// ten bare digits, or an error saying what is wrong with the input.
func Normalize(s string) (string, error) {
	var b strings.Builder
	b.Grow(10)
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-':
		default:
			return "", fmt.Errorf("%w: unexpected character %q (only digits, spaces and hyphens are allowed)", ErrInvalid, r)
		}
	}
	digits := b.String()
	if len(digits) != 10 {
		return "", fmt.Errorf("%w: has %d digits, want 10", ErrInvalid, len(digits))
	}
	check, ok := checkDigit(digits[:9])
	if !ok {
		return "", fmt.Errorf("%w: no valid check digit exists for the first nine digits", ErrInvalid)
	}
	if got := int(digits[9] - '0'); got != check {
		return "", fmt.Errorf("%w: check digit is %d, want %d (mistyped digit?)", ErrInvalid, got, check)
	}
	if reason := placeholder(digits); reason != "" {
		return "", fmt.Errorf("%w: %s is not a real patient's number (%s)", ErrInvalid, digits[:3]+" "+digits[3:6]+" "+digits[6:], reason)
	}
	return digits, nil
}

// lowestIssued is the start of the lowest range of numbers ever issued (CHI, Scotland).
const lowestIssued = "0101000000"

// placeholder says why ten digits that pass Modulus 11 are still no one's number, or "".
func placeholder(digits string) string {
	if strings.Count(digits, digits[:1]) == len(digits) {
		return "every digit the same: a placeholder"
	}
	if digits < lowestIssued { // same length: string order is numeric order
		return "below 010 100 0000, the lowest range ever issued"
	}
	return ""
}

// Validate reports whether s is a valid NHS number (spaces and hyphens allowed).
func Validate(s string) error {
	_, err := Normalize(s)
	return err
}

// Format renders a valid NHS number in the 3-3-4 grouping people read ("943 476 5919").
// Input that is not a valid NHS number is returned unchanged, so a display never hides
// what was actually entered.
func Format(s string) string {
	d, err := Normalize(s)
	if err != nil {
		return s
	}
	return d[:3] + " " + d[3:6] + " " + d[6:]
}

// checkDigit computes the Modulus 11 check digit for nine digits: weights 10 down to 2,
// 11 minus the remainder, 11 becomes 0, and 10 means no number with this stem is valid.
func checkDigit(nine string) (int, bool) {
	sum := 0
	for i := 0; i < 9; i++ {
		sum += int(nine[i]-'0') * (10 - i)
	}
	c := 11 - sum%11
	switch c {
	case 11:
		return 0, true
	case 10:
		return 0, false
	}
	return c, true
}
