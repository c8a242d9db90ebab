package textdiff

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"scribe/internal/domain"
)

func TestNormalise(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"Hello,   World!", "hello world"},
		{"Don't stop; the patient's notes", "don't stop the patient's notes"},
		{"the patients' ‘notes’", "the patients notes"},
		{"Take 2.5 ml. Then rest.", "take 2.5 ml then rest"},
		{"twenty five", "25"},
		{"twenty-five", "25"},
		{"five milligrams", "5 mg"},
		{"5mg", "5 mg"},
		{"5 mg", "5 mg"},
		{"2.5ML", "2.5 ml"},
		{"two point five millilitres", "2.5 ml"},
		{"seventy kilos", "70 kg"},
		{"five hundred micrograms", "500 mcg"},
		{"one hundred and twenty over eighty", "120 over 80"},
		{"one thousand five hundred", "1500"},
		{"1,500 steps", "1500 steps"},
		{"3,14", "3 14"},
		{"two million three hundred thousand and six", "2300006"},
		{"one two three", "1 2 3"},
		{"twenty twenty", "20 20"},
		{"hundred", "hundred"},
		{"and then one and two", "and then 1 and 2"},
		{"a point to make", "a point to make"},
		{"zero point zero five", "0.05"},
		{"fifty per cent", "50 percent"},
		{"50%", "50 percent"},
		{"Um, I've had, er, diarrhea", "i've had diarrhoea"},
		{"Pediatric anemia; esophagus; hemoglobin; estrogen", "paediatric anaemia oesophagus haemoglobin oestrogen"},
		{"color colors tumors", "colour colours tumours"},
		{"hospitalized after immunization", "hospitalised after immunisation"},
		{"size prize", "size prize"},
		{"follow-up in 2 weeks", "follow up in 2 weeks"},
		{"", ""},
		{"  ...  ", ""},
	}
	for _, c := range cases {
		if got := NormaliseText(c.in, DefaultOptions); got != c.want {
			t.Errorf("Normalise(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := NormaliseText("um yes", Options{}); got != "um yes" {
		t.Errorf("fillers kept without DropFillers: got %q", got)
	}
}

func TestWERKnownPairs(t *testing.T) {
	cases := []struct {
		name          string
		ref, hyp      string
		s, d, i, refN int
		wer           float64
	}{
		{"identical", "the cat sat on the mat", "The cat sat on the mat.", 0, 0, 0, 6, 0},
		{"one substitution", "take five milligrams daily", "take nine milligrams daily", 1, 0, 0, 4, 0.25},
		{"deletion", "chest pain for two days", "chest pain for days", 0, 1, 0, 5, 0.2},
		{"insertion", "no allergies", "no known allergies", 0, 0, 1, 2, 0.5},
		{"both empty", "", "", 0, 0, 0, 0, 0},
		{"empty hyp", "a b c d", "", 0, 4, 0, 4, 1},
		{"empty ref", "", "thank you for watching", 0, 0, 4, 0, 4},
		{"uk us spelling", "anaemia and oedema in paediatric patients", "anemia and edema in pediatric patients", 0, 0, 0, 6, 0},
		{"numbers", "twenty five milligrams of amitriptyline", "25 mg of amitriptyline", 0, 0, 0, 4, 0},
		{"fillers ignored", "I have a cough", "um I have uh a cough", 0, 0, 0, 4, 0},
		{"mixed", "a b c d e", "a x c e f", 3, 0, 0, 5, 0.6}, // ties prefer substitution
		{"sub and del", "a b c d e", "a x c e", 1, 1, 0, 5, 0.4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := WER(c.ref, c.hyp)
			if r.Substitutions != c.s || r.Deletions != c.d || r.Insertions != c.i || r.RefWords != c.refN {
				t.Fatalf("S/D/I/N = %d/%d/%d/%d, want %d/%d/%d/%d", r.Substitutions, r.Deletions, r.Insertions, r.RefWords, c.s, c.d, c.i, c.refN)
			}
			if math.Abs(r.WER-c.wer) > 1e-12 {
				t.Fatalf("WER = %v, want %v", r.WER, c.wer)
			}
			got, err := r.Alignment.Apply()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r.Alignment.Hyp) && len(got)+len(r.Alignment.Hyp) > 0 {
				t.Fatalf("alignment rebuilds %q, want %q", got, r.Alignment.Hyp)
			}
		})
	}
}

