package safety

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"
)

// ReportInfo is what the clinical safety case report states besides the log itself.
type ReportInfo struct {
	SoftwareVersion string
	Generated       time.Time
	// Evidence is CheckEvidence's result for this source tree.
	Evidence EvidenceReport
	// Results are the outcomes of a `go test -json` run of the same version; nil when
	// the report was produced without running the tests.
	Results       TestResults
	ResultsSource string
	// Accuracy is the release's measured accuracy by accent (LoadAccuracy); nil when
	// none was supplied.
	Accuracy *Accuracy
}

type scaleRow struct {
	Level   int
	Name    string
	Meaning string
}

type matrixCell struct {
	Rating  int
	Hazards []string
}

type matrixRow struct {
	Likelihood string
	Cells      []matrixCell
}

type evidenceView struct {
	Ref      string
	Status   string
	Class    string // pass, fail, skip, present, missing
	File     string
	Reason   string
	Hazards  string
	Controls string
}

type assessmentView struct {
	Severity, Likelihood string
	Rating               int
	Meaning              string
}

type controlView struct {
	ID, Kind, Description string
	Evidence              []evidenceView
	Documents             []string
}

type hazardView struct {
	ID, Title, Description string
	Causes, Effects        []string
	Initial, Residual      assessmentView
	Justification          string
	Controls               []controlView
	EvidenceClass          string // worst evidence class over its controls
}

type reportView struct {
	System, Manufacturer, LogVersion, LogUpdated, IntendedUse string
	OutOfScope                                                []string
	SoftwareVersion, Generated                                string
	SeverityHeads                                             []string
	Matrix                                                    []matrixRow
	Severities, Likelihoods, Ratings                          []scaleRow
	Hazards                                                   []hazardView
	Evidence                                                  []evidenceView
	ResultsSupplied                                           bool
	ResultsSource                                             string
	Counts                                                    map[string]int
	Blockers                                                  []string
	Ready                                                     bool
	Accents                                                   accentView
}

// classRank orders evidence states from best to worst.
var classRank = map[string]int{"pass": 0, "present": 1, "skip": 2, "notrun": 3, "fail": 4, "missing": 5}

func evidenceState(info ReportInfo, ref TestRef) (status, class string, st EvidenceStatus) {
	st, known := info.Evidence.Lookup(ref)
	if !known {
		return "not checked", "missing", st
	}
	if !st.Found {
		return "MISSING", "missing", st
	}
	if info.Results == nil {
		return "present (not run for this report)", "present", st
	}
	switch info.Results[ref.String()] {
	case OutcomePass:
		return "PASS", "pass", st
	case OutcomeFail:
		return "FAIL", "fail", st
	case OutcomeSkip:
		return "SKIPPED", "skip", st
	}
	return "present, not in test results", "notrun", st
}

