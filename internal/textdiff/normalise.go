package textdiff

import (
	"strconv"
	"strings"
	"unicode"
)

// Options control normalisation.
type Options struct {
	// DropFillers removes hesitation words (um, uh, erm…) before comparison.
	DropFillers bool
}

// DefaultOptions is what WER and EditRate use: fillers are not content, so neither a
// recogniser that drops them nor a clinician who deletes them is counted as an error.
var DefaultOptions = Options{DropFillers: true}

// Normalise returns the words of text after the rules in the package documentation.
func Normalise(text string, opt Options) []string {
	words := tokenise(text)
	words = splitNumberUnits(words)
	words = canonicalUnits(words)
	for i, w := range words {
		if uk, ok := ukSpelling[w]; ok {
			words[i] = uk
		}
	}
	words = numbersToDigits(words)
	if opt.DropFillers {
		kept := words[:0]
		for _, w := range words {
			if !fillers[w] {
				kept = append(kept, w)
			}
		}
		words = kept
	}
	return words
}

// NormaliseText is Normalise joined with single spaces.
func NormaliseText(text string, opt Options) string {
	return strings.Join(Normalise(text, opt), " ")
}

func isApostrophe(r rune) bool { return r == '\'' || r == '’' || r == '‘' || r == 'ʼ' }

func tokenise(text string) []string {
	rs := []rune(strings.ToLower(text))
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	at := func(i int) rune {
		if i < 0 || i >= len(rs) {
			return 0
		}
		return rs[i]
	}
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			cur = append(cur, r)
		case isApostrophe(r):
			if len(cur) > 0 && unicode.IsLetter(cur[len(cur)-1]) && unicode.IsLetter(at(i+1)) {
				cur = append(cur, '\'')
			} else {
				flush()
			}
		case r == '.':
			if len(cur) > 0 && isASCIIDigit(cur[len(cur)-1]) && isASCIIDigit(at(i+1)) {
				cur = append(cur, '.')
			} else {
				flush()
			}
		case r == ',':
			// A thousands separator has a digit before it and exactly three after.
			if len(cur) > 0 && isASCIIDigit(cur[len(cur)-1]) &&
				isASCIIDigit(at(i+1)) && isASCIIDigit(at(i+2)) && isASCIIDigit(at(i+3)) && !isASCIIDigit(at(i+4)) {
				continue
			}
			flush()
		case r == '%':
			flush()
			words = append(words, "percent")
		default:
			flush()
		}
	}
	flush()
	return words
}

func isASCIIDigit(r rune) bool { return r >= '0' && r <= '9' }

var unitWords = map[string]string{
	"mg": "mg", "mgs": "mg", "milligram": "mg", "milligrams": "mg", "milligramme": "mg", "milligrammes": "mg",
	"ml": "ml", "mls": "ml", "millilitre": "ml", "millilitres": "ml", "milliliter": "ml", "milliliters": "ml",
	"kg": "kg", "kgs": "kg", "kilogram": "kg", "kilograms": "kg", "kilogramme": "kg", "kilogrammes": "kg", "kilo": "kg", "kilos": "kg",
	"mcg": "mcg", "µg": "mcg", "μg": "mcg", "ug": "mcg", "microgram": "mcg", "micrograms": "mcg", "microgramme": "mcg", "microgrammes": "mcg",
}

// splitNumberUnits turns "5mg" into "5", "mg".
func splitNumberUnits(words []string) []string {
	out := make([]string, 0, len(words))
	for _, w := range words {
		i := 0
		for i < len(w) && (isASCIIDigit(rune(w[i])) || (w[i] == '.' && i > 0)) {
			i++
		}
		if i > 0 && i < len(w) {
			if _, ok := unitWords[w[i:]]; ok {
				out = append(out, w[:i], w[i:])
				continue
			}
		}
		out = append(out, w)
	}
	return out
}