func TestEditRateKnownPairs(t *testing.T) {
	cases := []struct {
		name            string
		draft, approved string
		edits, words    int
		rate            float64
	}{
		{"unchanged", "Patient reports chest pain for two days.", "patient reports chest pain for 2 days", 0, 7, 0},
		{"drug name corrected", "started on a moxy cillin five hundred milligrams", "started on amoxicillin 500 mg", 3, 7, 3.0 / 7},
		{"invented sentence removed", "no further questions thank you for watching", "no further questions", 4, 7, 4.0 / 7},
		{"missed speech added", "blood pressure fine", "blood pressure fine review in two weeks", 4, 3, 4.0 / 3},
		{"empty draft and approved", "", "", 0, 0, 0},
		{"empty draft, clinician typed", "", "seen with mum", 3, 0, 3},
		{"draft cleared", "thank you for watching", "", 4, 4, 1},
		{"spelling only", "esophagus and hemoglobin", "oesophagus and haemoglobin", 0, 3, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := EditRate(c.draft, c.approved)
			if r.Edits != c.edits || r.DraftWords != c.words {
				t.Fatalf("edits %d over %d draft words, want %d over %d (%+v)", r.Edits, r.DraftWords, c.edits, c.words, r.Alignment.Ops)
			}
			if math.Abs(r.Rate-c.rate) > 1e-12 {
				t.Fatalf("rate %v, want %v", r.Rate, c.rate)
			}
			// The stored form must survive a JSON round trip and still rebuild the approved words.
			raw, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back EditResult
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			words, err := back.Alignment.Apply()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(words, " ") != NormaliseText(c.approved, DefaultOptions) {
				t.Fatalf("stored alignment rebuilds %q", words)
			}
			if back.Edits != r.Edits || back.Alignment.Cost() != r.Edits {
				t.Fatalf("stored edits %d, alignment cost %d, want %d", back.Edits, back.Alignment.Cost(), r.Edits)
			}
		})
	}
}

func TestAlignPureOperations(t *testing.T) {
	words := strings.Fields("a b c d")
	ins := Align(nil, words)
	for k, op := range ins.Ops {
		if op != (Op{OpInsert, -1, k}) {
			t.Fatalf("insert op %d = %+v", k, op)
		}
	}
	del := Align(words, nil)
	for k, op := range del.Ops {
		if op != (Op{OpDelete, k, -1}) {
			t.Fatalf("delete op %d = %+v", k, op)
		}
	}
	if len(ins.Ops) != 4 || len(del.Ops) != 4 {
		t.Fatalf("got %d insert and %d delete ops", len(ins.Ops), len(del.Ops))
	}
	same := Align(words, words)
	if same.Cost() != 0 || len(same.Ops) != 4 {
		t.Fatalf("identical: %+v", same.Ops)
	}
}

func TestAlignmentApplyRejectsBadOps(t *testing.T) {
	bad := []Alignment{
		{Ref: []string{"a"}, Hyp: []string{"b"}, Ops: []Op{{OpEqual, 0, 0}}},
		{Ref: []string{"a"}, Hyp: []string{"a"}, Ops: []Op{{OpSubstitute, 0, 0}}},
		{Ref: []string{"a"}, Hyp: nil, Ops: nil},
		{Ref: []string{"a"}, Hyp: nil, Ops: []Op{{OpDelete, 1, -1}}},
		{Ref: nil, Hyp: []string{"a"}, Ops: []Op{{"swap", 0, 0}}},
	}
	for i, a := range bad {
		if _, err := a.Apply(); err == nil {
			t.Errorf("case %d: Apply accepted inconsistent ops %+v", i, a.Ops)
		}
	}
}

