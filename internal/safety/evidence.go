package safety

import (
	"errors"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrEvidenceMissing is returned by `scribe safety check` when a cited test is missing.
var ErrEvidenceMissing = errors.New("safety evidence missing")

// EvidenceStatus is whether one cited test exists in the source tree.
type EvidenceStatus struct {
	Citation
	Found  bool
	File   string // repository-relative file declaring the test, when found
	Reason string // why it was not found
}

// EvidenceReport is the result of CheckEvidence.
type EvidenceReport struct {
	Statuses []EvidenceStatus
	// HazardsWithoutControls lists hazards with no control at all (normally caught by
	// validation; repeated here so the check stands on its own).
	HazardsWithoutControls []string
}

// Missing returns the statuses of cited tests that were not found.
func (r EvidenceReport) Missing() []EvidenceStatus {
	var out []EvidenceStatus
	for _, s := range r.Statuses {
		if !s.Found {
			out = append(out, s)
		}
	}
	return out
}

// OK reports whether every cited test exists and every hazard has a control.
func (r EvidenceReport) OK() bool {
	return len(r.Missing()) == 0 && len(r.HazardsWithoutControls) == 0
}

// Problems lists what is wrong, one line each, for test failures and CLI output.
func (r EvidenceReport) Problems() []string {
	var out []string
	for _, id := range r.HazardsWithoutControls {
		out = append(out, fmt.Sprintf("hazard %s has no control", id))
	}
	for _, s := range r.Missing() {
		out = append(out, fmt.Sprintf("missing test %s (%s; cited by %s)", s.Ref, s.Reason, strings.Join(s.Controls, ", ")))
	}
	return out
}

// Lookup returns the status of one reference.
func (r EvidenceReport) Lookup(ref TestRef) (EvidenceStatus, bool) {
	for _, s := range r.Statuses {
		if s.Ref == ref {
			return s, true
		}
	}
	return EvidenceStatus{}, false
}

// CheckEvidence looks for every test the log cites. For package/path.Name it parses the
// *_test.go files directly in repoRoot/package/path with go/parser and accepts only a
// top-level function with the right signature: TestXxx(*testing.T), FuzzXxx(*testing.F)
// or BenchmarkXxx(*testing.B). Methods, nested functions, comments and files excluded by
// a "//go:build ignore" constraint do not count. A file that fails to parse is an error:
// its tests would not compile either.
func CheckEvidence(log *Log, repoRoot string) (EvidenceReport, error) {
	var rep EvidenceReport
	for _, h := range log.Hazards {
		if len(h.Controls) == 0 {
			rep.HazardsWithoutControls = append(rep.HazardsWithoutControls, h.ID)
		}
	}
	pkgs := map[string]packageTests{}
	for _, c := range log.Refs() {
		st := EvidenceStatus{Citation: c}
		pt, ok := pkgs[c.Ref.Package]
		if !ok {
			var err error
			pt, err = scanPackageTests(repoRoot, c.Ref.Package)
			if err != nil {
				return EvidenceReport{}, err
			}
			pkgs[c.Ref.Package] = pt
		}
		switch file, found := pt.funcs[c.Ref.Name]; {
		case !pt.dirExists:
			st.Reason = "package directory " + c.Ref.Package + " does not exist"
		case found:
			st.Found, st.File = true, file
		default:
			st.Reason = "no such test function in " + c.Ref.Package
		}
		rep.Statuses = append(rep.Statuses, st)
	}
	return rep, nil
}

type packageTests struct {
	dirExists bool
	funcs     map[string]string // function name → repository-relative file
}

func scanPackageTests(repoRoot, pkg string) (packageTests, error) {
	dir := filepath.Join(repoRoot, filepath.FromSlash(pkg))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return packageTests{}, nil
	}
	if err != nil {
		return packageTests{}, fmt.Errorf("scan %s: %w", pkg, err)
	}
	pt := packageTests{dirExists: true, funcs: map[string]string{}}
	fset := token.NewFileSet()
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), "_test.go") && !strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(e.Name(), "_") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return packageTests{}, fmt.Errorf("parse %s/%s: %w", pkg, name, err)
		}
		if excludedByIgnore(f) {
			continue
		}
		testing := testingImportName(f)
		if testing == "" {
			continue
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || fn.Body == nil || fn.Type.TypeParams != nil {
				continue
			}
			kind := testPrefix(fn.Name.Name)
			if kind == "" || !hasTestingParam(fn.Type, testing, map[string]string{"Test": "T", "Fuzz": "F", "Benchmark": "B"}[kind]) {
				continue
			}
			if _, dup := pt.funcs[fn.Name.Name]; !dup {
				pt.funcs[fn.Name.Name] = pkg + "/" + name
			}
		}
	}
	return pt, nil
}

// excludedByIgnore reports whether the file's //go:build line is false when every tag
// except "ignore" is set: such a file never builds, so its tests evidence nothing. Other
// tags (cgo, linux…) are assumed to hold in CI.
func excludedByIgnore(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() > f.Package {
			break
		}
		for _, c := range cg.List {
			if !constraint.IsGoBuild(c.Text) {
				continue
			}
			expr, err := constraint.Parse(c.Text)
			if err != nil {
				return true
			}
			return !expr.Eval(func(tag string) bool { return tag != "ignore" })
		}
	}
	return false
}

// testingImportName is the name under which the file imports "testing" ("." for a dot
// import, "" when it does not import it).
func testingImportName(f *ast.File) string {
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil || p != "testing" {
			continue
		}
		if imp.Name != nil {
			if imp.Name.Name == "_" {
				return ""
			}
			return imp.Name.Name
		}
		return "testing"
	}
	return ""
}

// hasTestingParam checks the signature is exactly func(x *testing.<typ>) with no results.
func hasTestingParam(ft *ast.FuncType, testing, typ string) bool {
	if ft.Results != nil && len(ft.Results.List) > 0 {
		return false
	}
	if ft.Params == nil || len(ft.Params.List) != 1 || len(ft.Params.List[0].Names) > 1 {
		return false
	}
	star, ok := ft.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	if testing == "." {
		id, ok := star.X.(*ast.Ident)
		return ok && id.Name == typ
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == testing && sel.Sel.Name == typ
}
