package ct2ggml

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"scribe/internal/config"
)

// ---- a small CTranslate2 model written by the test ----

type fakeVar struct {
	name  string
	shape []int
	dtype byte
	vals  []float32 // float tensors
	ints  []int64   // integer scalars
}

// writeModelBin writes CTranslate2's model.bin (binary version 6) as its Python
// converter does.
func writeModelBin(vars []fakeVar, aliases [][2]string) []byte {
	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { w(uint16(len(s) + 1)); b.WriteString(s); b.WriteByte(0) }
	w(uint32(6))
	str("WhisperSpec")
	w(uint32(3))
	w(uint32(len(vars)))
	for _, v := range vars {
		str(v.name)
		w(uint8(len(v.shape)))
		for _, d := range v.shape {
			w(uint32(d))
		}
		w(v.dtype)
		var data bytes.Buffer
		switch v.dtype {
		case ct2Float16:
			for _, x := range v.vals {
				binary.Write(&data, binary.LittleEndian, floatToHalf(x))
			}
		case ct2Float32:
			binary.Write(&data, binary.LittleEndian, v.vals)
		case ct2Int16:
			for _, x := range v.ints {
				binary.Write(&data, binary.LittleEndian, int16(x))
			}
		case ct2Int8:
			for _, x := range v.ints {
				data.WriteByte(byte(x))
			}
		}
		w(uint32(data.Len()))
		b.Write(data.Bytes())
	}
	w(uint32(len(aliases)))
	for _, a := range aliases {
		str(a[0])
		str(a[1])
	}
	return b.Bytes()
}

// tinySpec describes a miniature Whisper: width n, layers, a real-sized vocabulary (the
// vocabulary layout is what libwhisper keys on), each value distinct so a mix-up shows.
type tinySpec struct {
	n, layers, textCtx int
	vocab              int
	dtype              byte
	encPositions       bool
	keyBias            float32 // non-zero: a broken model
	untiedProjection   bool
}

func (s tinySpec) build() ([]fakeVar, [][2]string) {
	next := float32(0)
	vals := func(count int) []float32 {
		out := make([]float32, count)
		for i := range out {
			next += 1.0 / 64 // exact in float16 for the sizes used here
			if next > 60000 {
				next = 0
			}
			out[i] = next
		}
		return out
	}
	n := s.n
	var vars []fakeVar
	f := func(name string, shape ...int) {
		c := 1
		for _, d := range shape {
			c *= d
		}
		vars = append(vars, fakeVar{name: name, shape: shape, dtype: s.dtype, vals: vals(c)})
	}
	vars = append(vars, fakeVar{name: "encoder/num_heads", dtype: ct2Int16, ints: []int64{2}},
		fakeVar{name: "decoder/num_heads", dtype: ct2Int16, ints: []int64{2}},
		fakeVar{name: "decoder/scale_embeddings", dtype: ct2Int8, ints: []int64{0}})
	f("encoder/conv1/weight", n, 80, 3)
	f("encoder/conv1/bias", n)
	f("encoder/conv2/weight", n, n, 3)
	f("encoder/conv2/bias", n)
	if s.encPositions {
		f("encoder/position_encodings/encodings", 1500, n)
	}
	layer := func(prefix string, cross bool) {
		f(prefix+"/self_attention/layer_norm/gamma", n)
		f(prefix+"/self_attention/layer_norm/beta", n)
		f(prefix+"/self_attention/linear_0/weight", 3*n, n)
		f(prefix+"/self_attention/linear_0/bias", 3*n)
		bias := vars[len(vars)-1].vals
		for i := n; i < 2*n; i++ {
			bias[i] = s.keyBias
		}
		f(prefix+"/self_attention/linear_1/weight", n, n)
		f(prefix+"/self_attention/linear_1/bias", n)
		if cross {
			f(prefix+"/attention/layer_norm/gamma", n)
			f(prefix+"/attention/layer_norm/beta", n)
			f(prefix+"/attention/linear_0/weight", n, n)
			f(prefix+"/attention/linear_0/bias", n)
			f(prefix+"/attention/linear_1/weight", 2*n, n)
			f(prefix+"/attention/linear_1/bias", 2*n)
			bias := vars[len(vars)-1].vals
			for i := 0; i < n; i++ {
				bias[i] = 0
			}
			f(prefix+"/attention/linear_2/weight", n, n)
			f(prefix+"/attention/linear_2/bias", n)
		}
		f(prefix+"/ffn/layer_norm/gamma", n)
		f(prefix+"/ffn/layer_norm/beta", n)
		f(prefix+"/ffn/linear_0/weight", 4*n, n)
		f(prefix+"/ffn/linear_0/bias", 4*n)
		f(prefix+"/ffn/linear_1/weight", n, 4*n)
		f(prefix+"/ffn/linear_1/bias", n)
	}
	for i := 0; i < s.layers; i++ {
		layer("encoder/layer_"+strconv.Itoa(i), false)
	}
	f("encoder/layer_norm/gamma", n)
	f("encoder/layer_norm/beta", n)
	f("decoder/embeddings/weight", s.vocab, n)
	f("decoder/position_encodings/encodings", s.textCtx, n)
	for i := 0; i < s.layers; i++ {
		layer("decoder/layer_"+strconv.Itoa(i), true)
	}
	f("decoder/layer_norm/gamma", n)
	f("decoder/layer_norm/beta", n)
	aliases := [][2]string{{"decoder/projection/weight", "decoder/embeddings/weight"}}
	if s.untiedProjection {
		f("decoder/projection/weight", s.vocab, n)
		aliases = nil
	}
	return vars, aliases
}

