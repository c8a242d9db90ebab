package ct2ggml

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// byteDecoder inverts GPT-2's bytes_to_unicode table, which byte-level BPE vocabularies
// (Whisper's among them) use to spell every byte as a printable character: bytes 33–126,
// 161–172 and 174–255 stand for themselves, the other 68 are shifted to U+0100 onwards in
// byte order.
var byteDecoder = func() map[rune]byte {
	m := make(map[rune]byte, 256)
	next := rune(256)
	for b := 0; b < 256; b++ {
		if (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255) {
			m[rune(b)] = byte(b)
		} else {
			m[next] = byte(b)
			next++
		}
	}
	return m
}()

// tokenBytes turns a vocabulary entry back into the bytes the token stands for.
func tokenBytes(tok string) ([]byte, error) {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := byteDecoder[r]
		if !ok {
			return nil, fmt.Errorf("%w: token %q is not byte-level BPE (character %q)", ErrFormat, tok, r)
		}
		out = append(out, b)
	}
	return out, nil
}

func parseJSONVocabulary(b []byte) ([]string, error) {
	var toks []string
	if err := json.Unmarshal(b, &toks); err != nil {
		return nil, fmt.Errorf("%w: vocabulary.json: %w", ErrFormat, err)
	}
	return toks, nil
}

// replaceInvalidUTF8 re-spells bytes that are not valid UTF-8 as U+FFFD, one per maximal
// ill-formed subpart (Unicode's recommended practice, which Python's
// decode(errors="replace") follows), as the published ggml files spell such tokens.
func replaceInvalidUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		out = utf8.AppendRune(out, utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return out
}

// maximalSubpart is the length of the ill-formed sequence at the start of b that one
// U+FFFD replaces: the longest prefix of a well-formed sequence, or 1.
func maximalSubpart(b []byte) int {
	lead := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		need = 1
	case lead == 0xE0:
		need, lo = 2, 0xA0
	case lead == 0xED:
		need, hi = 2, 0x9F
	case lead >= 0xE1 && lead <= 0xEF:
		need = 2
	case lead == 0xF0:
		need, lo = 3, 0x90
	case lead == 0xF4:
		need, hi = 3, 0x8F
	case lead >= 0xF1 && lead <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 1; k <= need && k < len(b); k++ {
		c := b[k]
		if k == 1 && (c < lo || c > hi) || k > 1 && (c < 0x80 || c > 0xBF) {
			break
		}
		n++
	}
	return n
}

// ggmlVocabularySize is how many tokens whisper.cpp's ggml files list: the 50,257 entries
// of the byte-level BPE table (for English-only models the last is <|endoftext|>); the
// special tokens after them are named by libwhisper itself from n_vocab.
const ggmlVocabularySize = 50257

// ggmlVocabulary returns the byte strings a ggml file lists, checking that the vocabulary
// has Whisper's layout for its size.
// With compat, partial UTF-8 inside a token is replaced as the published files have it;
// otherwise the token's exact bytes are kept, so that characters split across tokens
// (£, é) come out whole when libwhisper joins them.
func ggmlVocabulary(toks []string, nVocab int, compat bool) ([][]byte, error) {
	if len(toks) != nVocab {
		return nil, fmt.Errorf("%w: the vocabulary has %d tokens but the model's embedding has %d rows", ErrFormat, len(toks), nVocab)
	}
	eot := ggmlVocabularySize - 1 // English-only: <|endoftext|> is 50256
	if nVocab >= 51865 {
		eot = ggmlVocabularySize // multilingual: 50257
	}
	if len(toks) <= eot || toks[eot] != "<|endoftext|>" {
		return nil, fmt.Errorf("%w: expected <|endoftext|> at token %d for a vocabulary of %d", ErrFormat, eot, nVocab)
	}
	out := make([][]byte, ggmlVocabularySize)
	for i := range out {
		b, err := tokenBytes(toks[i])
		if err != nil {
			return nil, err
		}
		if compat {
			b = replaceInvalidUTF8(b)
		}
		out[i] = b
	}
	return out, nil
}
