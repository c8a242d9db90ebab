package corpus

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"

	"scribe/internal/domain"
)

// corpusDir is PriMock57 in the shared data beside the repository.
const corpusDir = "../../../shared/corpus/primock57"

func needCorpus(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(corpusDir, "transcripts")); err != nil {
		t.Skipf("PriMock57 not available (%v); it lives at ../shared/corpus/primock57 beside the repo", err)
	}
	return corpusDir
}

const longFormat = "File type = \"ooTextFile\"\r\nObject class = \"TextGrid\"\r\n\r\nxmin = 0 \r\nxmax = 4.5 \r\n" +
	"tiers? <exists> \r\nsize = 2 \r\nitem []: \r\n" +
	"    item [1]:\r\n        class = \"IntervalTier\" \r\n        name = \"Doctor\" \r\n        xmin = 0 \r\n        xmax = 4.5 \r\n" +
	"        intervals: size = 3 \r\n" +
	"        intervals [1]:\r\n            xmin = 0 \r\n            xmax = 1.25 \r\n            text = \"\" \r\n" +
	"        intervals [2]:\r\n            xmin = 1.25 \r\n            xmax = 3 \r\n            text = \"She said \"\"hello\"\"\r\nand left\" \r\n" +
	"        intervals [3]:\r\n            xmin = 3 \r\n            xmax = 4.5 \r\n            text = \"\" \r\n" +
	"    item [2]:\r\n        class = \"TextTier\" \r\n        name = \"events\" \r\n        xmin = 0 \r\n        xmax = 4.5 \r\n" +
	"        points: size = 1 \r\n        points [1]:\r\n            number = 2.5e0 \r\n            mark = \"cough\" \r\n"

// shortFormat is the same object in Praat's short text format, with a comment.
const shortFormat = "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\n0\n4.5\n<exists>\n2\n" +
	"\"IntervalTier\"\n\"Doctor\"\n0\n4.5\n3\n0\n1.25\n\"\"\n1.25\n3\n\"She said \"\"hello\"\"\r\nand left\"\n3\n4.5\n\"\"\n" +
	"\"TextTier\" ! a point tier\n\"events\"\n0\n4.5\n1\n2.5\n\"cough\"\n"

var wantGrid = &TextGrid{XMin: 0, XMax: 4.5, Tiers: []Tier{
	{Class: "IntervalTier", Name: "Doctor", XMin: 0, XMax: 4.5, Intervals: []Interval{
		{0, 1.25, ""}, {1.25, 3, "She said \"hello\"\r\nand left"}, {3, 4.5, ""}}},
	{Class: "TextTier", Name: "events", XMin: 0, XMax: 4.5, Points: []Point{{2.5, "cough"}}},
}}

func utf16Bytes(s string, bigEndian bool) []byte {
	var b []byte
	if bigEndian {
		b = []byte{0xFE, 0xFF}
	} else {
		b = []byte{0xFF, 0xFE}
	}
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return b
}

func TestParseTextGridFormatsAndEncodings(t *testing.T) {
	cases := map[string][]byte{
		"long utf-8":         []byte(longFormat),
		"long utf-8 bom":     append([]byte{0xEF, 0xBB, 0xBF}, longFormat...),
		"long utf-16le bom":  utf16Bytes(longFormat, false),
		"long utf-16be bom":  utf16Bytes(longFormat, true),
		"short utf-8":        []byte(shortFormat),
		"short utf-16le bom": utf16Bytes(shortFormat, false),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseTextGrid(bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, wantGrid) {
				t.Errorf("got %+v\nwant %+v", got, wantGrid)
			}
		})
	}
}

func TestParseTextGridNonASCII(t *testing.T) {
	in := strings.Replace(longFormat, "and left", "and left — café ☕", 1)
	for name, b := range map[string][]byte{"utf-8": []byte(in), "utf-16": utf16Bytes(in, false)} {
		tg, err := ParseTextGrid(bytes.NewReader(b))
		if err != nil {
			t.Fatal(name, err)
		}
		if got := tg.Tiers[0].Intervals[1].Text; !strings.HasSuffix(got, "and left — café ☕") {
			t.Errorf("%s: text = %q", name, got)
		}
	}
}

