package safety

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// ErrInvalidLog is wrapped by every validation problem LoadHazardLog reports.
var ErrInvalidLog = errors.New("invalid hazard log")

// Log is the DCB0129 hazard log.
type Log struct {
	System       string   `yaml:"system"`
	Manufacturer string   `yaml:"manufacturer"`
	LogVersion   string   `yaml:"log_version"`
	Updated      string   `yaml:"updated"`
	IntendedUse  string   `yaml:"intended_use"`
	OutOfScope   []string `yaml:"out_of_scope"`
	Hazards      []Hazard `yaml:"hazards"`
}

// Assessment is a severity × likelihood judgement and the rating it gives.
type Assessment struct {
	Severity   Severity   `yaml:"severity"`
	Likelihood Likelihood `yaml:"likelihood"`
	// Rating is stated in the log for the reader and checked against the matrix.
	Rating Rating `yaml:"rating"`
}

// Hazard is one entry of the log.
type Hazard struct {
	ID          string     `yaml:"id"`
	Title       string     `yaml:"title"`
	Description string     `yaml:"description"`
	Causes      []string   `yaml:"causes"`
	Effects     []string   `yaml:"effects"`
	Initial     Assessment `yaml:"initial"`
	Controls    []Control  `yaml:"controls"`
	Residual    Assessment `yaml:"residual"`
	// Justification is required when the residual rating is 3 or more: why further
	// reduction is impractical, or what the deploying organisation must add (DCB0160).
	Justification string `yaml:"residual_justification"`
}

// ControlKind is how a control reduces risk.
type ControlKind string

const (
	ControlDesign    ControlKind = "design"    // built into the software
	ControlTest      ControlKind = "test"      // verification that catches the failure before release
	ControlTraining  ControlKind = "training"  // users are trained to catch it
	ControlLabelling ControlKind = "labelling" // warnings in the UI or instructions for use
)

// Control is one risk control with the automated tests that evidence it.
type Control struct {
	ID          string      `yaml:"id"`
	Kind        ControlKind `yaml:"type"`
	Description string      `yaml:"description"`
	// Evidence names automated tests as package/path.TestName (or FuzzName, BenchmarkName).
	Evidence []string `yaml:"evidence"`
	// Documents name non-test evidence (training material, instructions for use).
	Documents []string `yaml:"documents"`
}

// TestRef is a parsed evidence entry.
type TestRef struct {
	Package string // slash-separated directory relative to the repository root
	Name    string // TestXxx, FuzzXxx or BenchmarkXxx
}

func (r TestRef) String() string { return r.Package + "." + r.Name }

// ParseTestRef parses "internal/dsp.TestNoiseSuppressionRaisesSNR".
func ParseTestRef(s string) (TestRef, error) {
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 || dot == len(s)-1 {
		return TestRef{}, fmt.Errorf("evidence %q is not package/path.TestName", s)
	}
	ref := TestRef{Package: s[:dot], Name: s[dot+1:]}
	for _, r := range ref.Package {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./", r)) {
			return TestRef{}, fmt.Errorf("evidence %q: package path has character %q", s, r)
		}
	}
	if path.Clean(ref.Package) != ref.Package || strings.HasPrefix(ref.Package, "/") ||
		ref.Package == "." || ref.Package == ".." || strings.HasPrefix(ref.Package, "../") {
		return TestRef{}, fmt.Errorf("evidence %q: package path must be a clean path inside the repository", s)
	}
	if !isTestFuncName(ref.Name) {
		return TestRef{}, fmt.Errorf("evidence %q: %q is not a Go test, fuzz or benchmark function name", s, ref.Name)
	}
	return ref, nil
}

// testPrefix returns Test, Fuzz or Benchmark when name is a valid function of that kind
// (the prefix followed by nothing or by a character that is not a lower-case letter).
func testPrefix(name string) string {
	for _, p := range []string{"Test", "Fuzz", "Benchmark"} {
		rest, ok := strings.CutPrefix(name, p)
		if !ok {
			continue
		}
		if rest == "" {
			return p
		}
		r, _ := utf8.DecodeRuneInString(rest)
		if unicode.IsLower(r) {
			return ""
		}
		return p
	}
	return ""
}

func isTestFuncName(name string) bool {
	if testPrefix(name) == "" {
		return false
	}
	for i, r := range name {
		if !(unicode.IsLetter(r) || r == '_' || (i > 0 && unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}

// LoadHazardLog reads and validates the hazard log at path. Every problem found is
// reported, each wrapping ErrInvalidLog.
func LoadHazardLog(path string) (*Log, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hazard log: %w", err)
	}
	log, err := ParseHazardLog(raw)
	if err != nil {
		return nil, fmt.Errorf("hazard log %s: %w", path, err)
	}
	return log, nil
}

// ParseHazardLog decodes and validates a hazard log. Unknown fields are errors, so a
// misspelt key cannot silently drop a control.
func ParseHazardLog(raw []byte) (*Log, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var log Log
	if err := dec.Decode(&log); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidLog, err)
	}
	if err := log.Validate(); err != nil {
		return nil, err
	}
	return &log, nil
}