func canonicalUnits(words []string) []string {
	out := words[:0]
	for i := 0; i < len(words); i++ {
		w := words[i]
		if u, ok := unitWords[w]; ok {
			w = u
		} else if w == "per" && i+1 < len(words) && words[i+1] == "cent" {
			w = "percent"
			i++
		}
		out = append(out, w)
	}
	return out
}

var fillers = map[string]bool{
	"um": true, "umm": true, "uh": true, "uhh": true, "uhm": true, "erm": true, "er": true,
	"hmm": true, "mm": true, "mmm": true,
}

var numberUnits = map[string]int{
	"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}

var numberTeens = map[string]int{
	"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
	"sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}

var numberTens = map[string]int{
	"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}

var numberScales = map[string]int{"thousand": 1000, "million": 1000000}

// numberParse holds a cardinal number being read word by word.
type numberParse struct {
	total    int    // completed thousands/millions groups
	group    int    // the current group, 0..999
	last     string // "unit", "teen", "tens", "hundred", "scale"
	scaleCap int    // the next scale word must be smaller than this
	started  bool
}

// feed tries to extend the number with w and reports whether it did.
func (p *numberParse) feed(w string) bool {
	if v, ok := numberUnits[w]; ok {
		switch {
		case !p.started:
			p.group = v
		case p.last == "tens" && p.group%10 == 0:
			p.group += v
		case p.last == "hundred" || p.last == "scale":
			if v == 0 {
				return false
			}
			p.group += v
		default:
			return false
		}
		p.last, p.started = "unit", true
		return true
	}
	// Teens and tens start a number or follow a hundred or a scale word ("one hundred
	// twenty", "two thousand fifteen"); only tens may then take a unit.
	for _, class := range []struct {
		words map[string]int
		last  string
	}{{numberTeens, "teen"}, {numberTens, "tens"}} {
		v, ok := class.words[w]
		if !ok {
			continue
		}
		switch {
		case !p.started:
			p.group = v
		case p.last == "hundred" || p.last == "scale":
			p.group += v
		default:
			return false
		}
		p.last, p.started = class.last, true
		return true
	}
	if w == "hundred" {
		if !p.started || p.last == "hundred" || p.last == "scale" || p.group == 0 || p.group >= 100 {
			return false
		}
		p.group *= 100
		p.last = "hundred"
		return true
	}
	if s, ok := numberScales[w]; ok {
		if !p.started || p.last == "scale" || p.group == 0 || (p.scaleCap != 0 && s >= p.scaleCap) {
			return false
		}
		p.total += p.group * s
		p.group = 0
		p.scaleCap = s
		p.last = "scale"
		return true
	}
	return false
}

func (p *numberParse) value() int { return p.total + p.group }

// numbersToDigits rewrites runs of cardinal number words as digits.
func numbersToDigits(words []string) []string {
	out := make([]string, 0, len(words))
	for i := 0; i < len(words); {
		var p numberParse
		j := i
		for j < len(words) {
			w := words[j]
			// "and" belongs to the number only between a hundred/scale and more number words.
			if w == "and" && p.started && (p.last == "hundred" || p.last == "scale") && j+1 < len(words) {
				save := p
				if p.feed(words[j+1]) {
					j += 2
					continue
				}
				p = save
				break
			}
			if !p.feed(w) {
				break
			}
			j++
		}
		if !p.started {
			out = append(out, words[i])
			i++
			continue
		}
		num := strconv.Itoa(p.value())
		// Decimal part: "point" followed by one or more digit words.
		if j+1 < len(words) && words[j] == "point" {
			if _, ok := numberUnits[words[j+1]]; ok {
				var frac strings.Builder
				k := j + 1
				for k < len(words) {
					d, ok := numberUnits[words[k]]
					if !ok {
						break
					}
					frac.WriteByte(byte('0' + d))
					k++
				}
				num += "." + frac.String()
				j = k
			}
		}
		out = append(out, num)
		i = j
	}
	return out
}
