package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// The page must work on a practice network with no internet: nothing it loads may come
// from another host (no CDN, no external fonts).
func TestStaticIsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import\s+url\(\s*["']?(https?:)?//|fetch\(\s*["']https?://`)
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
	for _, want := range []string{"static/index.html", "static/api.js", "static/app.js", "static/style.css", "static/mic-worklet.js"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("embedded files %v lack %s", names, want)
		}
	}
	index, _ := fs.ReadFile(Static, "static/index.html")
	if !strings.Contains(string(index), "Intended use: transcription only") {
		t.Error("index.html lacks the intended-use banner")
	}
}