func TestParseTextGridRejects(t *testing.T) {
	cases := map[string]string{
		"empty":             "",
		"binary":            "ooBinaryFile\x08TextGrid",
		"not a textgrid":    `File type = "ooTextFile" Object class = "Sound" 0 1`,
		"truncated":         longFormat[:len(longFormat)/2],
		"unterminated text": strings.Replace(longFormat, `"cough"`, `"cough`, 1),
		"bad number":        strings.Replace(longFormat, "xmax = 1.25", "xmax = 1.2.5", 1),
		"nan":               strings.Replace(longFormat, "xmax = 1.25", "xmax = NaN", 1),
		"reversed interval": strings.Replace(longFormat, "xmin = 1.25", "xmin = 3.5", 1),
		"negative count":    strings.Replace(longFormat, "intervals: size = 3", "intervals: size = -3", 1),
		"huge count":        strings.Replace(longFormat, "intervals: size = 3", "intervals: size = 999999999999", 1),
		"unknown tier":      strings.Replace(longFormat, `"TextTier"`, `"PitchTier"`, 1),
		"bad flag":          strings.Replace(longFormat, "<exists>", "<maybe>", 1),
		"odd utf-16":        string(utf16Bytes(longFormat, false)[:101]),
	}
	for name, in := range cases {
		_, err := ParseTextGrid(strings.NewReader(in))
		if !errors.Is(err, ErrTextGrid) {
			t.Errorf("%s: err = %v, want ErrTextGrid", name, err)
		}
	}
}

func TestParseTextGridAbsentTiers(t *testing.T) {
	tg, err := ParseTextGrid(strings.NewReader("File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n0\n2\n<absent>\n"))
	if err != nil || len(tg.Tiers) != 0 || tg.XMax != 2 {
		t.Fatalf("tg = %+v, err = %v", tg, err)
	}
}

func TestWriteTextGridRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTextGrid(&buf, wantGrid); err != nil {
		t.Fatal(err)
	}
	got, err := ParseTextGrid(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantGrid) {
		t.Errorf("round trip: got %+v", got)
	}
}

