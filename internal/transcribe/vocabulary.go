package transcribe

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// DefaultVocabulary is the built-in hint list of UK clinical terms and drug names. An
// admin may replace it with a file of their own (one term per line, # comments).
//
//go:embed vocabulary-en-gb.txt
var DefaultVocabulary string

// MaxPromptChars bounds the hint so it stays well inside whisper's 224-token prompt.
const MaxPromptChars = 600

// A term is a word or short phrase of letters, digits, hyphens, apostrophes and spaces —
// nothing that could read as an instruction or carry consultation text.
var termPattern = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N}'’&\- ]{0,39}$`)

// ParseVocabulary reads a term list and rejects anything that is not a plain term.
func ParseVocabulary(r io.Reader) ([]string, error) {
	var terms []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if !termPattern.MatchString(t) || len(strings.Fields(t)) > 4 {
			return nil, fmt.Errorf("vocabulary line %d: %q is not a term (letters, digits, hyphens; at most 4 words, 40 characters)", line, t)
		}
		if k := strings.ToLower(t); !seen[k] {
			seen[k] = true
			terms = append(terms, t)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("vocabulary: %w", err)
	}
	return terms, nil
}

// LoadVocabulary reads a term file, or the built-in list when path is empty.
func LoadVocabulary(path string) ([]string, error) {
	if path == "" {
		return ParseVocabulary(strings.NewReader(DefaultVocabulary))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vocabulary: %w", err)
	}
	defer f.Close()
	return ParseVocabulary(f)
}

// BuildPrompt makes the decoder's initial prompt from the terms alone, in list order,
// stopping before MaxPromptChars. It is the only text ever given to the decoder as a
// prompt: consultation text and user free text never are.
func BuildPrompt(terms []string) string {
	if len(terms) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("Glossary:")
	for i, t := range terms {
		sep := " "
		if i > 0 {
			sep = ", "
		}
		if b.Len()+len(sep)+len(t)+1 > MaxPromptChars {
			break
		}
		b.WriteString(sep)
		b.WriteString(t)
	}
	b.WriteString(".")
	return b.String()
}

// MaxContextChars bounds the preceding text given to the decoder (Whisper's own
// transcribe() keeps the last 224 tokens; ~300 characters is about 70 tokens, enough to
// carry a sentence across a pause without steering the decode).
const MaxContextChars = 300

// ContextTail joins a stream's recent committed texts and keeps the last MaxContextChars,
// cut at a word boundary.
func ContextTail(texts []string) string {
	s := strings.Join(texts, " ")
	if len(s) <= MaxContextChars {
		return s
	}
	s = s[len(s)-MaxContextChars:]
	if i := strings.IndexByte(s, ' '); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// decoderPrompt is what the decoder is given before the audio: the vocabulary hint, then
// the preceding text.
func decoderPrompt(vocabulary, context string) string {
	switch {
	case vocabulary == "":
		return context
	case context == "":
		return vocabulary
	}
	return vocabulary + " " + context
}