// dpDistance is the textbook full-table Levenshtein distance, the oracle for Align.
func dpDistance(a, b []string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			sub := 1
			if a[i-1] == b[j-1] {
				sub = 0
			}
			d[i][j] = min(d[i-1][j-1]+sub, d[i-1][j]+1, d[i][j-1]+1)
		}
	}
	return d[len(a)][len(b)]
}

func checkAlignment(t *testing.T, ref, hyp []string) {
	t.Helper()
	al := Align(ref, hyp)
	got, err := al.Apply()
	if err != nil {
		t.Fatalf("ref %q hyp %q: %v", ref, hyp, err)
	}
	if !reflect.DeepEqual(got, hyp) && len(got)+len(hyp) > 0 {
		t.Fatalf("ops rebuild %q, want %q", got, hyp)
	}
	if want := dpDistance(ref, hyp); al.Cost() != want {
		t.Fatalf("ref %q hyp %q: cost %d, want %d", ref, hyp, al.Cost(), want)
	}
}

// randomWords draws from a tiny vocabulary so that matches are common.
func randomWords(r *rand.Rand, n, vocab int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("w%d", r.IntN(vocab))
	}
	return out
}

// TestAlignHirschbergMatchesDP forces the divide-and-conquer path on inputs large enough
// to exceed FullTableCells, and checks its cost against the textbook DP.
func TestAlignHirschbergMatchesDP(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 4 {
		n, m := 1100+r.IntN(300), 1000+r.IntN(300)
		if (n+1)*(m+1) <= FullTableCells {
			t.Fatalf("trial %d does not exercise Hirschberg", trial)
		}
		checkAlignment(t, randomWords(r, n, 6), randomWords(r, m, 6))
	}
	// A realistic edit: a long text with scattered changes.
	ref := randomWords(r, 2000, 500)
	hyp := append([]string(nil), ref...)
	for k := 0; k < 60; k++ {
		i := r.IntN(len(hyp))
		switch k % 3 {
		case 0:
			hyp[i] = "changed"
		case 1:
			hyp = append(hyp[:i], hyp[i+1:]...)
		default:
			hyp = append(hyp[:i], append([]string{"added"}, hyp[i:]...)...)
		}
	}
	checkAlignment(t, ref, hyp)
}

func FuzzAlign(f *testing.F) {
	f.Add("a b c", "a c d")
	f.Add("", "x y")
	f.Add("x x x x", "")
	f.Add("the cat sat", "the cat sat")
	f.Fuzz(func(t *testing.T, refText, hypText string) {
		ref, hyp := strings.Fields(refText), strings.Fields(hypText)
		if len(ref) > 60 || len(hyp) > 60 {
			return // the oracle is quadratic; keep fuzzing fast
		}
		checkAlignment(t, ref, hyp)
	})
}