// TestParseAllPriMockTranscripts parses every transcript in the corpus and checks the
// structure the renderer relies on: one interval tier tiling the time domain.
func TestParseAllPriMockTranscripts(t *testing.T) {
	dir := needCorpus(t)
	files, _ := filepath.Glob(filepath.Join(dir, "transcripts", "*.TextGrid"))
	if len(files) != 90 {
		t.Errorf("found %d transcripts, want 90", len(files))
	}
	intervals := 0
	for _, f := range files {
		tg, err := readTextGrid(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(tg.Tiers) != 1 || tg.Tiers[0].Class != "IntervalTier" {
			t.Errorf("%s: tiers %+v", f, tg.Tiers)
			continue
		}
		ivs := tg.Tiers[0].Intervals
		intervals += len(ivs)
		for i := 1; i < len(ivs); i++ {
			if math.Abs(ivs[i].XMin-ivs[i-1].XMax) > 1e-9 {
				t.Errorf("%s: interval %d starts at %g, previous ends at %g", f, i+1, ivs[i].XMin, ivs[i-1].XMax)
				break
			}
		}
	}
	t.Logf("%d transcripts, %d intervals", len(files), intervals)
}

func TestCleanText(t *testing.T) {
	cases := map[string]string{
		"<UNSURE>Hello how</UNSURE> um.":        "Hello how um.",
		"<UNIN/> Sorry to hear that.":           "Sorry to hear that.",
		"<UNIN/>":                               "",
		"and you <UNIN/> mention it's watery.":  "and you mention it's watery.",
		"<INAUDIBLE_SPEECH/>  yes <UNIN />":     "yes",
		"I've had <UNSURE>Amoxicillin</UNSURE>": "I've had Amoxicillin",
		"5 < 6 and 7 > 3":                       "5 < 6 and 7 > 3",
	}
	for in, want := range cases {
		if got := CleanText(in); got != want {
			t.Errorf("CleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadConsultation(t *testing.T) {
	dir := needCorpus(t)
	ids, err := ListConsultations(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 45 || ids[0] != "day1_consultation01" {
		t.Errorf("ListConsultations: %d ids starting %v, want 45 starting day1_consultation01", len(ids), ids[:1])
	}
	c, err := LoadConsultation(dir, "day1_consultation01")
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration < 400 || c.Duration > 500 {
		t.Errorf("duration = %g", c.Duration)
	}
	first := c.Utterances[0]
	if first.Speaker != domain.SpeakerClinician || math.Abs(first.Start-2.5334561157322537) > 1e-12 ||
		first.Text != "Hello? Hi. Um, should we start? Yeah, okay. Hello how um. Good morning sir, how can I help you this morning?" {
		t.Errorf("first utterance = %+v", first)
	}
	speakers := map[domain.Speaker]int{}
	for i, u := range c.Utterances {
		speakers[u.Speaker]++
		if i > 0 && u.Start < c.Utterances[i-1].Start {
			t.Fatalf("utterance %d not sorted by start", i)
		}
		if u.Text == "" || strings.ContainsAny(u.Text, "<>") || u.End <= u.Start {
			t.Errorf("utterance %d: %+v", i, u)
		}
	}
	if speakers[domain.SpeakerClinician] == 0 || speakers[domain.SpeakerPatient] == 0 || len(speakers) != 2 {
		t.Errorf("speakers = %v", speakers)
	}
	if _, err := LoadConsultation(dir, "day9_consultation99"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing consultation: %v", err)
	}
	if _, err := LoadConsultation(dir, "../../etc/passwd"); !errors.Is(err, ErrNotFound) {
		t.Errorf("path-like id: %v", err)
	}
}

func FuzzParseTextGrid(f *testing.F) {
	f.Add([]byte(longFormat))
	f.Add([]byte(shortFormat))
	f.Add(utf16Bytes(shortFormat, false))
	f.Add(utf16Bytes(longFormat, true))
	f.Add([]byte("File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n0\n2\n<absent>\n"))
	f.Add([]byte(`"ooTextFile" "TextGrid" 0 1 <exists> 1 "IntervalTier" "" 0 1 1 0 1 "[x]<y>!z"`))
	if b, err := os.ReadFile(filepath.Join(corpusDir, "transcripts", "day1_consultation01_patient.TextGrid")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tg, err := ParseTextGrid(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrTextGrid) {
				t.Fatalf("error not wrapping ErrTextGrid: %v", err)
			}
			return
		}
		for _, tier := range tg.Tiers {
			for _, iv := range tier.Intervals {
				if iv.XMax < iv.XMin || math.IsNaN(iv.XMin) || math.IsInf(iv.XMax, 0) {
					t.Fatalf("accepted bad interval %+v", iv)
				}
			}
		}
		// Whatever parses must survive a write and re-parse unchanged.
		var buf bytes.Buffer
		if err := WriteTextGrid(&buf, tg); err != nil {
			t.Fatal(err)
		}
		again, err := ParseTextGrid(&buf)
		if err != nil {
			t.Fatalf("re-parse of written grid: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(normalise(tg), normalise(again)) {
			t.Fatalf("round trip changed the grid:\n%+v\n%+v", tg, again)
		}
	})
}

// normalise maps empty slices to nil so DeepEqual compares content only.
func normalise(tg *TextGrid) *TextGrid {
	out := *tg
	out.Tiers = nil
	for _, t := range tg.Tiers {
		if len(t.Intervals) == 0 {
			t.Intervals = nil
		}
		if len(t.Points) == 0 {
			t.Points = nil
		}
		out.Tiers = append(out.Tiers, t)
	}
	return &out
}
