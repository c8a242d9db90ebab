package safety

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrUsage is wrapped by RunCLI for command-line mistakes, so the caller can exit with 2.
var ErrUsage = errors.New("usage error")

// DefaultLogPath is the hazard log's place in the repository.
const DefaultLogPath = "docs/safety/hazard-log.yaml"

const cliUsage = `usage: scribe safety COMMAND [flags]

commands:
  check   validate the hazard log and check that every cited test exists
  report  render the clinical safety case report for the CSO to sign

flags (both commands):
  -root DIR       repository root holding the *_test.go files (default .)
  -log FILE       hazard log (default ROOT/docs/safety/hazard-log.yaml)
flags (report):
  -format md|html output format (default md)
  -out FILE       write the report to FILE instead of standard output
  -results FILE   output of 'go test -json ./...' for this version, to show pass/fail
  -date DATE      report date as YYYY-MM-DD (default now), for reproducible reports
  -accuracy FILE  measured accuracy by accent, a scribe bench accuracy report
                  (default ROOT/docs/safety/accuracy-accents.json, when present)
`

// RunCLI implements `scribe safety check|report`.
func RunCLI(ctx context.Context, args []string, stdout, stderr io.Writer, version string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, cliUsage)
		if len(args) == 0 {
			return fmt.Errorf("safety: no command: %w", ErrUsage)
		}
		return nil
	}
	cmd, rest := args[0], args[1:]
	if cmd != "check" && cmd != "report" {
		fmt.Fprint(stderr, cliUsage)
		return fmt.Errorf("safety: unknown command %q: %w", cmd, ErrUsage)
	}
	fs := flag.NewFlagSet("scribe safety "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root")
	logPath := fs.String("log", "", "hazard log (default ROOT/"+DefaultLogPath+")")
	var format, out, results, date, accuracy *string
	if cmd == "report" {
		format = fs.String("format", "md", "md or html")
		out = fs.String("out", "", "output file (default standard output)")
		results = fs.String("results", "", "go test -json output")
		date = fs.String("date", "", "report date YYYY-MM-DD (default now)")
		accuracy = fs.String("accuracy", "", "scribe bench accuracy report by accent (default ROOT/"+DefaultAccuracyPath+")")
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("safety %s: %w: %w", cmd, ErrUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("safety %s takes no arguments, got %q: %w", cmd, fs.Args(), ErrUsage)
	}
	if *logPath == "" {
		*logPath = filepath.Join(*root, filepath.FromSlash(DefaultLogPath))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	log, err := LoadHazardLog(*logPath)
	if err != nil {
		return err
	}
	ev, err := CheckEvidence(log, *root)
	if err != nil {
		return err
	}
	if cmd == "check" {
		return runCheck(log, ev, stdout)
	}

	info := ReportInfo{SoftwareVersion: version, Generated: time.Now(), Evidence: ev}
	if *date != "" {
		d, err := time.Parse("2006-01-02", *date)
		if err != nil {
			return fmt.Errorf("safety report -date: %w: %w", ErrUsage, err)
		}
		info.Generated = d
	}
	if *accuracy == "" {
		*accuracy = filepath.Join(*root, filepath.FromSlash(DefaultAccuracyPath))
	}
	if info.Accuracy, err = LoadAccuracy(*accuracy); err != nil {
		return err
	}
	if info.Accuracy != nil {
		if rel, err := filepath.Rel(*root, *accuracy); err == nil && !strings.HasPrefix(rel, "..") {
			info.Accuracy.Source = filepath.ToSlash(rel) // as the repository names it
		}
	}
	if *results != "" {
		mod, err := ModulePath(*root)
		if err != nil {
			return err
		}
		f, err := os.Open(*results)
		if err != nil {
			return fmt.Errorf("open test results: %w", err)
		}
		info.Results, err = ParseTestResults(f, mod)
		f.Close()
		if err != nil {
			return err
		}
		info.ResultsSource = filepath.Base(*results)
	}
	var doc []byte
	switch *format {
	case "md", "markdown":
		doc, err = RenderMarkdown(log, info)
	case "html":
		doc, err = RenderHTML(log, info)
	default:
		return fmt.Errorf("safety report -format %q (want md or html): %w", *format, ErrUsage)
	}
	if err != nil {
		return err
	}
	if !ev.OK() {
		fmt.Fprintf(stderr, "warning: %d problem(s) with the safety evidence; the report says so\n", len(ev.Problems()))
	}
	if *out == "" {
		_, err = stdout.Write(doc)
		return err
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func runCheck(log *Log, ev EvidenceReport, stdout io.Writer) error {
	fmt.Fprintf(stdout, "hazard log: %d hazards, %d cited tests\n", len(log.Hazards), len(ev.Statuses))
	problems := ev.Problems()
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s): %w", len(problems), ErrEvidenceMissing)
	}
	fmt.Fprintln(stdout, "every cited test exists")
	return nil
}
