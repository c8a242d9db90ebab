package web

import (
	"encoding/json"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The page must work on a practice network with no internet: nothing it loads may come
// from another host (no CDN, no external fonts).
func TestStaticIsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|fetch\(\s*["']https?://`)
	var names []string
	err := fs.WalkDir(Static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, path)
		b, err := fs.ReadFile(Static, path)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s loads something from another host: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"static/index.html", "static/api.js", "static/app.js", "static/review.js", "static/admin.js", "static/style.css",
		"static/mic-worklet.js", "static/vendor/nhsuk/nhsuk.css", "static/vendor/nhsuk/nhsuk-icon-cross.svg"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("embedded files %v lack %s", names, want)
		}
	}
	index, _ := fs.ReadFile(Static, "static/index.html")
	if !strings.Contains(string(index), "Intended use: transcription only") {
		t.Error("index.html lacks the intended-use banner")
	}
}

// The NHS design system's styles are a committed, compiled subset of the npm package
// pinned in scripts/vendor-nhsuk (no build step at make or go build time): the file must
// say which version it came from, that version must be the pinned one, and it must not
// ask for the NHS web font (served from another host).
func TestVendoredNHSStylesArePinned(t *testing.T) {
	css, err := fs.ReadFile(Static, "static/vendor/nhsuk/nhsuk.css")
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile("../scripts/vendor-nhsuk/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(pkg, &p); err != nil {
		t.Fatal(err)
	}
	pinned := p.Dependencies["nhsuk-frontend"]
	if pinned == "" || strings.ContainsAny(pinned, "^~<>*x ") {
		t.Fatalf("nhsuk-frontend must be pinned to an exact version in scripts/vendor-nhsuk/package.json, got %q", pinned)
	}
	head := string(css[:min(len(css), 400)])
	if !strings.HasPrefix(head, "/*! nhsuk-frontend "+pinned+", MIT Licence") {
		t.Fatalf("vendored nhsuk.css does not start with the pinned version %s and its licence: %q", pinned, head)
	}
	if !strings.Contains(string(css), `--nhsuk-frontend-version: "`+pinned+`"`) {
		t.Fatalf("vendored nhsuk.css was not compiled from nhsuk-frontend %s (run scripts/vendor-nhsuk/build)", pinned)
	}
	if strings.Contains(string(css), "@font-face") || strings.Contains(string(css), "assets.nhs.uk") {
		t.Fatal("vendored nhsuk.css loads the NHS web font from another host")
	}
	for _, page := range []string{"static/index.html", "static/cso.html"} {
		b, _ := fs.ReadFile(Static, page)
		if !strings.Contains(string(b), `href="/vendor/nhsuk/nhsuk.css"`) {
			t.Errorf("%s does not use the NHS styles", page)
		}
	}
}
