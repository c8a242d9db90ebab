// Package textdiff compares transcripts word by word: it normalises text, aligns two
// word sequences with a Levenshtein alignment that keeps its operations, and derives the
// word error rate (accuracy harness) and the edit rate between a machine draft and the
// clinician-approved note (safety monitoring).
//
// # Normalisation
//
// Both sides of every comparison go through [Normalise] so that differences which do not
// change what the note says are not counted as errors or corrections. The rules, applied
// in this order:
//
//  1. Lower-case (Unicode-aware). Typographic apostrophes (’ ‘ ʼ) become '.
//  2. Tokenise. Letters and digits form words. An apostrophe is kept only between two
//     letters ("don't", "patient's"); leading/trailing apostrophes are dropped
//     ("patients'" → "patients"). A full stop is kept only between two digits (the
//     decimal point in "2.5"). A comma between digits followed by exactly three digits
//     is a thousands separator and is removed ("1,500" → "1500"). "%" becomes the word
//     "percent". Every other character — hyphens and slashes included — separates
//     words ("follow-up" → "follow up", "mg/kg" → "mg kg").
//  3. A number glued to a unit is split: "5mg" → "5 mg", "2.5ml" → "2.5 ml".
//  4. Units to a canonical abbreviation: milligram(s)/milligramme(s)/mgs → "mg";
//     millilitre(s)/milliliter(s)/mls → "ml"; kilogram(s)/kilogramme(s)/kilo(s)/kgs →
//     "kg"; microgram(s)/microgramme(s)/µg/ug → "mcg". "per cent" → "percent".
//  5. US spelling to UK spelling from a fixed table of word pairs (not a blanket
//     pattern, which would corrupt words such as "size" or "prize"): e.g. color→colour,
//     anemia→anaemia, pediatric→paediatric, esophagus→oesophagus,
//     hemoglobin→haemoglobin, estrogen→oestrogen, diarrhea→diarrhoea, edema→oedema,
//     tumor→tumour, center→centre, plus -ize→-ise (and -ized, -izes, -izing, -ization,
//     -izations) for a listed set of stems such as organize, recognize, hospitalize,
//     immunize. A plural "s" form is added for each pair.
//  6. Cardinal number words become digits: zero…nineteen, twenty…ninety, hundred,
//     thousand, million, with "and" inside a number ("one hundred and twenty" → "120")
//     and "point" followed by digit words for decimals ("two point five" → "2.5").
//     A number word that cannot continue the number in progress starts a new one, so
//     digit-by-digit readings stay separate ("one two three" → "1 2 3"). Not handled:
//     ordinals ("first"), fractions ("half"), "a hundred", and years read in pairs
//     ("twenty twenty four" → "20 24", which will not match "2024").
//  7. Filler words (um, umm, uh, uhh, uhm, erm, er, hmm, mm, mmm) are removed when
//     [Options].DropFillers is set, as it is in [DefaultOptions].
//
// # Alignment
//
// [Align] returns a minimum-cost word alignment (unit cost for substitution, insertion
// and deletion). A common prefix and suffix are matched first (always optimal for unit
// costs), then the rest is solved with a full dynamic-programming table when it has at
// most [FullTableCells] cells, and otherwise with Hirschberg's divide and conquer, which
// keeps memory linear in the text length: two 2,000-word consultations never need a
// 4-million-cell table.
//
// # Edge cases
//
// WER is (S + D + I) / max(1, N) where N is the number of reference words. So two empty
// texts give 0; an empty hypothesis gives 1 (all deletions); an empty reference with k
// hypothesis words gives k (k insertions over a denominator of 1). That last choice
// keeps the figure finite (JSON cannot carry +Inf) and still grows with the amount of
// invented text, which is the hazard it measures. [EditRate] uses the same rule with the
// draft as the reference.
package textdiff
