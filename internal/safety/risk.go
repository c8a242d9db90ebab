// Package safety holds scribe's clinical safety evidence: the hazard log required by
// DCB0129 (docs/safety/hazard-log.yaml), its validation, the check that every automated
// test named as evidence for a control really exists in the source tree, and the clinical
// safety case report a Clinical Safety Officer (CSO) reviews and signs.
package safety

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Severity is the DCB0129 consequence scale, 1 (Minor) to 5 (Catastrophic).
type Severity int

// Likelihood is the DCB0129 likelihood scale, 1 (Very low) to 5 (Very high).
type Likelihood int

// Rating is the clinical risk rating read from the matrix, 1 (very low) to 5 (very high).
type Rating int

const (
	Minor Severity = iota + 1
	Significant
	Considerable
	Major
	Catastrophic
)

const (
	VeryLow Likelihood = iota + 1
	Low
	Medium
	High
	VeryHigh
)

var severityNames = [...]string{"", "Minor", "Significant", "Considerable", "Major", "Catastrophic"}
var likelihoodNames = [...]string{"", "Very low", "Low", "Medium", "High", "Very high"}

// SeverityMeaning paraphrases the DCB0129 consequence definitions.
var SeverityMeaning = map[Severity]string{
	Minor:        "Minor injury or distress with no medical intervention; minimal inconvenience or delay.",
	Significant:  "Minor injury or distress needing minor intervention, or several patients affected in a minor way.",
	Considerable: "Severe injury or incapacity from which recovery is expected in the short term.",
	Major:        "Death or permanent life-changing incapacity for one patient, or severe injury to several.",
	Catastrophic: "Death or permanent life-changing incapacity for many patients.",
}

// LikelihoodMeaning paraphrases the DCB0129 likelihood definitions.
var LikelihoodMeaning = map[Likelihood]string{
	VeryLow:  "Negligible or nearly negligible possibility of occurring.",
	Low:      "Could occur, but in the great majority of occasions will not.",
	Medium:   "Possible.",
	High:     "Not certain, but very possible; reasonably expected in the majority of cases.",
	VeryHigh: "Certain or almost certain; highly likely to occur.",
}

// RatingMeaning gives the action each rating demands (DCB0129/DCB0160 acceptability).
var RatingMeaning = map[Rating]string{
	1: "Very low — acceptable; no further action required.",
	2: "Low — acceptable where the cost of further reduction outweighs the benefit, or further reduction is impractical.",
	3: "Medium — undesirable; acceptable only when further risk reduction is impractical.",
	4: "High — unacceptable; controls must be added to reduce the risk to an acceptable level.",
	5: "Very high — unacceptable.",
}

// riskMatrix is the standard DCB0129/DCB0160 clinical risk matrix, indexed
// [likelihood][severity] (1-based; row and column 0 unused):
//
//	                Minor  Significant  Considerable  Major  Catastrophic
//	Very high         3        4             4          5         5
//	High              2        3             3          4         5
//	Medium            2        2             3          3         4
//	Low               1        2             2          3         4
//	Very low          1        1             2          2         3
var riskMatrix = [6][6]Rating{
	VeryLow:  {0, 1, 1, 2, 2, 3},
	Low:      {0, 1, 2, 2, 3, 4},
	Medium:   {0, 2, 2, 3, 3, 4},
	High:     {0, 2, 3, 3, 4, 5},
	VeryHigh: {0, 3, 4, 4, 5, 5},
}

// Risk returns the clinical risk rating for a severity and likelihood.
func Risk(s Severity, l Likelihood) (Rating, error) {
	if !s.Valid() {
		return 0, fmt.Errorf("severity %d out of range 1..5", s)
	}
	if !l.Valid() {
		return 0, fmt.Errorf("likelihood %d out of range 1..5", l)
	}
	return riskMatrix[l][s], nil
}

func (s Severity) Valid() bool   { return s >= Minor && s <= Catastrophic }
func (l Likelihood) Valid() bool { return l >= VeryLow && l <= VeryHigh }
func (r Rating) Valid() bool     { return r >= 1 && r <= 5 }

func (s Severity) String() string {
	if s.Valid() {
		return severityNames[s]
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

func (l Likelihood) String() string {
	if l.Valid() {
		return likelihoodNames[l]
	}
	return fmt.Sprintf("Likelihood(%d)", int(l))
}

// Acceptable reports whether a residual risk may be accepted without further controls
// (ratings 1 and 2; 3 needs a recorded justification that further reduction is impractical).
func (r Rating) Acceptable() bool { return r >= 1 && r <= 2 }

// parseScale accepts a name (case- and space-insensitive) or a number 1..5.
func parseScale(value *yaml.Node, names []string, what string) (int, error) {
	if value.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("line %d: %s must be a name or a number 1..5", value.Line, what)
	}
	if n, err := strconv.Atoi(value.Value); err == nil {
		if n < 1 || n > 5 {
			return 0, fmt.Errorf("line %d: %s %d out of range 1..5", value.Line, what, n)
		}
		return n, nil
	}
	key := strings.Join(strings.Fields(strings.ToLower(strings.ReplaceAll(value.Value, "_", " "))), " ")
	for i, name := range names {
		if i > 0 && strings.ToLower(name) == key {
			return i, nil
		}
	}
	return 0, fmt.Errorf("line %d: unknown %s %q (want one of %s)", value.Line, what, value.Value, strings.Join(names[1:], ", "))
}

func (s *Severity) UnmarshalYAML(value *yaml.Node) error {
	n, err := parseScale(value, severityNames[:], "severity")
	*s = Severity(n)
	return err
}

func (l *Likelihood) UnmarshalYAML(value *yaml.Node) error {
	n, err := parseScale(value, likelihoodNames[:], "likelihood")
	*l = Likelihood(n)
	return err
}

func (s Severity) MarshalYAML() (any, error)   { return s.String(), nil }
func (l Likelihood) MarshalYAML() (any, error) { return l.String(), nil }