// vocabulary spells an English-only vocabulary of size n in byte-level BPE: the 256 byte
// tokens, some ordinary words and a token holding half of "é", <|endoftext|> at 50256.
func vocabulary(n int) []string {
	enc := map[byte]rune{}
	for r, b := range byteDecoder {
		enc[b] = r
	}
	spell := func(s string) string {
		var out []rune
		for _, b := range []byte(s) {
			out = append(out, enc[b])
		}
		return string(out)
	}
	toks := make([]string, n)
	for i := range toks {
		switch {
		case i < 256:
			toks[i] = string(enc[byte(i)])
		case i == 256:
			toks[i] = spell(" hello")
		case i == 257:
			toks[i] = spell("\xc3") // the first byte of é
		case i == 50256 && n < 51865, i == 50257 && n >= 51865:
			toks[i] = "<|endoftext|>"
		case i > 50257:
			toks[i] = "<|special" + strconv.Itoa(i) + "|>"
		default:
			toks[i] = spell("t" + strconv.Itoa(i))
		}
	}
	return toks
}

func writeModelDir(t *testing.T, s tinySpec) string {
	t.Helper()
	dir := t.TempDir()
	vars, aliases := s.build()
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), writeModelBin(vars, aliases), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vocabulary.txt"), []byte(strings.Join(vocabulary(s.vocab), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ---- a ggml reader, written from the format whisper.cpp's loader expects ----

type ggmlTensor struct {
	dims  []int // innermost first, as stored
	ftype int32
	data  []byte
}

type ggmlFile struct {
	hp      HParams
	mel     []float32
	vocab   [][]byte
	names   []string
	tensors map[string]ggmlTensor
}

func readGGML(t *testing.T, b []byte) ggmlFile {
	t.Helper()
	r := bytes.NewReader(b)
	rd := func(v any) {
		if err := binary.Read(r, binary.LittleEndian, v); err != nil {
			t.Fatalf("reading ggml: %v", err)
		}
	}
	var magic uint32
	rd(&magic)
	if magic != ggmlMagic {
		t.Fatalf("magic %#x", magic)
	}
	var g ggmlFile
	rd(&g.hp)
	var nMel, nFFT int32
	rd(&nMel)
	rd(&nFFT)
	g.mel = make([]float32, nMel*nFFT)
	rd(g.mel)
	var nv int32
	rd(&nv)
	for i := int32(0); i < nv; i++ {
		var l int32
		rd(&l)
		tok := make([]byte, l)
		rd(tok)
		g.vocab = append(g.vocab, tok)
	}
	g.tensors = map[string]ggmlTensor{}
	for r.Len() > 0 {
		var h [3]int32
		rd(&h)
		var tt ggmlTensor
		tt.ftype = h[2]
		count := 1
		for i := int32(0); i < h[0]; i++ {
			var d int32
			rd(&d)
			tt.dims = append(tt.dims, int(d))
			count *= int(d)
		}
		name := make([]byte, h[1])
		rd(name)
		es := 4
		if tt.ftype == 1 {
			es = 2
		}
		tt.data = make([]byte, count*es)
		rd(tt.data)
		g.names = append(g.names, string(name))
		g.tensors[string(name)] = tt
	}
	return g
}

