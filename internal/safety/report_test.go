package safety

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reportFixture is a repository with two cited tests, one present and one absent.
func reportFixture(t *testing.T) (root string, log *Log) {
	t.Helper()
	root = t.TempDir()
	writeFile(t, filepath.Join(root, "go.mod"), "module example.org/scribe\n\ngo 1.26\n")
	writeFile(t, filepath.Join(root, "pkg/a/a_test.go"), "package a\nimport \"testing\"\nfunc TestPresent(t *testing.T) {}\n")
	log = logCiting("pkg/a.TestPresent", "pkg/a.TestAbsent")
	log.Hazards[0].Title = "Wrong <b>dose</b> | recorded"
	log.Hazards[0].Description = `<script>alert("x")</script>`
	log.LogVersion = "9.9"
	return root, log
}

func TestRenderMarkdownAndHTML(t *testing.T) {
	root, log := reportFixture(t)
	ev, err := CheckEvidence(log, root)
	if err != nil {
		t.Fatal(err)
	}
	info := ReportInfo{SoftwareVersion: "v1.2.3", Generated: time.Date(2025, 6, 2, 9, 30, 0, 0, time.UTC), Evidence: ev}

	md, err := RenderMarkdown(log, info)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| Software version | v1.2.3 |", "2025-06-02 09:30 UTC", "HAZ-1", "9.9",
		"`pkg/a.TestPresent` — present (not run for this report)", "`pkg/a.TestAbsent` — MISSING",
		"NOT READY FOR SIGN-OFF", "1 cited test(s) do not exist", `Wrong <b>dose</b> \| recorded`,
		"| **High** | 2 | 3 | 3 | 4 | 5 |", "| **Very low** | 1 | 1 | 2 | 2: HAZ-1 | 3 |",
		"Clinical Safety Officer sign-off", "Professional registration",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}

	page, err := RenderHTML(log, info)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{
		"<!DOCTYPE html>", "v1.2.3", "HAZ-1", `<span class="missing">MISSING</span>`, "NOT READY FOR SIGN-OFF",
		"&lt;script&gt;", "Wrong &lt;b&gt;dose&lt;/b&gt;", `<td class="r5">`, "Signature", "@media print",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	// Self-contained and inert: no scripts and nothing fetched from elsewhere.
	for _, bad := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(html, bad) {
			t.Errorf("HTML contains %q", bad)
		}
	}
	if _, err := RenderHTML(nil, info); err == nil {
		t.Error("nil log accepted")
	}
}

func TestReportWithResultsIsReadyOnlyWhenAllPass(t *testing.T) {
	root, log := reportFixture(t)
	log.Hazards[0].Controls[0].Evidence = []string{"pkg/a.TestPresent"}
	ev, err := CheckEvidence(log, root)
	if err != nil {
		t.Fatal(err)
	}
	goTestJSON := `{"Action":"start","Package":"example.org/scribe/pkg/a"}
{"Action":"run","Package":"example.org/scribe/pkg/a","Test":"TestPresent"}
{"Action":"pass","Package":"example.org/scribe/pkg/a","Test":"TestPresent/sub"}
{"Action":"pass","Package":"example.org/scribe/pkg/a","Test":"TestPresent","Elapsed":0.01}
# example.org/scribe/pkg/b [build failed]
{"Action":"pass","Package":"example.org/scribe/pkg/a","Elapsed":0.02}
`
	res, err := ParseTestResults(strings.NewReader(goTestJSON), "example.org/scribe")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res["pkg/a.TestPresent"] != OutcomePass {
		t.Fatalf("results %v", res)
	}
	info := ReportInfo{SoftwareVersion: "v1", Generated: time.Now(), Evidence: ev, Results: res, ResultsSource: "test.json"}
	md, _ := RenderMarkdown(log, info)
	if !bytes.Contains(md, []byte("**Evidence complete:**")) || !bytes.Contains(md, []byte("`pkg/a.TestPresent` — PASS")) {
		t.Fatalf("passing evidence not reported as complete:\n%s", md)
	}
	info.Results = TestResults{"pkg/a.TestPresent": OutcomeFail}
	md, _ = RenderMarkdown(log, info)
	if !bytes.Contains(md, []byte("NOT READY FOR SIGN-OFF")) || !bytes.Contains(md, []byte("1 cited test(s) failed")) {
		t.Fatalf("failing test not reported:\n%s", md)
	}
}

