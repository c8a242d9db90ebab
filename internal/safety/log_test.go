package safety

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRiskMatrix(t *testing.T) {
	known := []struct {
		s    Severity
		l    Likelihood
		want Rating
	}{
		{Minor, VeryLow, 1}, {Catastrophic, VeryLow, 3}, {Minor, VeryHigh, 3}, {Catastrophic, VeryHigh, 5},
		{Major, High, 4}, {Considerable, Medium, 3}, {Significant, Low, 2}, {Major, Low, 3}, {Major, VeryLow, 2},
		{Catastrophic, Low, 4}, {Significant, VeryHigh, 4}, {Minor, Medium, 2},
	}
	for _, k := range known {
		got, err := Risk(k.s, k.l)
		if err != nil || got != k.want {
			t.Errorf("Risk(%v, %v) = %d, %v; want %d", k.s, k.l, got, err, k.want)
		}
	}
	// The matrix never rates a worse severity or a likelier hazard lower.
	for s := Minor; s <= Catastrophic; s++ {
		for l := VeryLow; l <= VeryHigh; l++ {
			r, _ := Risk(s, l)
			if s > Minor {
				if prev, _ := Risk(s-1, l); prev > r {
					t.Errorf("rating falls from %v to %v at likelihood %v", s-1, s, l)
				}
			}
			if l > VeryLow {
				if prev, _ := Risk(s, l-1); prev > r {
					t.Errorf("rating falls from %v to %v at severity %v", l-1, l, s)
				}
			}
		}
	}
	if _, err := Risk(0, Low); err == nil {
		t.Error("severity 0 accepted")
	}
	if _, err := Risk(Major, 6); err == nil {
		t.Error("likelihood 6 accepted")
	}
}

// validLog is a minimal log that passes validation; tests break one rule at a time.
const validLog = `
system: test system
intended_use: transcription only
hazards:
  - id: HAZ-1
    title: Wrong words
    description: misrecognition
    causes: [accent]
    effects: [wrong dose recorded]
    initial: {severity: Major, likelihood: High, rating: 4}
    controls:
      - id: C1
        type: design
        description: review
        evidence: [internal/server.TestApproveRequiresReview]
      - id: C2
        type: training
        description: train staff
        documents: [training module]
    residual: {severity: major, likelihood: very_low, rating: 2}
`

func TestParseHazardLogValid(t *testing.T) {
	log, err := ParseHazardLog([]byte(validLog))
	if err != nil {
		t.Fatal(err)
	}
	h := log.Hazards[0]
	if h.Initial.Severity != Major || h.Residual.Likelihood != VeryLow || h.Controls[0].Kind != ControlDesign {
		t.Fatalf("decoded %+v", h)
	}
	refs := log.Refs()
	if len(refs) != 1 || refs[0].Ref != (TestRef{"internal/server", "TestApproveRequiresReview"}) || refs[0].Hazards[0] != "HAZ-1" {
		t.Fatalf("refs %+v", refs)
	}
	// Numbers are accepted as well as names.
	if _, err := ParseHazardLog([]byte(strings.Replace(validLog, "severity: Major, likelihood: High", "severity: 4, likelihood: 4", 1))); err != nil {
		t.Fatalf("numeric scales: %v", err)
	}
}

func TestParseHazardLogRejects(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"missing id", "id: HAZ-1", "id: ''", "id is required"},
		{"wrong stated rating", "likelihood: High, rating: 4", "likelihood: High, rating: 3", "stated rating 3 but Major severity × High likelihood gives 4"},
		{"residual above initial", "initial: {severity: Major, likelihood: High, rating: 4}", "initial: {severity: Minor, likelihood: Low, rating: 1}", "residual rating 2 is higher than initial rating 1"},
		{"unknown severity", "severity: Major, likelihood: High", "severity: Huge, likelihood: High", `unknown severity "Huge"`},
		{"severity out of range", "severity: Major, likelihood: High", "severity: 7, likelihood: High", "severity 7 out of range"},
		{"bad evidence form", "[internal/server.TestApproveRequiresReview]", "[TestApproveRequiresReview]", "is not package/path.TestName"},
		{"evidence not a test name", "[internal/server.TestApproveRequiresReview]", "[internal/server.approveRequiresReview]", "not a Go test"},
		{"evidence lower-case after Test", "[internal/server.TestApproveRequiresReview]", "[internal/server.Testapprove]", "not a Go test"},
		{"evidence escapes repo", "[internal/server.TestApproveRequiresReview]", "[../other.TestX]", "clean path inside the repository"},
		{"design control without tests", "evidence: [internal/server.TestApproveRequiresReview]", "evidence: []", "must name at least one automated test"},
		{"unknown control type", "type: design", "type: hope", `type "hope"`},
		{"misspelt field", "causes: [accent]", "cause: [accent]", "field cause not found"},
		{"no causes", "causes: [accent]", "causes: []", "at least one cause"},
		{"residual 3 unjustified", "residual: {severity: major, likelihood: very_low, rating: 2}", "residual: {severity: major, likelihood: low, rating: 3}", "needs a residual_justification"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(validLog, c.old, c.new, 1)
			if src == validLog {
				t.Fatalf("test case did not change the log")
			}
			_, err := ParseHazardLog([]byte(src))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidLog) {
				t.Errorf("error does not wrap ErrInvalidLog: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestHazardWithoutControlIsRejected(t *testing.T) {
	src := `
system: s
intended_use: u
hazards:
  - id: HAZ-9
    title: t
    description: d
    causes: [c]
    effects: [e]
    initial: {severity: Minor, likelihood: Low, rating: 1}
    residual: {severity: Minor, likelihood: Low, rating: 1}
`
	_, err := ParseHazardLog([]byte(src))
	if err == nil || !strings.Contains(err.Error(), "hazard HAZ-9: has no controls") {
		t.Fatalf("got %v", err)
	}
}

func TestDuplicateIDsAreRejected(t *testing.T) {
	hazard := validLog[strings.Index(validLog, "  - id: HAZ-1"):]
	_, err := ParseHazardLog([]byte(validLog + hazard))
	if err == nil || !strings.Contains(err.Error(), "hazard HAZ-1: duplicate id") || !strings.Contains(err.Error(), "duplicate control id") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadHazardLogErrors(t *testing.T) {
	if _, err := LoadHazardLog(filepath.Join(t.TempDir(), "absent.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("hazards: [:"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHazardLog(p); err == nil || !errors.Is(err, ErrInvalidLog) || !strings.Contains(err.Error(), p) {
		t.Fatalf("bad yaml: %v", err)
	}
}
