package whisper

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// ggmlMagic starts every ggml model file ("ggml" as a little-endian uint32).
const ggmlMagic = 0x67676d6c

// ModelHeader is the fixed header of a whisper ggml model file.
type ModelHeader struct {
	Vocab, AudioCtx, AudioState, AudioHead, AudioLayer int32
	TextCtx, TextState, TextHead, TextLayer, Mels      int32
	FType                                              int32
}

// checkModelHeader reads and sanity-checks a whisper model's header before libwhisper
// sees the file: libwhisper aborts the whole process (GGML_ASSERT) on some malformed
// headers — a VAD model passed as a whisper model, for one — instead of returning an error.
func checkModelHeader(path string) (ModelHeader, error) {
	var h ModelHeader
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	var magic uint32
	if err := binary.Read(f, binary.LittleEndian, &magic); err != nil {
		return h, fmt.Errorf("%s: reading header: %w", path, err)
	}
	if magic != ggmlMagic {
		return h, fmt.Errorf("%s is not a ggml model file (bad magic %#x)", path, magic)
	}
	if err := binary.Read(f, binary.LittleEndian, &h); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return h, fmt.Errorf("%s: header is truncated", path)
		}
		return h, fmt.Errorf("%s: reading header: %w", path, err)
	}
	in := func(v, lo, hi int32) bool { return v >= lo && v <= hi }
	if !in(h.Vocab, 50000, 52000) || h.AudioCtx != 1500 || !in(h.TextCtx, 1, 4096) ||
		!in(h.AudioState, 64, 4096) || !in(h.TextState, 64, 4096) || !in(h.AudioLayer, 1, 64) ||
		!in(h.TextLayer, 1, 64) || (h.Mels != 80 && h.Mels != 128) {
		return h, fmt.Errorf("%s is a ggml file but not a whisper model (is it a VAD model?)", path)
	}
	// ggml's file types that map to a tensor type; the others make libwhisper abort.
	switch ft := h.FType % 1000; {
	case ft == 0, ft == 1, ft == 2, ft == 3, ft >= 7 && ft <= 24:
	default:
		return h, fmt.Errorf("%s: unsupported weight type %d", path, h.FType)
	}
	return h, nil
}