func TestRunCLI(t *testing.T) {
	root, _ := reportFixture(t)
	logYAML := `
system: fixture
intended_use: transcription only
log_version: "1"
hazards:
  - id: HAZ-1
    title: Wrong words
    description: d
    causes: [c]
    effects: [e]
    initial: {severity: Major, likelihood: High, rating: 4}
    controls:
      - id: C1
        type: design
        description: d
        evidence: [pkg/a.TestPresent]
    residual: {severity: Major, likelihood: Very low, rating: 2}
`
	writeFile(t, filepath.Join(root, DefaultLogPath), logYAML)
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := RunCLI(ctx, []string{"check", "-root", root}, &out, &errOut, "v1"); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "every cited test exists") {
		t.Fatalf("check output %q", out.String())
	}

	htmlPath := filepath.Join(t.TempDir(), "report.html")
	if err := RunCLI(ctx, []string{"report", "-root", root, "-format", "html", "-out", htmlPath, "-date", "2025-06-03"}, &out, &errOut, "v9.8.7"); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(htmlPath)
	if err != nil || !bytes.Contains(page, []byte("v9.8.7")) || !bytes.Contains(page, []byte("2025-06-03")) {
		t.Fatalf("report file: %v\n%.300s", err, page)
	}

	results := filepath.Join(t.TempDir(), "results.json")
	writeFile(t, results, `{"Action":"pass","Package":"example.org/scribe/pkg/a","Test":"TestPresent"}`+"\n")
	out.Reset()
	if err := RunCLI(ctx, []string{"report", "-root", root, "-results", results}, &out, &errOut, "v1"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "**Evidence complete:**") {
		t.Fatalf("markdown report with passing results:\n%s", out.String())
	}

	// Remove the test: check must fail naming it.
	writeFile(t, filepath.Join(root, "pkg/a/a_test.go"), "package a\n")
	out.Reset()
	err = RunCLI(ctx, []string{"check", "-root", root}, &out, &errOut, "v1")
	if !errors.Is(err, ErrEvidenceMissing) || !strings.Contains(out.String(), "missing test pkg/a.TestPresent") {
		t.Fatalf("check after removal: %v\n%s", err, out.String())
	}

	for _, args := range [][]string{nil, {"bogus"}, {"report", "-format", "pdf", "-root", root}, {"check", "extra"}, {"report", "-date", "June", "-root", root}} {
		if err := RunCLI(ctx, args, &out, &errOut, "v1"); !errors.Is(err, ErrUsage) {
			t.Errorf("RunCLI(%q) = %v, want a usage error", args, err)
		}
	}
	if err := RunCLI(ctx, []string{"check", "-log", filepath.Join(root, "nope.yaml")}, &out, &errOut, "v1"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing log: %v", err)
	}
}

// TestRealHazardLogRenders renders the repository's own log, whatever the evidence state.
func TestRealHazardLogRenders(t *testing.T) {
	log, err := LoadHazardLog(realLogPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Hazards) < 13 {
		t.Errorf("hazard log has %d hazards, want at least 13", len(log.Hazards))
	}
	ev, err := CheckEvidence(log, repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	info := ReportInfo{SoftwareVersion: "test", Generated: time.Now(), Evidence: ev}
	for _, render := range []func(*Log, ReportInfo) ([]byte, error){RenderMarkdown, RenderHTML} {
		doc, err := render(log, info)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range log.Hazards {
			if !bytes.Contains(doc, []byte(h.ID)) {
				t.Errorf("report lacks %s", h.ID)
			}
		}
	}
}

// The CSO sees the release's measured accuracy by accent in the safety case report (NHS
// England guidance 3.8): one row per accent, best first, the worst/best ratio, the model
// and corpus; a report without a measurement says so rather than omitting the section.
func TestReportShowsAccuracyByAccent(t *testing.T) {
	root, log := reportFixture(t)
	ev, err := CheckEvidence(log, root)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "accents.json")
	writeFile(t, path, `{"model":"ggml-tiny.en-pypi.bin","corpus":"days 1-4, 30 s","settings":"clean-up on","measured":"2026-12-05",
	"pools":[{"mode":"file","channels":"stereo","condition":"clean","voices":"en-us+m3,en-us+f3","files":20,"ref_words":1300,"wer":0.30},
	{"mode":"file","channels":"stereo","condition":"clean","voices":"en-gb-scotland+m3,en-gb-scotland+f3","files":20,"ref_words":1300,"wer":0.45},
	{"mode":"whisper-cli","channels":"mono","condition":"clean","voices":"en-us+m3,en-us+f3","files":20,"ref_words":1300,"wer":0.10},
	{"mode":"file","channels":"stereo","condition":"clean","voices":"en-029+m3,en-029+f3","files":20,"ref_words":1300,"wer":0.60}]}`)
	acc, err := LoadAccuracy(path)
	if err != nil {
		t.Fatal(err)
	}
	info := ReportInfo{SoftwareVersion: "v1", Generated: time.Now(), Evidence: ev, Accuracy: acc}
	md, err := RenderMarkdown(log, info)
	if err != nil {
		t.Fatal(err)
	}
	page, err := RenderHTML(log, info)
	if err != nil {
		t.Fatal(err)
	}
	m, h := string(md), string(page)
	for _, want := range []string{"Measured accuracy by accent", "ggml-tiny.en-pypi.bin", "days 1-4, 30 s", "2026-12-05"} {
		if !strings.Contains(m, want) || !strings.Contains(h, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	us, scot, car := strings.Index(m, "| en-us (best)"), strings.Index(m, "| en-gb-scotland |"), strings.Index(m, "| en-029 (worst)")
	if us < 0 || scot < us || car < scot || !strings.Contains(m, "| 30.0 % |") || !strings.Contains(m, "Worst/best WER ratio: **2.00**") {
		t.Errorf("accent rows not best first with the ratio:\n%s", m)
	}
	if strings.Contains(m, "10.0 %") {
		t.Error("whisper-cli's row shown as scribe's")
	}
	if !strings.Contains(h, "en-029 (worst)") || !strings.Contains(h, "<strong>2.00</strong>") {
		t.Error("HTML lacks the accent table")
	}
	if none, _ := LoadAccuracy(filepath.Join(root, "absent.json")); none != nil {
		t.Error("a missing file gave a measurement")
	}
	info.Accuracy = nil
	md, _ = RenderMarkdown(log, info)
	if !strings.Contains(string(md), "**Not supplied:**") {
		t.Error("a report without a measurement does not say so")
	}
	writeFile(t, path, "{")
	if _, err := LoadAccuracy(path); err == nil {
		t.Error("broken JSON accepted")
	}
}
