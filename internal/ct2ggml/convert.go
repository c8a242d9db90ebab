package ct2ggml

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
)

// ggmlMagic opens every whisper.cpp model file ("ggml" as a little-endian uint32).
const ggmlMagic = 0x67676d6c

// Options tune a conversion.
type Options struct {
	// F32 writes every tensor as float32 (a file twice the size; no accuracy gain for a
	// model published in float16).
	F32 bool
	// MelFrom names an existing ggml whisper model with the same number of mel bands whose
	// filter bank is copied instead of computed (e.g. whisper.cpp's test model of the same
	// shape). Empty: computed, as librosa does.
	MelFrom string
	// CompatVocabulary spells tokens holding part of a UTF-8 character with U+FFFD, as the
	// ggml files published by whisper.cpp do (byte-identical output); by default the exact
	// bytes are kept, which joins split characters correctly.
	CompatVocabulary bool
}

// HParams are the eleven integers that open a ggml whisper file.
type HParams struct {
	Vocab, AudioCtx, AudioState, AudioHead, AudioLayer   int32
	TextCtx, TextState, TextHead, TextLayer, Mels, FType int32
}

// Info describes a finished conversion.
type Info struct {
	HParams
	Tensors      int
	Bytes        int64
	MelSource    string // "computed" or the file the filters came from
	Generated    []string
	Multilingual bool
}

// Convert reads the CTranslate2 Whisper model in src and writes it to w in ggml format.
func Convert(src *Source, w io.Writer, opt Options) (Info, error) {
	rc, err := src.openModelBin()
	if err != nil {
		return Info{}, err
	}
	m, err := readModelBin(rc)
	rc.Close()
	if err != nil {
		return Info{}, err
	}
	if m.spec != "" && m.spec != "WhisperSpec" {
		return Info{}, fmt.Errorf("%w: %s is a %s model, not Whisper", ErrFormat, src, m.spec)
	}
	plan, info, err := planTensors(m)
	if err != nil {
		return Info{}, err
	}
	if opt.F32 {
		info.FType = 0
	}
	toks, err := src.readVocabulary()
	if err != nil {
		return Info{}, err
	}
	vocab, err := ggmlVocabulary(toks, int(info.Vocab), opt.CompatVocabulary)
	if err != nil {
		return Info{}, err
	}
	info.Multilingual = info.Vocab >= 51865

	const nFFT = 400
	mel := melFilters(int(info.Mels), nFFT, 16000)
	info.MelSource = "computed"
	if opt.MelFrom != "" {
		if mel, err = readMelFilters(opt.MelFrom, int(info.Mels)); err != nil {
			return Info{}, err
		}
		info.MelSource = opt.MelFrom
	}

	cw := &countingWriter{w: bufio.NewWriterSize(w, 1<<20)}
	put := func(v any) {
		if cw.err == nil {
			cw.err = binary.Write(cw, binary.LittleEndian, v)
		}
	}
	put(uint32(ggmlMagic))
	put(info.HParams)
	put(int32(info.Mels))
	put(int32(1 + nFFT/2))
	put(mel)
	put(int32(len(vocab)))
	for _, t := range vocab {
		put(int32(len(t)))
		put(t)
	}
	for _, t := range plan {
		if err := t.write(cw, info.FType == 1); err != nil {
			return Info{}, err
		}
		info.Tensors++
	}
	if cw.err == nil {
		cw.err = cw.w.(*bufio.Writer).Flush()
	}
	if cw.err != nil {
		return Info{}, fmt.Errorf("ct2ggml: writing: %w", cw.err)
	}
	info.Bytes = cw.n
	return info, nil
}

