package audit

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// The patient-data guard. The audit trail is read by administrators and kept for years,
// so it must not become a second copy of the record. Append rejects details that:
//
//   - have a key (at any depth) containing the word "text", "transcript" or "nhs"
//     (words split at _ - . space and lower→upper case changes, compared case-insensitively;
//     so "text", "new_text", "segmentText", "transcript_id" and "nhsNumber" are all refused,
//     while "context" is fine). Name a segment by its id, never by its words.
//   - have a string value (at any depth, and also the actor and session id) containing
//     something shaped like an NHS number: ten digits, bare or grouped 3-3-4 with spaces
//     or hyphens, not part of a longer run of letters or digits. The check digit is not
//     tested: a mistyped NHS number is still patient data. UUIDs never match (their digit
//     groups are 8-4-4-4-12 and bounded by hex letters or hyphens).
//
// Numeric values are not checked, because byte counts and durations legitimately run to
// ten digits; an NHS number sent as a number under an "nhs…" key is still refused by name.
var nhsNumberLike = regexp.MustCompile(`(?:^|[^0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?:$|[^0-9A-Za-z])`)

func looksLikeNHSNumber(s string) bool { return nhsNumberLike.MatchString(s) }

// forbiddenKey reports whether a details key names transcript text or an NHS number.
func forbiddenKey(key string) bool {
	for _, w := range keyWords(key) {
		if w == "text" || strings.HasPrefix(w, "transcript") || strings.HasPrefix(w, "nhs") {
			return true
		}
	}
	return false
}

// keyWords splits snake_case, kebab-case, dotted and camelCase keys into lower-case words.
func keyWords(key string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == '.' || unicode.IsSpace(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return words
}

// checkDetails walks decoded JSON (maps, slices, strings, json.Number, bools, nil).
func checkDetails(path string, v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := path + "." + k
			if forbiddenKey(k) {
				return fmt.Errorf("%w: %s: key names transcript text or an NHS number; log ids, not content", ErrRejected, p)
			}
			if err := checkDetails(p, x); err != nil {
				return err
			}
		}
	case []any:
		for i, x := range v {
			if err := checkDetails(fmt.Sprintf("%s[%d]", path, i), x); err != nil {
				return err
			}
		}
	case string:
		if looksLikeNHSNumber(v) {
			return fmt.Errorf("%w: %s: value looks like an NHS number", ErrRejected, path)
		}
	case json.Number, bool, nil:
	default:
		return fmt.Errorf("%w: %s: unexpected %T", ErrRejected, path, v)
	}
	return nil
}
