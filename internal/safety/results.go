package safety

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Outcome is the result of one test run.
type Outcome string

const (
	OutcomePass Outcome = "pass"
	OutcomeFail Outcome = "fail"
	OutcomeSkip Outcome = "skip"
)

// TestResults maps "package/path.TestName" (repository-relative, as in the hazard log)
// to the outcome of the last run of that top-level test.
type TestResults map[string]Outcome

// ParseTestResults reads the output of `go test -json ./...`. modulePath (from go.mod)
// is stripped from import paths so keys match the hazard log's evidence names. Lines
// that are not JSON test events (build output) are skipped.
func ParseTestResults(r io.Reader, modulePath string) (TestResults, error) {
	res := TestResults{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var ev struct {
			Action  string
			Package string
			Test    string
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			continue
		}
		if ev.Test == "" || strings.Contains(ev.Test, "/") {
			continue // package summaries and subtests
		}
		switch Outcome(ev.Action) {
		case OutcomePass, OutcomeFail, OutcomeSkip:
		default:
			continue
		}
		pkg := ev.Package
		if rest, ok := strings.CutPrefix(pkg, modulePath+"/"); ok {
			pkg = rest
		} else if pkg == modulePath {
			pkg = "."
		}
		res[pkg+"."+ev.Test] = Outcome(ev.Action)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read go test -json output: %w", err)
	}
	return res, nil
}

// ModulePath reads the module path from repoRoot/go.mod.
func ModulePath(repoRoot string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("read go.mod: %w", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			mod := strings.Trim(strings.TrimSpace(rest), `"`)
			if mod != "" {
				return mod, nil
			}
		}
	}
	return "", fmt.Errorf("go.mod in %s has no module line", repoRoot)
}