func (tt ggmlTensor) floats() []float32 {
	var out []float32
	if tt.ftype == 1 {
		for i := 0; i < len(tt.data); i += 2 {
			out = append(out, halfToFloat(binary.LittleEndian.Uint16(tt.data[i:])))
		}
		return out
	}
	for i := 0; i < len(tt.data); i += 4 {
		out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(tt.data[i:])))
	}
	return out
}

func convertDir(t *testing.T, dir string, opt Options) (ggmlFile, Info, error) {
	t.Helper()
	src, err := FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	info, err := Convert(src, &out, opt)
	if err != nil {
		return ggmlFile{}, info, err
	}
	if info.Bytes != int64(out.Len()) {
		t.Errorf("Info.Bytes %d, wrote %d", info.Bytes, out.Len())
	}
	return readGGML(t, out.Bytes()), info, nil
}

func sourceValues(t *testing.T, vars []fakeVar, name string) []float32 {
	t.Helper()
	for _, v := range vars {
		if v.name == name {
			// Values as the file holds them (rounded through float16 when it is float16).
			out := make([]float32, len(v.vals))
			for i, x := range v.vals {
				if v.dtype == ct2Float16 {
					x = halfToFloat(floatToHalf(x))
				}
				out[i] = x
			}
			return out
		}
	}
	t.Fatalf("no variable %s", name)
	return nil
}

