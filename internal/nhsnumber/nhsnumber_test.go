package nhsnumber

import (
	"errors"
	"strings"
	"testing"
)

func TestValidNumbers(t *testing.T) {
	for _, in := range []string{
		"9434765919",
		"943 476 5919",
		"943-476-5919",
		" 9434765919 ",
		"4010232137", // check digit 7
		"9000000009", // sum 90 -> remainder 2 -> 9
	} {
		if err := Validate(in); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", in, err)
		}
	}
}

func TestInvalidNumbers(t *testing.T) {
	for in, wantMsg := range map[string]string{
		"9434765918":   "check digit is 8, want 9",
		"943476591":    "has 9 digits",
		"94347659190":  "has 11 digits",
		"":             "has 0 digits",
		"943476591X":   "unexpected character 'X'",
		"943.476.5919": "unexpected character '.'",
		"９４３４７６５９１９":   "unexpected character",
	} {
		err := Validate(in)
		if err == nil {
			t.Errorf("Validate(%q) = nil, want error", in)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%q) error %v does not wrap ErrInvalid", in, err)
		}
		if !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("Validate(%q) = %q, want it to mention %q", in, err, wantMsg)
		}
	}
}

func TestCheckDigitEdges(t *testing.T) {
	// Find stems whose remainder gives 11 (-> 0) and 10 (-> no valid number) by brute
	// force rather than trusting hand arithmetic.
	var got0, got10 bool
	for n := 100000000; n < 100000200 && !(got0 && got10); n++ {
		stem := itoa9(n)
		sum := 0
		for i := 0; i < 9; i++ {
			sum += int(stem[i]-'0') * (10 - i)
		}
		switch sum % 11 {
		case 0:
			got0 = true
			if err := Validate(stem + "0"); err != nil {
				t.Errorf("stem %s with remainder 0 needs check digit 0: %v", stem, err)
			}
		case 1:
			got10 = true
			for d := '0'; d <= '9'; d++ {
				if err := Validate(stem + string(d)); err == nil || !strings.Contains(err.Error(), "no valid check digit") {
					t.Errorf("stem %s (check 10) with %c: got %v, want no-valid-check-digit error", stem, d, err)
				}
			}
		}
	}
	if !got0 || !got10 {
		t.Fatal("did not find both edge stems")
	}
}

func itoa9(n int) string {
	b := make([]byte, 9)
	for i := 8; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b)
}

func TestNormalizeAndFormat(t *testing.T) {
	d, err := Normalize("943-476 5919")
	if err != nil || d != "9434765919" {
		t.Fatalf("Normalize = %q, %v", d, err)
	}
	if f := Format("9434765919"); f != "943 476 5919" {
		t.Errorf("Format = %q", f)
	}
	if f := Format("not a number"); f != "not a number" {
		t.Errorf("Format(invalid) = %q, want input unchanged", f)
	}
}

// FuzzNormalize checks that any input either fails cleanly or yields ten digits that
// pass validation again and format back to the same digits.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"9434765919", "943 476 5919", "9434765918", "", "-", "１２３"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Normalize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(d) != 10 || strings.Trim(d, "0123456789") != "" {
			t.Fatalf("Normalize(%q) = %q, not ten digits", s, d)
		}
		if err := Validate(d); err != nil {
			t.Fatalf("normalised %q fails validation: %v", d, err)
		}
		f := Format(d)
		if strings.ReplaceAll(f, " ", "") != d || len(f) != 12 {
			t.Fatalf("Format(%q) = %q", d, f)
		}
	})
}

// Placeholder numbers typed to get past a form pass the Modulus 11 check; they must be
// refused all the same (issue 14): every all-same-digit number, and anything below the
// lowest range ever issued.
func TestPlaceholderNumbersRefused(t *testing.T) {
	for _, in := range []string{"0000000000", "1111111111", "2222222222", "3333333333", "4444444444",
		"5555555555", "6666666666", "7777777777", "8888888888", "9999999999", "000 000 0000", "0000000019"} {
		digits := strings.NewReplacer(" ", "").Replace(in)
		if c, ok := checkDigit(digits[:9]); !ok || c != int(digits[9]-'0') {
			continue // fails Modulus 11 anyway: not a placeholder that gets through
		}
		err := Validate(in)
		if err == nil {
			t.Errorf("Validate(%q) = nil: a placeholder passes", in)
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a real patient's") {
			t.Errorf("Validate(%q) = %v, want a placeholder error wrapping ErrInvalid", in, err)
		}
	}
	for _, in := range []string{"9434765919", "4010232137", "0101000008"} {
		if c, ok := checkDigit(in[:9]); ok && c == int(in[9]-'0') {
			if err := Validate(in); err != nil {
				t.Errorf("Validate(%q) = %v: a number in an issued range is refused", in, err)
			}
		}
	}
}
