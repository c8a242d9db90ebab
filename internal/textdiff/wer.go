package textdiff

// Result is the word error rate of a hypothesis against a reference, with its alignment.
type Result struct {
	Substitutions int       `json:"substitutions"`
	Deletions     int       `json:"deletions"`
	Insertions    int       `json:"insertions"`
	Hits          int       `json:"hits"`
	RefWords      int       `json:"ref_words"`
	HypWords      int       `json:"hyp_words"`
	WER           float64   `json:"wer"`
	Alignment     Alignment `json:"alignment"`
}

// Errors is S + D + I.
func (r Result) Errors() int { return r.Substitutions + r.Deletions + r.Insertions }

// WER normalises both texts with DefaultOptions and scores hyp against ref.
// See the package documentation for the empty-text rules.
func WER(ref, hyp string) Result { return WERWith(ref, hyp, DefaultOptions) }

// WERWith is WER with explicit normalisation options.
func WERWith(ref, hyp string, opt Options) Result {
	return WERWords(Normalise(ref, opt), Normalise(hyp, opt))
}

// WERWords scores already-normalised word slices.
func WERWords(ref, hyp []string) Result {
	al := Align(ref, hyp)
	hits, s, d, i := al.Counts()
	return Result{
		Substitutions: s, Deletions: d, Insertions: i, Hits: hits,
		RefWords: len(ref), HypWords: len(hyp),
		WER:       rate(s+d+i, len(ref)),
		Alignment: al,
	}
}

// rate is errors / max(1, n): finite for an empty reference, 0 when both sides are empty.
func rate(errors, n int) float64 { return float64(errors) / float64(max(1, n)) }

// Totals pools results over a corpus: the corpus WER is total errors over total
// reference words, not the mean of per-file rates (which would overweight short files).
type Totals struct {
	Files         int `json:"files"`
	Substitutions int `json:"substitutions"`
	Deletions     int `json:"deletions"`
	Insertions    int `json:"insertions"`
	RefWords      int `json:"ref_words"`
	HypWords      int `json:"hyp_words"`
}

// Add pools one result.
func (t *Totals) Add(r Result) {
	t.Files++
	t.Substitutions += r.Substitutions
	t.Deletions += r.Deletions
	t.Insertions += r.Insertions
	t.RefWords += r.RefWords
	t.HypWords += r.HypWords
}

// WER is the pooled word error rate.
func (t Totals) WER() float64 { return rate(t.Substitutions+t.Deletions+t.Insertions, t.RefWords) }