func TestConvertMapsEveryTensorAsWhisperCppExpects(t *testing.T) {
	spec := tinySpec{n: 8, layers: 2, textCtx: 6, vocab: 51864, dtype: ct2Float16, encPositions: true}
	dir := writeModelDir(t, spec)
	vars, _ := spec.build()
	g, info, err := convertDir(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := HParams{Vocab: 51864, AudioCtx: 1500, AudioState: 8, AudioHead: 2, AudioLayer: 2,
		TextCtx: 6, TextState: 8, TextHead: 2, TextLayer: 2, Mels: 80, FType: 1}
	if g.hp != want || info.HParams != want {
		t.Fatalf("hparams %+v (info %+v), want %+v", g.hp, info.HParams, want)
	}
	// OpenAI's checkpoint order, as whisper.cpp's converter writes it.
	wantNames := []string{"encoder.positional_embedding", "encoder.conv1.weight", "encoder.conv1.bias",
		"encoder.conv2.weight", "encoder.conv2.bias"}
	block := func(p string, cross bool) {
		wantNames = append(wantNames, p+".attn.query.weight", p+".attn.query.bias", p+".attn.key.weight",
			p+".attn.value.weight", p+".attn.value.bias", p+".attn.out.weight", p+".attn.out.bias",
			p+".attn_ln.weight", p+".attn_ln.bias")
		if cross {
			wantNames = append(wantNames, p+".cross_attn.query.weight", p+".cross_attn.query.bias",
				p+".cross_attn.key.weight", p+".cross_attn.value.weight", p+".cross_attn.value.bias",
				p+".cross_attn.out.weight", p+".cross_attn.out.bias", p+".cross_attn_ln.weight", p+".cross_attn_ln.bias")
		}
		wantNames = append(wantNames, p+".mlp.0.weight", p+".mlp.0.bias", p+".mlp.2.weight", p+".mlp.2.bias",
			p+".mlp_ln.weight", p+".mlp_ln.bias")
	}
	block("encoder.blocks.0", false)
	block("encoder.blocks.1", false)
	wantNames = append(wantNames, "encoder.ln_post.weight", "encoder.ln_post.bias",
		"decoder.positional_embedding", "decoder.token_embedding.weight")
	block("decoder.blocks.0", true)
	block("decoder.blocks.1", true)
	wantNames = append(wantNames, "decoder.ln.weight", "decoder.ln.bias")
	if strings.Join(g.names, "\n") != strings.Join(wantNames, "\n") {
		t.Fatalf("tensor names/order:\n got %v\nwant %v", g.names, wantNames)
	}

	n := 8
	check := func(name string, dims []int, ftype int32, want []float32) {
		t.Helper()
		tt := g.tensors[name]
		if !equalInts(tt.dims, dims) || tt.ftype != ftype {
			t.Errorf("%s: dims %v ftype %d, want %v ftype %d", name, tt.dims, tt.ftype, dims, ftype)
		}
		if got := tt.floats(); !equalFloats(got, want) {
			t.Errorf("%s: values differ (first %v, want %v)", name, got[:min(4, len(got))], want[:min(4, len(want))])
		}
	}
	qkv := sourceValues(t, vars, "decoder/layer_1/self_attention/linear_0/weight")
	qkvBias := sourceValues(t, vars, "decoder/layer_1/self_attention/linear_0/bias")
	check("decoder.blocks.1.attn.query.weight", []int{n, n}, 1, qkv[:n*n])
	check("decoder.blocks.1.attn.key.weight", []int{n, n}, 1, qkv[n*n:2*n*n])
	check("decoder.blocks.1.attn.value.weight", []int{n, n}, 1, qkv[2*n*n:])
	check("decoder.blocks.1.attn.query.bias", []int{n}, 0, qkvBias[:n])
	check("decoder.blocks.1.attn.value.bias", []int{n}, 0, qkvBias[2*n:])
	kv := sourceValues(t, vars, "decoder/layer_0/attention/linear_1/weight")
	kvBias := sourceValues(t, vars, "decoder/layer_0/attention/linear_1/bias")
	check("decoder.blocks.0.cross_attn.key.weight", []int{n, n}, 1, kv[:n*n])
	check("decoder.blocks.0.cross_attn.value.weight", []int{n, n}, 1, kv[n*n:])
	check("decoder.blocks.0.cross_attn.value.bias", []int{n}, 0, kvBias[n:])
	check("encoder.conv1.weight", []int{3, 80, n}, 1, sourceValues(t, vars, "encoder/conv1/weight"))
	check("encoder.conv1.bias", []int{1, n}, 0, sourceValues(t, vars, "encoder/conv1/bias"))
	check("encoder.positional_embedding", []int{n, 1500}, 0, sourceValues(t, vars, "encoder/position_encodings/encodings"))
	check("decoder.positional_embedding", []int{n, 6}, 0, sourceValues(t, vars, "decoder/position_encodings/encodings"))
	check("decoder.token_embedding.weight", []int{n, 51864}, 1, sourceValues(t, vars, "decoder/embeddings/weight"))
	check("encoder.blocks.1.mlp.0.weight", []int{n, 4 * n}, 1, sourceValues(t, vars, "encoder/layer_1/ffn/linear_0/weight"))
	check("decoder.ln.weight", []int{n}, 0, sourceValues(t, vars, "decoder/layer_norm/gamma"))

	// Vocabulary: 50,257 byte strings, exact bytes by default.
	if len(g.vocab) != 50257 || string(g.vocab[256]) != " hello" || string(g.vocab[50256]) != "<|endoftext|>" ||
		!bytes.Equal(g.vocab[257], []byte{0xc3}) || !bytes.Equal(g.vocab[10], []byte{10}) {
		t.Errorf("vocabulary: %d tokens, 256=%q 257=%q 10=%q eot=%q", len(g.vocab), g.vocab[256], g.vocab[257], g.vocab[10], g.vocab[50256])
	}
}

func TestConvertOptions(t *testing.T) {
	spec := tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float32, encPositions: false}
	dir := writeModelDir(t, spec)
	vars, _ := spec.build()

	// Float32 source, float16 output: rounded; missing encoder positions generated.
	g, info, err := convertDir(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Generated) != 1 || info.Generated[0] != "encoder.positional_embedding" {
		t.Errorf("generated %v", info.Generated)
	}
	if got := g.tensors["encoder.positional_embedding"].floats(); !equalFloats(got, sinusoids(1500, 8)) {
		t.Error("generated encoder positions are not Whisper's sinusoids")
	}
	w := g.tensors["encoder.blocks.0.mlp.2.weight"]
	if w.ftype != 1 {
		t.Errorf("float16 output wrote ftype %d", w.ftype)
	}

	// -f32: every tensor float32, values exact.
	g32, info32, err := convertDir(t, dir, Options{F32: true})
	if err != nil {
		t.Fatal(err)
	}
	if info32.FType != 0 || g32.hp.FType != 0 {
		t.Errorf("f32 hparams ftype %d", g32.hp.FType)
	}
	for name, tt := range g32.tensors {
		if tt.ftype != 0 {
			t.Errorf("%s: ftype %d in an f32 conversion", name, tt.ftype)
		}
	}
	if got := g32.tensors["encoder.blocks.0.mlp.2.weight"].floats(); !equalFloats(got, sourceValues(t, vars, "encoder/layer_0/ffn/linear_1/weight")) {
		t.Error("f32 conversion changed values")
	}

	// Compatible vocabulary: a partial UTF-8 token becomes U+FFFD, as whisper.cpp's files have it.
	gc, _, err := convertDir(t, dir, Options{CompatVocabulary: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(gc.vocab[257]) != "\uFFFD" || string(gc.vocab[256]) != " hello" {
		t.Errorf("compat vocabulary: 257=%q 256=%q", gc.vocab[257], gc.vocab[256])
	}
}

func TestConvertMultilingualVocabulary(t *testing.T) {
	dir := writeModelDir(t, tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51865, dtype: ct2Float16, encPositions: true})
	g, info, err := convertDir(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Multilingual || len(g.vocab) != 50257 || g.hp.Vocab != 51865 {
		t.Errorf("multilingual %v, %d tokens, n_vocab %d", info.Multilingual, len(g.vocab), g.hp.Vocab)
	}
}

func TestConvertRefusesWhatWhisperCppCannotHold(t *testing.T) {
	cases := []struct {
		name string
		spec tinySpec
		edit func(dir string)
		want string
	}{
		{"key bias", tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true, keyBias: 0.5}, nil, "key bias"},
		{"untied projection", tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true, untiedProjection: true}, nil, "not tied"},
		{"vocabulary size", tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true}, func(dir string) {
			os.WriteFile(filepath.Join(dir, "vocabulary.txt"), []byte("a\nb\n"), 0o644)
		}, "vocabulary has 2 tokens"},
		{"no vocabulary", tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true}, func(dir string) {
			os.Remove(filepath.Join(dir, "vocabulary.txt"))
		}, "neither vocabulary.txt nor vocabulary.json"},
		{"truncated", tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true}, func(dir string) {
			p := filepath.Join(dir, "model.bin")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, "unexpected EOF"},
		{"split, part missing", tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true}, func(dir string) {
			p := filepath.Join(dir, "model.bin")
			b, _ := os.ReadFile(p)
			os.WriteFile(p+".part1", b[:100], 0o644)
			os.WriteFile(p+".part3", b[100:], 0o644)
			os.Remove(p)
		}, "model.bin.part2 is missing"},
		{"not a model", tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true}, func(dir string) {
			os.WriteFile(filepath.Join(dir, "model.bin"), []byte("PK\x03\x04 this is a zip, not a model"), 0o644)
		}, "binary version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeModelDir(t, c.spec)
			if c.edit != nil {
				c.edit(dir)
			}
			_, _, err := convertDir(t, dir, Options{})
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrFormat mentioning %q", err, c.want)
			}
		})
	}
}