func buildView(log *Log, info ReportInfo) reportView {
	v := reportView{
		System: log.System, Manufacturer: log.Manufacturer, LogVersion: log.LogVersion,
		LogUpdated: log.Updated, IntendedUse: strings.TrimSpace(log.IntendedUse), OutOfScope: log.OutOfScope,
		SoftwareVersion: info.SoftwareVersion,
		Generated:       info.Generated.UTC().Format("2006-01-02 15:04 MST"),
		ResultsSupplied: info.Results != nil, ResultsSource: info.ResultsSource,
		Counts:  map[string]int{},
		Accents: accentTable(info.Accuracy),
	}
	if v.SoftwareVersion == "" {
		v.SoftwareVersion = "unknown"
	}
	for s := Minor; s <= Catastrophic; s++ {
		v.SeverityHeads = append(v.SeverityHeads, s.String())
		v.Severities = append(v.Severities, scaleRow{int(s), s.String(), SeverityMeaning[s]})
	}
	for l := VeryLow; l <= VeryHigh; l++ {
		v.Likelihoods = append(v.Likelihoods, scaleRow{int(l), l.String(), LikelihoodMeaning[l]})
	}
	for r := Rating(1); r <= 5; r++ {
		v.Ratings = append(v.Ratings, scaleRow{int(r), fmt.Sprint(r), RatingMeaning[r]})
	}
	for l := VeryHigh; l >= VeryLow; l-- {
		row := matrixRow{Likelihood: l.String()}
		for s := Minor; s <= Catastrophic; s++ {
			cell := matrixCell{Rating: int(riskMatrix[l][s])}
			for _, h := range log.Hazards {
				if h.Residual.Severity == s && h.Residual.Likelihood == l {
					cell.Hazards = append(cell.Hazards, h.ID)
				}
			}
			row.Cells = append(row.Cells, cell)
		}
		v.Matrix = append(v.Matrix, row)
	}
	for _, c := range log.Refs() {
		status, class, st := evidenceState(info, c.Ref)
		v.Evidence = append(v.Evidence, evidenceView{
			Ref: c.Ref.String(), Status: status, Class: class, File: st.File, Reason: st.Reason,
			Hazards: strings.Join(c.Hazards, ", "), Controls: strings.Join(c.Controls, ", "),
		})
		v.Counts[class]++
	}
	sort.SliceStable(v.Evidence, func(i, j int) bool { return classRank[v.Evidence[i].Class] > classRank[v.Evidence[j].Class] })
	for _, h := range log.Hazards {
		hv := hazardView{
			ID: h.ID, Title: h.Title, Description: strings.TrimSpace(h.Description),
			Causes: h.Causes, Effects: h.Effects,
			Initial:       assessment(h.Initial),
			Residual:      assessment(h.Residual),
			Justification: strings.TrimSpace(h.Justification),
			EvidenceClass: "pass",
		}
		if !v.ResultsSupplied {
			hv.EvidenceClass = "present"
		}
		for _, c := range h.Controls {
			cv := controlView{ID: c.ID, Kind: string(c.Kind), Description: strings.TrimSpace(c.Description), Documents: c.Documents}
			for _, e := range c.Evidence {
				ref, err := ParseTestRef(e)
				if err != nil {
					continue
				}
				status, class, st := evidenceState(info, ref)
				cv.Evidence = append(cv.Evidence, evidenceView{Ref: e, Status: status, Class: class, File: st.File, Reason: st.Reason})
				if classRank[class] > classRank[hv.EvidenceClass] {
					hv.EvidenceClass = class
				}
			}
			hv.Controls = append(hv.Controls, cv)
		}
		v.Hazards = append(v.Hazards, hv)
		v.Counts[fmt.Sprintf("residual%d", h.Residual.Rating)]++
		if h.Residual.Rating >= 4 {
			v.Blockers = append(v.Blockers, fmt.Sprintf("Hazard %s has an unacceptable residual risk rating of %d.", h.ID, h.Residual.Rating))
		}
	}
	for _, id := range info.Evidence.HazardsWithoutControls {
		v.Blockers = append(v.Blockers, fmt.Sprintf("Hazard %s has no control.", id))
	}
	if n := v.Counts["missing"]; n > 0 {
		v.Blockers = append(v.Blockers, fmt.Sprintf("%d cited test(s) do not exist in this source tree.", n))
	}
	if n := v.Counts["fail"]; n > 0 {
		v.Blockers = append(v.Blockers, fmt.Sprintf("%d cited test(s) failed.", n))
	}
	if n := v.Counts["notrun"] + v.Counts["skip"]; n > 0 {
		v.Blockers = append(v.Blockers, fmt.Sprintf("%d cited test(s) were skipped or absent from the test results.", n))
	}
	if !v.ResultsSupplied {
		v.Blockers = append(v.Blockers, "No test results were supplied: this report shows that the cited tests exist, not that they pass. Regenerate with -results from `go test -json ./...` for sign-off.")
	}
	v.Ready = len(v.Blockers) == 0
	return v
}

func assessment(a Assessment) assessmentView {
	return assessmentView{Severity: a.Severity.String(), Likelihood: a.Likelihood.String(), Rating: int(a.Rating), Meaning: RatingMeaning[a.Rating]}
}

