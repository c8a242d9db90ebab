package safety

import (
	"bytes"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const repoRoot = "../.."

var realLogPath = filepath.Join(repoRoot, filepath.FromSlash(DefaultLogPath))

// hazardLogProblems is the traceability check: the real hazard log must validate (which
// includes "every hazard has a control") and every test it cites must exist under root.
func hazardLogProblems(t *testing.T, logPath, root string) []string {
	t.Helper()
	log, err := LoadHazardLog(logPath)
	if err != nil {
		return []string{err.Error()}
	}
	rep, err := CheckEvidence(log, root)
	if err != nil {
		return []string{err.Error()}
	}
	return rep.Problems()
}

// TestHazardLogEvidenceExists is the DCB0129 traceability check for this repository.
func TestHazardLogEvidenceExists(t *testing.T) {
	problems := hazardLogProblems(t, realLogPath, repoRoot)
	if len(problems) > 0 {
		t.Errorf("docs/safety/hazard-log.yaml cites evidence that does not exist (%d problems):\n  %s",
			len(problems), strings.Join(problems, "\n  "))
	}
}

// TestCheckEvidenceReportsRemovedTest proves the traceability check is real: it copies
// the test files of every package whose cited tests exist into a temporary tree, checks
// they are all found there, then deletes one cited test function (by editing the syntax
// tree) and one whole package, and expects exactly those to be reported.
func TestCheckEvidenceReportsRemovedTest(t *testing.T) {
	log, err := LoadHazardLog(realLogPath)
	if err != nil {
		t.Fatal(err)
	}
	real, err := CheckEvidence(log, repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	copied := map[string]bool{}
	var present []TestRef
	for _, st := range real.Statuses {
		if !st.Found {
			continue
		}
		present = append(present, st.Ref)
		if copied[st.Ref.Package] {
			continue
		}
		copied[st.Ref.Package] = true
		copyTestFiles(t, filepath.Join(repoRoot, st.Ref.Package), filepath.Join(tmp, st.Ref.Package))
	}
	if len(present) < 2 {
		t.Fatalf("need at least two cited tests present in the repository, found %v", present)
	}
	before, err := CheckEvidence(log, tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range present {
		if st, _ := before.Lookup(ref); !st.Found {
			t.Fatalf("%s exists in the repository but not in the copy: %s", ref, st.Reason)
		}
	}

	// Delete the cited test this package owns: the check must notice.
	victim := TestRef{"internal/safety", "TestHazardLogEvidenceExists"}
	if !copied[victim.Package] {
		t.Fatalf("%s is not cited by the hazard log", victim)
	}
	removeFunc(t, filepath.Join(tmp, victim.Package), victim.Name)
	after, err := CheckEvidence(log, tmp)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := after.Lookup(victim)
	if st.Found || !strings.Contains(st.Reason, "no such test function") {
		t.Fatalf("removed test still reported as %+v", st)
	}
	for _, ref := range present {
		if s, _ := after.Lookup(ref); ref != victim && !s.Found {
			t.Errorf("%s wrongly reported missing after removing %s", ref, victim)
		}
	}
	// The traceability test itself fails on this tree, naming the removed test.
	problems := hazardLogProblems(t, realLogPath, tmp)
	if !strings.Contains(strings.Join(problems, "\n"), "missing test "+victim.String()) {
		t.Fatalf("traceability problems do not name %s:\n%s", victim, strings.Join(problems, "\n"))
	}

	// Remove another cited package entirely.
	var other string
	for pkg := range copied {
		if pkg != victim.Package {
			other = pkg
			break
		}
	}
	if other != "" {
		if err := os.RemoveAll(filepath.Join(tmp, other)); err != nil {
			t.Fatal(err)
		}
		gone, err := CheckEvidence(log, tmp)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range gone.Statuses {
			if s.Ref.Package == other && (s.Found || !strings.Contains(s.Reason, "does not exist")) {
				t.Errorf("%s after removing its package: %+v", s.Ref, s)
			}
		}
	}
}

func copyTestFiles(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// removeFunc deletes the top-level function name from whichever test file in dir declares it.
func removeFunc(t *testing.T, dir, name string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	for _, path := range files {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		kept := f.Decls[:0]
		removed := false
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == name {
				removed = true
				continue
			}
			kept = append(kept, d)
		}
		if !removed {
			continue
		}
		f.Decls = kept
		var buf bytes.Buffer
		if err := format.Node(&buf, fset, f); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(buf.Bytes(), []byte("func "+name+"(")) {
			t.Fatalf("%s still declared after removal", name)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no file in %s declares %s", dir, name)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// logCiting builds a valid log with one design control citing refs.
func logCiting(refs ...string) *Log {
	return &Log{
		System: "s", IntendedUse: "u",
		Hazards: []Hazard{{
			ID: "HAZ-1", Title: "t", Description: "d", Causes: []string{"c"}, Effects: []string{"e"},
			Initial:  Assessment{Major, High, 4},
			Residual: Assessment{Major, VeryLow, 2},
			Controls: []Control{{ID: "C1", Kind: ControlDesign, Description: "d", Evidence: refs}},
		}},
	}
}

func TestCheckEvidenceRequiresRealTestFunctions(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "pkg/a/a.go"), `package a

import "testing"

func TestInNonTestFile(t *testing.T) {}
`)
	writeFile(t, filepath.Join(root, "pkg/a/a_test.go"), `package a

import tst "testing"

func TestGood(t *tst.T) {}
func TestUnnamedParam(*tst.T) {}
func TestWrongType(t *tst.B) {}
func TestNoParam() {}
func TestTwoParams(t *tst.T, x int) {}
func TestReturns(t *tst.T) error { return nil }
func FuzzGood(f *tst.F) {}
func BenchmarkGood(b *tst.B) {}

type suite struct{}

func (suite) TestMethod(t *tst.T) {}

func helper() {
	_ = func(t *tst.T) {}
}

// func TestInComment(t *testing.T) {}
var _ = "func TestInString(t *testing.T) {}"
`)
	writeFile(t, filepath.Join(root, "pkg/a/ignored_test.go"), `//go:build ignore

package a

import "testing"

func TestIgnored(t *testing.T) {}
`)
	writeFile(t, filepath.Join(root, "pkg/a/linux_test.go"), `//go:build linux || darwin

package a_test

import . "testing"

func TestDotImportTagged(t *T) {}
`)
	writeFile(t, filepath.Join(root, "pkg/a/sub/sub_test.go"), `package sub

import "testing"

func TestInSubdirectory(t *testing.T) {}
`)
	found := []string{"TestGood", "TestUnnamedParam", "FuzzGood", "BenchmarkGood", "TestDotImportTagged"}
	missing := []string{"TestInNonTestFile", "TestWrongType", "TestNoParam", "TestTwoParams", "TestReturns",
		"TestMethod", "TestInComment", "TestInString", "TestIgnored", "TestInSubdirectory", "TestAbsent"}
	var refs []string
	for _, n := range append(append([]string{}, found...), missing...) {
		refs = append(refs, "pkg/a."+n)
	}
	refs = append(refs, "pkg/nothere.TestX")
	log := logCiting(refs...)
	if err := log.Validate(); err != nil {
		t.Fatal(err)
	}
	rep, err := CheckEvidence(log, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range found {
		if st, _ := rep.Lookup(TestRef{"pkg/a", n}); !st.Found || st.File == "" {
			t.Errorf("%s not found: %+v", n, st)
		}
	}
	for _, n := range missing {
		if st, _ := rep.Lookup(TestRef{"pkg/a", n}); st.Found {
			t.Errorf("%s wrongly found in %s", n, st.File)
		}
	}
	if st, _ := rep.Lookup(TestRef{"pkg/nothere", "TestX"}); st.Found || !strings.Contains(st.Reason, "does not exist") {
		t.Errorf("missing package: %+v", st)
	}
	if rep.OK() || len(rep.Missing()) != len(missing)+1 {
		t.Errorf("OK()=%v with %d missing, want %d", rep.OK(), len(rep.Missing()), len(missing)+1)
	}
}

func TestCheckEvidenceReportsHazardWithoutControlAndParseErrors(t *testing.T) {
	root := t.TempDir()
	log := logCiting("pkg/b.TestX")
	log.Hazards = append(log.Hazards, Hazard{ID: "HAZ-2"})
	writeFile(t, filepath.Join(root, "pkg/b/b_test.go"), "package b\nfunc TestX(t *testing.T) {\n")
	if _, err := CheckEvidence(log, root); err == nil || !strings.Contains(err.Error(), "parse pkg/b/b_test.go") {
		t.Fatalf("broken test file: %v", err)
	}
	writeFile(t, filepath.Join(root, "pkg/b/b_test.go"), "package b\nimport \"testing\"\nfunc TestX(t *testing.T) {}\n")
	rep, err := CheckEvidence(log, root)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.HazardsWithoutControls) != 1 || rep.HazardsWithoutControls[0] != "HAZ-2" {
		t.Fatalf("report %+v", rep)
	}
	if p := rep.Problems(); len(p) != 1 || p[0] != "hazard HAZ-2 has no control" {
		t.Fatalf("problems %q", p)
	}
}