func TestInt8ModelGetsAClearError(t *testing.T) {
	spec := tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true}
	vars, aliases := spec.build()
	for i := range vars {
		if vars[i].name == "encoder/conv2/weight" {
			vars[i].dtype = ct2Int8
			vars[i].ints = make([]int64, len(vars[i].vals))
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "model.bin"), writeModelBin(vars, aliases), 0o644)
	os.WriteFile(filepath.Join(dir, "vocabulary.txt"), []byte(strings.Join(vocabulary(51864), "\n")), 0o644)
	_, _, err := convertDir(t, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "quantization float16") {
		t.Fatalf("err = %v, want advice to re-export in float16", err)
	}
}

func TestConvertFileLeavesNothingOnFailure(t *testing.T) {
	dir := writeModelDir(t, tinySpec{n: 8, layers: 1, textCtx: 4, vocab: 51864, dtype: ct2Float16, encPositions: true, keyBias: 1})
	src, err := FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "model.bin")
	if _, err := ConvertFile(src, out, Options{}); err == nil {
		t.Fatal("expected an error")
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("left behind %v", entries)
	}
}

func TestHalfFloatRoundTripsEveryValue(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := halfToFloat(uint16(h))
		back := floatToHalf(f)
		if f != f { // NaN: any NaN back is fine
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x → %g → %#04x", h, f, back)
		}
	}
	// Ties go to even, as numpy's float16 conversion does.
	for _, c := range []struct {
		f    float32
		want uint16
	}{{1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02}, {65520, 0x7c00}, {1e-8, 0}, {-2, 0xc000}, {5.960464477539063e-08, 1}} {
		if got := floatToHalf(c.f); got != c.want {
			t.Errorf("floatToHalf(%g) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
}

func TestReplaceInvalidUTF8LikePython(t *testing.T) {
	// Expected values are Python's bytes.decode("utf-8", errors="replace").encode().
	for _, c := range []struct{ in, want string }{
		{"abc", "abc"},
		{"\xc3", "\uFFFD"},
		{"\xe2\x80", "\uFFFD"},                 // one maximal subpart
		{"\xe2\x80x", "\uFFFDx"},               // cut short by an ASCII byte
		{"\x80\x80", "\uFFFD\uFFFD"},           // lone continuation bytes: one each
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogates: ED then A0 is ill-formed
		{"\xf0\x9f\x98", "\uFFFD"},             // three of a four-byte sequence
		{"\xc3\xa9", "é"},
	} {
		if got := string(replaceInvalidUTF8([]byte(c.in))); got != c.want {
			t.Errorf("%q → %q, want %q", c.in, got, c.want)
		}
	}
}

// whisper.cpp's test model of the same shape carries the reference mel filter bank.
func TestMelFiltersMatchWhisperCppBitForBit(t *testing.T) {
	p := config.SharedTestModel("for-tests-ggml-tiny.en.bin")
	if p == "" {
		t.Skip("../shared/models/for-tests-ggml-tiny.en.bin not found")
	}
	ref, err := readMelFilters(p, 80)
	if err != nil {
		t.Fatal(err)
	}
	got := melFilters(80, 400, 16000)
	diff := 0
	for i := range ref {
		if math.Float32bits(ref[i]) != math.Float32bits(got[i]) {
			diff++
		}
	}
	if diff != 0 {
		t.Errorf("%d of %d mel filter values differ from whisper.cpp's", diff, len(ref))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func FuzzReadModelBin(f *testing.F) {
	spec := tinySpec{n: 4, layers: 1, textCtx: 2, vocab: 300, dtype: ct2Float16, encPositions: false}
	vars, aliases := spec.build()
	f.Add(writeModelBin(vars[:6], aliases))
	f.Add([]byte{6, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readModelBin(bytes.NewReader(b))
		if err == nil {
			for _, v := range m.vars {
				if es, _ := dtypeSize(v.dtype); len(v.data) != v.numel()*es {
					t.Fatalf("%s: %d bytes for shape %v", v.name, len(v.data), v.shape)
				}
			}
		}
	})
}
