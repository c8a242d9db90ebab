package safety

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// DefaultAccuracyPath is where the release's measured accuracy by accent is kept: the
// JSON of `scribe bench accuracy` over consultations rendered in several English accents
// (scripts/bench-accuracy writes it; it is committed with each release's figures).
const DefaultAccuracyPath = "docs/safety/accuracy-accents.json"

// Accuracy is the part of a `scribe bench accuracy` report the safety case shows: NHS
// England's guidance on ambient scribes asks manufacturers to confirm the product works
// well for different accents, so the report shows the word error rate per accent.
type Accuracy struct {
	Model    string `json:"model"`
	Corpus   string `json:"corpus"`
	Settings string `json:"settings"`
	Measured string `json:"measured"`
	Pools    []struct {
		Mode      string  `json:"mode"`
		Channels  string  `json:"channels"`
		Condition string  `json:"condition"`
		Voices    string  `json:"voices"`
		Files     int     `json:"files"`
		RefWords  int     `json:"ref_words"`
		WER       float64 `json:"wer"`
	} `json:"pools"`
	Source string `json:"-"` // the file it was read from
}

// LoadAccuracy reads a bench accuracy report; a missing file is (nil, nil).
func LoadAccuracy(path string) (*Accuracy, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("accuracy: %w", err)
	}
	var a Accuracy
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("accuracy %s: %w", path, err)
	}
	a.Source = path
	return &a, nil
}

type accentRow struct {
	Accent, Voices  string
	Files, RefWords int
	WER             string
	Worst, Best     bool
}

type accentView struct {
	Supplied                          bool
	Model, Corpus, Settings, Measured string
	Source                            string
	Rows                              []accentRow
	Ratio                             string // worst WER / best WER
}

// accentTable turns the file-mode pools of a into one row per voice pair, best first.
func accentTable(a *Accuracy) accentView {
	if a == nil {
		return accentView{}
	}
	v := accentView{Supplied: true, Model: a.Model, Corpus: a.Corpus, Settings: a.Settings, Measured: a.Measured, Source: a.Source}
	type row struct {
		accentRow
		wer float64
	}
	var rows []row
	for _, p := range a.Pools {
		if p.Mode != "file" {
			continue
		}
		accent := p.Voices
		if i := strings.IndexAny(accent, "+,"); i >= 0 {
			accent = accent[:i]
		}
		rows = append(rows, row{accentRow{Accent: accent, Voices: p.Voices, Files: p.Files, RefWords: p.RefWords,
			WER: fmt.Sprintf("%.1f %%", 100*p.WER)}, p.WER})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].wer < rows[j].wer })
	for _, r := range rows {
		v.Rows = append(v.Rows, r.accentRow)
	}
	if n := len(rows); n > 1 {
		v.Rows[0].Best, v.Rows[n-1].Worst = true, true
		if rows[0].wer > 0 {
			v.Ratio = fmt.Sprintf("%.2f", rows[n-1].wer/rows[0].wer)
		}
	}
	return v
}