// ConvertFile converts src into the file out, atomically: a failed conversion leaves
// no half-written model behind.
func ConvertFile(src *Source, out string, opt Options) (Info, error) {
	tmp := out + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return Info{}, fmt.Errorf("ct2ggml: %w", err)
	}
	info, err := Convert(src, f, opt)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		os.Remove(tmp)
		return Info{}, err
	}
	return info, nil
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// tensorPlan is one ggml tensor: where its values come from in the CTranslate2 model.
type tensorPlan struct {
	name   string
	src    *variable
	values []float32 // set instead of src for generated tensors
	rows   [2]int    // row range of src (fused projections); {0,0} = all
	shape  []int     // ggml shape, outermost first (as PyTorch writes it)
	f32    bool      // always float32 (1-D tensors, conv biases, positional embeddings)
}

// write emits the tensor's header (dims innermost first, as ggml reads them) and data.
func (t tensorPlan) write(cw *countingWriter, f16 bool) error {
	half := f16 && !t.f32
	ftype := int32(0)
	if half {
		ftype = 1
	}
	hdr := []int32{int32(len(t.shape)), int32(len(t.name)), ftype}
	for i := len(t.shape) - 1; i >= 0; i-- {
		hdr = append(hdr, int32(t.shape[i]))
	}
	if cw.err == nil {
		cw.err = binary.Write(cw, binary.LittleEndian, hdr)
	}
	if cw.err == nil {
		_, cw.err = io.WriteString(cw, t.name)
	}
	if cw.err != nil {
		return cw.err
	}
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	// Fast path: float16 source rows copied as they are (exact).
	if half && t.values == nil && t.src.dtype == ct2Float16 {
		data := t.rowBytes(2)
		if len(data) != 2*n {
			return fmt.Errorf("ct2ggml: %s: %d values for shape %v", t.name, len(data)/2, t.shape)
		}
		_, cw.err = cw.Write(data)
		return cw.err
	}
	vals := t.values
	if vals == nil {
		all, err := t.src.float32s()
		if err != nil {
			return err
		}
		vals = all
		if t.rows != [2]int{} {
			cols := t.src.numel() / t.src.shape[0]
			vals = all[t.rows[0]*cols : t.rows[1]*cols]
		}
	}
	if len(vals) != n {
		return fmt.Errorf("ct2ggml: %s: %d values for shape %v", t.name, len(vals), t.shape)
	}
	buf := make([]byte, 0, 4*n)
	for _, v := range vals {
		if half {
			buf = binary.LittleEndian.AppendUint16(buf, floatToHalf(v))
		} else {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	_, cw.err = cw.Write(buf)
	return cw.err
}

func (t tensorPlan) rowBytes(es int) []byte {
	if t.rows == [2]int{} {
		return t.src.data
	}
	cols := t.src.numel() / t.src.shape[0]
	return t.src.data[t.rows[0]*cols*es : t.rows[1]*cols*es]
}

// planTensors maps CTranslate2's Whisper variables onto whisper.cpp's tensor names, in the
// order of OpenAI's checkpoints (the order whisper.cpp's own converter writes them):
//   - self-attention q/k/v are one fused matrix (linear_0) and cross-attention k/v another
//     (attention/linear_1): they are split by rows; Whisper's key projections have no bias,
//     so the fused bias's key third must be zero and is dropped;
//   - the output projection is tied to the token embedding (an alias in model.bin) and
//     ggml has no tensor for it;
//   - encoder positions are Whisper's fixed sinusoids: taken from the model when stored,
//     generated otherwise;
//   - conv biases become [n,1] and 1-D tensors and positions stay float32, as libwhisper expects.
func planTensors(m *ct2Model) ([]tensorPlan, Info, error) {
	var info Info
	get := func(name string) (*variable, error) {
		v, ok := m.vars[name]
		if !ok {
			return nil, fmt.Errorf("%w: no variable %s (is this a Whisper model?)", ErrFormat, name)
		}
		return v, nil
	}
	var errs []error
	must := func(name string) *variable {
		v, err := get(name)
		if err != nil {
			errs = append(errs, err)
			return &variable{name: name}
		}
		return v
	}
	scalar := func(name string) int32 {
		v := must(name)
		switch {
		case v.dtype == ct2Int16 && len(v.data) == 2:
			return int32(int16(binary.LittleEndian.Uint16(v.data)))
		case v.dtype == ct2Int32 && len(v.data) == 4:
			return int32(binary.LittleEndian.Uint32(v.data))
		case v.dtype == ct2Int8 && len(v.data) == 1:
			return int32(int8(v.data[0]))
		}
		errs = append(errs, fmt.Errorf("%w: %s is not an integer scalar", ErrFormat, name))
		return 0
	}
	countLayers := func(prefix string) int32 {
		n := int32(0)
		for {
			if _, ok := m.vars[prefix+strconv.Itoa(int(n))+"/ffn/linear_0/weight"]; !ok {
				return n
			}
			n++
		}
	}

	emb := must("decoder/embeddings/weight")
	conv1 := must("encoder/conv1/weight")
	decPos := must("decoder/position_encodings/encodings")
	if len(errs) > 0 {
		return nil, info, errs[0]
	}
	if len(emb.shape) != 2 || len(conv1.shape) != 3 || len(decPos.shape) != 2 {
		return nil, info, fmt.Errorf("%w: unexpected embedding/conv shapes %v %v", ErrFormat, emb.shape, conv1.shape)
	}
	n := conv1.shape[0]
	info.HParams = HParams{
		Vocab: int32(emb.shape[0]), AudioCtx: 1500, AudioState: int32(n),
		AudioHead: scalar("encoder/num_heads"), AudioLayer: countLayers("encoder/layer_"),
		TextCtx: int32(decPos.shape[0]), TextState: int32(emb.shape[1]),
		TextHead: scalar("decoder/num_heads"), TextLayer: countLayers("decoder/layer_"),
		Mels: int32(conv1.shape[1]), FType: 1,
	}
	if proj, ok := m.vars["decoder/projection/weight"]; ok && proj != emb {
		return nil, info, fmt.Errorf("%w: the output projection is not tied to the token embedding; whisper.cpp cannot hold a separate one", ErrFormat)
	}
	if info.AudioLayer == 0 || info.TextLayer == 0 || int(info.TextState) != n {
		return nil, info, fmt.Errorf("%w: %d encoder and %d decoder layers, widths %d/%d", ErrFormat, info.AudioLayer, info.TextLayer, n, info.TextState)
	}

	var plan []tensorPlan
	add := func(name string, v *variable, f32 bool) {
		plan = append(plan, tensorPlan{name: name, src: v, shape: v.shape, f32: f32 || len(v.shape) < 2})
	}
	rows := func(name string, v *variable, from, to int) {
		shape := append([]int{to - from}, v.shape[1:]...)
		plan = append(plan, tensorPlan{name: name, src: v, rows: [2]int{from, to}, shape: shape, f32: len(shape) < 2})
	}
	linear := func(dst, src string, bias bool) {
		add(dst+".weight", must(src+"/weight"), false)
		if bias {
			add(dst+".bias", must(src+"/bias"), false)
		}
	}
	norm := func(dst, src string) {
		add(dst+".weight", must(src+"/gamma"), false)
		add(dst+".bias", must(src+"/beta"), false)
	}
	// fused splits a fused projection's weight and bias into named parts of n rows each;
	// an empty name is a bias-less key whose bias rows must be zero.
	fused := func(src string, parts ...string) {
		w, b := must(src+"/weight"), must(src+"/bias")
		if len(w.shape) != 2 || w.shape[0] != n*len(parts) || len(b.shape) != 1 || b.shape[0] != n*len(parts) {
			errs = append(errs, fmt.Errorf("%w: %s has shape %v, expected %d×%d", ErrFormat, src, w.shape, n*len(parts), n))
			return
		}
		for i, p := range parts {
			rows(p+".weight", w, i*n, (i+1)*n)
			if p[len(p)-4:] == ".key" {
				if nz := nonZero(b, i*n, (i+1)*n); nz != 0 {
					errs = append(errs, fmt.Errorf("%w: %s: the key bias has %d non-zero values; Whisper's key projection has none", ErrFormat, src, nz))
				}
				continue
			}
			rows(p+".bias", b, i*n, (i+1)*n)
		}
	}
	convBias := func(dst, src string) {
		v := must(src)
		plan = append(plan, tensorPlan{name: dst, src: v, shape: []int{v.numel(), 1}, f32: true})
	}

	if encPos, ok := m.vars["encoder/position_encodings/encodings"]; ok {
		add("encoder.positional_embedding", encPos, true)
	} else {
		plan = append(plan, tensorPlan{name: "encoder.positional_embedding", values: sinusoids(1500, n), shape: []int{1500, n}, f32: true})
		info.Generated = append(info.Generated, "encoder.positional_embedding")
	}
	add("encoder.conv1.weight", conv1, false)
	convBias("encoder.conv1.bias", "encoder/conv1/bias")
	add("encoder.conv2.weight", must("encoder/conv2/weight"), false)
	convBias("encoder.conv2.bias", "encoder/conv2/bias")
	block := func(dst, src string, cross bool) {
		fused(src+"/self_attention/linear_0", dst+".attn.query", dst+".attn.key", dst+".attn.value")
		linear(dst+".attn.out", src+"/self_attention/linear_1", true)
		norm(dst+".attn_ln", src+"/self_attention/layer_norm")
		if cross {
			linear(dst+".cross_attn.query", src+"/attention/linear_0", true)
			fused(src+"/attention/linear_1", dst+".cross_attn.key", dst+".cross_attn.value")
			linear(dst+".cross_attn.out", src+"/attention/linear_2", true)
			norm(dst+".cross_attn_ln", src+"/attention/layer_norm")
		}
		linear(dst+".mlp.0", src+"/ffn/linear_0", true)
		linear(dst+".mlp.2", src+"/ffn/linear_1", true)
		norm(dst+".mlp_ln", src+"/ffn/layer_norm")
	}
	for i := 0; i < int(info.AudioLayer); i++ {
		block("encoder.blocks."+strconv.Itoa(i), "encoder/layer_"+strconv.Itoa(i), false)
	}
	norm("encoder.ln_post", "encoder/layer_norm")
	add("decoder.positional_embedding", decPos, true)
	add("decoder.token_embedding.weight", emb, false)
	for i := 0; i < int(info.TextLayer); i++ {
		block("decoder.blocks."+strconv.Itoa(i), "decoder/layer_"+strconv.Itoa(i), true)
	}
	norm("decoder.ln", "decoder/layer_norm")
	if len(errs) > 0 {
		return nil, info, errs[0]
	}
	return plan, info, nil
}

// nonZero counts the non-zero values of v[from:to] (a 1-D float tensor).
func nonZero(v *variable, from, to int) int {
	vals, err := v.float32s()
	if err != nil {
		return to - from
	}
	nz := 0
	for _, x := range vals[from:to] {
		if x != 0 {
			nz++
		}
	}
	return nz
}

// readMelFilters reads the mel filter bank out of an existing ggml whisper model.
func readMelFilters(path string, nMels int) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ct2ggml: mel filters: %w", err)
	}
	defer f.Close()
	var hdr struct {
		Magic uint32
		HParams
		NMel, NFFT int32
	}
	if err := binary.Read(f, binary.LittleEndian, &hdr); err != nil {
		return nil, fmt.Errorf("ct2ggml: mel filters from %s: %w", path, err)
	}
	if hdr.Magic != ggmlMagic || int(hdr.NMel) != nMels || hdr.NFFT != 201 {
		return nil, fmt.Errorf("%w: %s is not a ggml whisper model with %d mel bands", ErrFormat, path, nMels)
	}
	mel := make([]float32, int(hdr.NMel)*int(hdr.NFFT))
	if err := binary.Read(f, binary.LittleEndian, mel); err != nil {
		return nil, fmt.Errorf("ct2ggml: mel filters from %s: %w", path, err)
	}
	return mel, nil
}