// RenderMarkdown renders the clinical safety case report as Markdown.
func RenderMarkdown(log *Log, info ReportInfo) ([]byte, error) {
	if log == nil {
		return nil, fmt.Errorf("render report: nil hazard log")
	}
	v := buildView(log, info)
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Clinical Safety Case Report — %s\n\n", md(v.System))
	p("| | |\n|---|---|\n")
	p("| Manufacturer | %s |\n", md(v.Manufacturer))
	p("| Software version | %s |\n", md(v.SoftwareVersion))
	p("| Hazard log version | %s (updated %s) |\n", md(v.LogVersion), md(v.LogUpdated))
	p("| Report generated | %s |\n", md(v.Generated))
	p("| Standard | DCB0129 (manufacturer); deploying organisations apply DCB0160 |\n")
	if v.ResultsSupplied {
		p("| Test results | %s |\n", md(v.ResultsSource))
	} else {
		p("| Test results | not supplied |\n")
	}
	p("\n## 1. Intended use\n\n%s\n\n", v.IntendedUse)
	if len(v.OutOfScope) > 0 {
		p("Out of scope:\n\n")
		for _, s := range v.OutOfScope {
			p("- %s\n", s)
		}
		p("\n")
	}
	p("## 2. Summary\n\n")
	p("- Hazards: %d. Residual ratings: ", len(v.Hazards))
	var parts []string
	for r := 1; r <= 5; r++ {
		parts = append(parts, fmt.Sprintf("%d at %d", v.Counts[fmt.Sprintf("residual%d", r)], r))
	}
	p("%s.\n", strings.Join(parts, ", "))
	p("- Cited tests: %d — passed %d, present but not run %d, skipped/not in results %d, failed %d, missing %d.\n\n",
		len(v.Evidence), v.Counts["pass"], v.Counts["present"], v.Counts["skip"]+v.Counts["notrun"], v.Counts["fail"], v.Counts["missing"])
	if v.Ready {
		p("**Evidence complete:** every hazard has controls, every cited test exists and passed, and no residual risk is unacceptable.\n\n")
	} else {
		p("**NOT READY FOR SIGN-OFF:**\n\n")
		for _, s := range v.Blockers {
			p("- %s\n", md(s))
		}
		p("\n")
	}
	p("## 3. Risk matrix (DCB0129)\n\n")
	p("Cells show the risk rating; hazard ids are placed at their **residual** severity and likelihood.\n\n")
	p("| Likelihood \\ Severity | %s |\n|---|%s\n", strings.Join(v.SeverityHeads, " | "), strings.Repeat("---|", len(v.SeverityHeads)))
	for _, row := range v.Matrix {
		p("| **%s** |", row.Likelihood)
		for _, c := range row.Cells {
			if len(c.Hazards) > 0 {
				p(" %d: %s |", c.Rating, strings.Join(c.Hazards, ", "))
			} else {
				p(" %d |", c.Rating)
			}
		}
		p("\n")
	}
	p("\n| Severity | Meaning |\n|---|---|\n")
	for _, s := range v.Severities {
		p("| %d %s | %s |\n", s.Level, s.Name, s.Meaning)
	}
	p("\n| Likelihood | Meaning |\n|---|---|\n")
	for _, s := range v.Likelihoods {
		p("| %d %s | %s |\n", s.Level, s.Name, s.Meaning)
	}
	p("\n| Rating | Acceptability |\n|---|---|\n")
	for _, s := range v.Ratings {
		p("| %s | %s |\n", s.Name, s.Meaning)
	}
	p("\n## 4. Hazard summary\n\n| ID | Hazard | Initial (S × L = R) | Residual (S × L = R) | Controls | Evidence |\n|---|---|---|---|---|---|\n")
	for _, h := range v.Hazards {
		p("| %s | %s | %s × %s = %d | %s × %s = %d | %d | %s |\n", md(h.ID), md(h.Title),
			h.Initial.Severity, h.Initial.Likelihood, h.Initial.Rating,
			h.Residual.Severity, h.Residual.Likelihood, h.Residual.Rating, len(h.Controls), h.EvidenceClass)
	}
	p("\n## 5. Hazards in detail\n")
	for _, h := range v.Hazards {
		p("\n### %s — %s\n\n%s\n\n**Causes**\n\n", md(h.ID), md(h.Title), h.Description)
		for _, c := range h.Causes {
			p("- %s\n", c)
		}
		p("\n**Effects**\n\n")
		for _, e := range h.Effects {
			p("- %s\n", e)
		}
		p("\n**Initial risk:** %s severity × %s likelihood → %d (%s)\n\n", h.Initial.Severity, h.Initial.Likelihood, h.Initial.Rating, h.Initial.Meaning)
		p("**Controls**\n\n")
		for _, c := range h.Controls {
			p("- **%s** (%s): %s\n", md(c.ID), c.Kind, c.Description)
			for _, e := range c.Evidence {
				p("  - `%s` — %s\n", e.Ref, e.Status)
			}
			for _, d := range c.Documents {
				p("  - document: %s\n", d)
			}
		}
		p("\n**Residual risk:** %s severity × %s likelihood → %d (%s)\n", h.Residual.Severity, h.Residual.Likelihood, h.Residual.Rating, h.Residual.Meaning)
		if h.Justification != "" {
			p("\n**Residual risk justification:** %s\n", h.Justification)
		}
	}
	p("\n## 6. Test evidence\n\n| Test | Status | Declared in | Cited by |\n|---|---|---|---|\n")
	for _, e := range v.Evidence {
		where := e.File
		if where == "" {
			where = e.Reason
		}
		p("| `%s` | %s | %s | %s |\n", e.Ref, e.Status, md(where), md(e.Controls))
	}
	p("\n## 7. Measured accuracy by accent\n\n")
	p("NHS England's guidance on ambient scribes (3.8) asks that the product be shown to work well for different accents. ")
	p("Word error rate (WER, after the normaliser documented in internal/textdiff) of scribe's file mode on the same consultations spoken in each accent; ")
	p("in use, the CSO dashboard compares edit rates across consented accent groups.\n\n")
	if a := v.Accents; a.Supplied {
		p("Model %s; corpus %s; measured %s; %s.\n\n", md(a.Model), md(a.Corpus), md(a.Measured), md(a.Settings))
		p("| Accent (espeak-ng voice) | Voices (clinician, patient) | Consultations | Reference words | WER |\n|---|---|---|---|---|\n")
		for _, r := range a.Rows {
			note := ""
			if r.Best {
				note = " (best)"
			} else if r.Worst {
				note = " (worst)"
			}
			p("| %s%s | %s | %d | %d | %s |\n", md(r.Accent), note, md(r.Voices), r.Files, r.RefWords, r.WER)
		}
		if a.Ratio != "" {
			p("\nWorst/best WER ratio: **%s**.\n", a.Ratio)
		}
		p("\nSource: %s.\n", md(a.Source))
	} else {
		p("**Not supplied:** no measurement by accent was given for this report (`scribe safety report -accuracy FILE`; scripts/bench-accuracy measures it).\n")
	}
	p("\n## 8. Clinical Safety Officer sign-off\n\n")
	p("I have reviewed this hazard log and the evidence above for %s version %s and ", md(v.System), md(v.SoftwareVersion))
	p("confirm that the residual clinical risks are acceptable for release, subject to the deploying organisation's own DCB0160 assessment.\n\n")
	p("| | |\n|---|---|\n| Name | |\n| Professional registration (GMC/NMC/HCPC) | |\n| Signature | |\n| Date | |\n")
	return b.Bytes(), nil
}

// md escapes characters that would break a Markdown table cell or inline text.
func md(s string) string {
	r := strings.NewReplacer("|", "\\|", "\n", " ", "\r", "")
	return r.Replace(s)
}

//go:embed report.html.tmpl
var reportHTML string

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"ratingClass": func(r int) string { return fmt.Sprintf("r%d", r) },
}).Parse(reportHTML))

// RenderHTML renders the report as one self-contained printable HTML page (inline CSS,
// no scripts, no external resources).
func RenderHTML(log *Log, info ReportInfo) ([]byte, error) {
	if log == nil {
		return nil, fmt.Errorf("render report: nil hazard log")
	}
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, buildView(log, info)); err != nil {
		return nil, fmt.Errorf("render HTML report: %w", err)
	}
	return b.Bytes(), nil
}
