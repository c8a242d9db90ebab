package cleantext

import "testing"

func TestLineAndText(t *testing.T) {
	for in, want := range map[string]string{
		"dose\x00 5\x07 mg \x1b[31m\u202Edaily\u200B": "dose 5 mg [31mdaily",
		"a\tb\u2028c\u2029d":                          "a b c d",
		"left\u2066isolate\u2069 \uFEFFbom\u00ADshy":  "leftisolate bomshy",
		"plain words, £5 – café":                      "plain words, £5 – café",
		"two\r\nlines":                                "two lines",
	} {
		if got := Line(in); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Text("first\r\nsecond\x07\n\u202Ethird"); got != "first\nsecond\nthird" {
		t.Errorf("Text kept or lost the wrong characters: %q", got)
	}
	if bad := "\xff\x00"; Line(bad) != bad {
		t.Error("invalid UTF-8 must come back unchanged for the caller to refuse")
	}
}