func TestSummariseSession(t *testing.T) {
	draft := []domain.Segment{
		{ID: "s1", Speaker: domain.SpeakerClinician, Text: "how long have you had the cough"},
		{ID: "s2", Speaker: domain.SpeakerUnknown, Text: "about two weeks", Flags: []domain.Flag{domain.FlagOverlap}},
		{ID: "s3", Speaker: domain.SpeakerPatient, Text: "thank you for watching", Flags: []domain.Flag{domain.FlagNoSpeech}},
		{ID: "s4", Speaker: domain.SpeakerPatient, Text: "I take ramipril"},
	}
	approved := []domain.Segment{
		{ID: "s1", Speaker: domain.SpeakerClinician, Text: "How long have you had the cough?"},
		{ID: "s2", Speaker: domain.SpeakerPatient, Text: "about 2 weeks", Flags: []domain.Flag{domain.FlagOverlap, domain.FlagWrongSpeaker}},
		{ID: "s4", Speaker: domain.SpeakerPatient, Text: "I take ramipril and amlodipine", Flags: []domain.Flag{domain.FlagMissingSpeech}},
		{ID: "c1", Speaker: domain.SpeakerClinician, Text: "examined chest"},
	}
	stop := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	s := SummariseSession(draft, approved, stop, stop.Add(95*time.Second))
	// Edits: s3 removed (4 deletions), s4 +2 insertions, c1 +2 insertions.
	if s.Edits != 8 || s.DraftWords != 17 {
		t.Fatalf("edits %d over %d draft words, want 8 over 17", s.Edits, s.DraftWords)
	}
	if math.Abs(s.WordEditRate-8.0/17) > 1e-12 {
		t.Fatalf("word edit rate %v", s.WordEditRate)
	}
	if s.SegmentsEdited != 3 || s.SegmentsTotal != 5 || s.SpeakerCorrections != 1 {
		t.Fatalf("edited %d / total %d / speaker %d, want 3/5/1", s.SegmentsEdited, s.SegmentsTotal, s.SpeakerCorrections)
	}
	wantFlags := map[domain.Flag]int{domain.FlagOverlap: 1, domain.FlagWrongSpeaker: 1, domain.FlagMissingSpeech: 1}
	if !reflect.DeepEqual(s.Flags, wantFlags) {
		t.Fatalf("flags %v, want %v", s.Flags, wantFlags)
	}
	if s.StopToApproval != 95*time.Second || s.StopToApprovalSeconds != 95 {
		t.Fatalf("stop to approval %v", s.StopToApproval)
	}
	if !s.Segments[2].Removed || !s.Segments[4].Added || s.Segments[4].ID != "c1" {
		t.Fatalf("segment order/marks wrong: %+v", s.Segments)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	// Approval stamped before stop (clock error) must not produce a negative duration.
	if back := SummariseSession(draft, approved, stop, stop.Add(-time.Minute)); back.StopToApproval != 0 {
		t.Fatalf("negative stop-to-approval reported as %v", back.StopToApproval)
	}
	if empty := SummariseSession(nil, nil, time.Time{}, time.Time{}); empty.WordEditRate != 0 || empty.SegmentsTotal != 0 {
		t.Fatalf("empty session: %+v", empty)
	}
}

func TestTotalsPool(t *testing.T) {
	var tot Totals
	tot.Add(WER("a b c d e f g h i j", "a b c d e f g h i x")) // 1 error / 10
	tot.Add(WER("one", ""))                                    // 1 error / 1
	if tot.Files != 2 || math.Abs(tot.WER()-2.0/11) > 1e-12 {
		t.Fatalf("pooled %+v WER %v, want 2/11", tot, tot.WER())
	}
}

func benchWords(n int, seed uint64) ([]string, []string) {
	r := rand.New(rand.NewPCG(seed, 7))
	ref := randomWords(r, n, 800)
	hyp := make([]string, 0, n)
	for _, w := range ref {
		switch r.IntN(20) { // ~15% word error rate
		case 0:
			hyp = append(hyp, "sub")
		case 1:
		case 2:
			hyp = append(hyp, w, "ins")
		default:
			hyp = append(hyp, w)
		}
	}
	return ref, hyp
}

func BenchmarkAlign2000Words(b *testing.B) {
	ref, hyp := benchWords(2000, 3)
	b.ReportAllocs()
	var cost int
	for b.Loop() {
		cost = Align(ref, hyp).Cost()
	}
	b.ReportMetric(float64(cost), "edits")
}

func BenchmarkEditRate2000Words(b *testing.B) {
	ref, hyp := benchWords(2000, 4)
	draft, approved := strings.Join(ref, " "), strings.Join(hyp, " ")
	b.ReportAllocs()
	for b.Loop() {
		EditRate(draft, approved)
	}
}