// Validate checks the rules listed in docs/safety/README.md and returns all problems.
func (l *Log) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidLog, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(l.System) == "" {
		bad("system is required")
	}
	if strings.TrimSpace(l.IntendedUse) == "" {
		bad("intended_use is required")
	}
	if len(l.Hazards) == 0 {
		bad("the log has no hazards")
	}
	hazardIDs := map[string]bool{}
	controlIDs := map[string]string{}
	for i, h := range l.Hazards {
		where := fmt.Sprintf("hazard %d", i+1)
		if h.ID == "" {
			bad("%s: id is required", where)
		} else {
			where = "hazard " + h.ID
			if hazardIDs[h.ID] {
				bad("%s: duplicate id", where)
			}
			hazardIDs[h.ID] = true
		}
		if strings.TrimSpace(h.Title) == "" {
			bad("%s: title is required", where)
		}
		if strings.TrimSpace(h.Description) == "" {
			bad("%s: description is required", where)
		}
		if len(nonBlank(h.Causes)) == 0 {
			bad("%s: at least one cause is required", where)
		}
		if len(nonBlank(h.Effects)) == 0 {
			bad("%s: at least one effect is required", where)
		}
		initialOK := checkAssessment(h.Initial, where+": initial", bad)
		residualOK := checkAssessment(h.Residual, where+": residual", bad)
		if initialOK && residualOK && h.Residual.Rating > h.Initial.Rating {
			bad("%s: residual rating %d is higher than initial rating %d", where, h.Residual.Rating, h.Initial.Rating)
		}
		if residualOK && h.Residual.Rating >= 3 && strings.TrimSpace(h.Justification) == "" {
			bad("%s: residual rating %d needs a residual_justification", where, h.Residual.Rating)
		}
		if len(h.Controls) == 0 {
			bad("%s: has no controls", where)
		}
		tested := false
		for j, c := range h.Controls {
			cw := fmt.Sprintf("%s control %d", where, j+1)
			if c.ID == "" {
				bad("%s: id is required", cw)
			} else {
				cw = fmt.Sprintf("%s control %s", where, c.ID)
				if other, dup := controlIDs[c.ID]; dup {
					bad("%s: duplicate control id (also in hazard %s)", cw, other)
				}
				controlIDs[c.ID] = h.ID
			}
			switch c.Kind {
			case ControlDesign, ControlTest, ControlTraining, ControlLabelling:
			default:
				bad("%s: type %q is not design, test, training or labelling", cw, c.Kind)
			}
			if strings.TrimSpace(c.Description) == "" {
				bad("%s: description is required", cw)
			}
			for _, e := range c.Evidence {
				if _, err := ParseTestRef(e); err != nil {
					bad("%s: %v", cw, err)
				}
			}
			if len(c.Evidence) > 0 {
				tested = true
			}
			if (c.Kind == ControlDesign || c.Kind == ControlTest) && len(c.Evidence) == 0 {
				bad("%s: a %s control must name at least one automated test as evidence", cw, c.Kind)
			}
			if (c.Kind == ControlTraining || c.Kind == ControlLabelling) && len(c.Evidence) == 0 && len(nonBlank(c.Documents)) == 0 {
				bad("%s: a %s control needs evidence or documents", cw, c.Kind)
			}
		}
		if len(h.Controls) > 0 && !tested {
			bad("%s: no control is evidenced by an automated test", where)
		}
	}
	return errors.Join(errs...)
}

func checkAssessment(a Assessment, where string, bad func(string, ...any)) bool {
	want, err := Risk(a.Severity, a.Likelihood)
	if err != nil {
		bad("%s: %v", where, err)
		return false
	}
	if a.Rating != want {
		bad("%s: stated rating %d but %s severity × %s likelihood gives %d", where, a.Rating, a.Severity, a.Likelihood, want)
		return false
	}
	return true
}

func nonBlank(ss []string) []string {
	var out []string
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// Refs returns every distinct evidence reference in the log, in first-seen order, with
// the hazards and controls citing it. The log must have validated.
func (l *Log) Refs() []Citation {
	index := map[string]int{}
	var out []Citation
	for _, h := range l.Hazards {
		for _, c := range h.Controls {
			for _, e := range c.Evidence {
				ref, err := ParseTestRef(e)
				if err != nil {
					continue
				}
				k, ok := index[ref.String()]
				if !ok {
					k = len(out)
					index[ref.String()] = k
					out = append(out, Citation{Ref: ref})
				}
				out[k].Hazards = appendUnique(out[k].Hazards, h.ID)
				out[k].Controls = appendUnique(out[k].Controls, c.ID)
			}
		}
	}
	return out
}

// Citation is a test reference and where the log cites it.
type Citation struct {
	Ref      TestRef
	Hazards  []string
	Controls []string
}

func appendUnique(ss []string, s string) []string {
	for _, x := range ss {
		if x == s {
			return ss
		}
	}
	return append(ss, s)
}
