package identifiers

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	good := map[Kind]map[string]string{
		GMC:  {"7654321": "7654321", " 765 4321 ": "7654321", "L123456": "L123456", "l123456": "L123456"},
		SDS:  {"555021935107": "555021935107", "5550 2193 5107": "555021935107"},
		NMC:  {"71A2998E": "71A2998E", "71a2998e": "71A2998E"},
		GPhC: {"2033467": "2033467"},
		HCPC: {"PH123456": "PH123456", "pa12345": "PA12345", "CH029821": "CH029821"},
	}
	for k, cases := range good {
		for in, want := range cases {
			if got, err := Normalize(k, in); err != nil || got != want {
				t.Errorf("Normalize(%s, %q) = %q, %v; want %q", k, in, got, err, want)
			}
		}
	}
	bad := map[Kind][]string{
		GMC:  {"", "ABC<svg>", "123456", "12345678", "L12345", "C1234567", "765432l", "７６５４３２１"},
		SDS:  {"12345", "1234567890123", "55502193510X"},
		NMC:  {"71A2998", "712998E", "AAA2998E"},
		GPhC: {"203346", "20334678"},
		HCPC: {"P123456", "PH1234", "PH1234567", "12345678"},
	}
	for k, cases := range bad {
		for _, in := range cases {
			_, err := Normalize(k, in)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), Name(k)) {
				t.Errorf("Normalize(%s, %q) = %v; want an error naming the %s", k, in, err, Name(k))
			}
		}
	}
	if _, err := Normalize("dentist", "123"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown kind: %v", err)
	}
	for _, k := range []Kind{GMC, SDS, NMC, GPhC, HCPC} {
		if !strings.HasPrefix(System(k), "https://fhir.") {
			t.Errorf("System(%s) = %q", k, System(k))
		}
	}
}
