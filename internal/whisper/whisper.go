// Package whisper is scribe's one cgo package: it binds the parts of Debian's libwhisper
// that the upstream Go bindings do not expose — a model loaded once with one decoder
// state per stream, Silero VAD with streaming state, no_speech_prob and token
// log-probabilities, and cancellation through whisper's abort callback — and frees every
// C string it allocates.
//
// Everything above this package works with plain Go types, so it can be tested without cgo.
package whisper

/*
#cgo pkg-config: whisper
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"scribe/internal/domain"
)

// SampleRate is the only rate libwhisper accepts.
const SampleRate = C.WHISPER_SAMPLE_RATE

var backendsOnce sync.Once

// initLibrary loads ggml's CPU backends (Debian builds them as run-time modules: without
// this whisper aborts with GGML_ASSERT(device)) and quietens library logging.
func initLibrary() {
	backendsOnce.Do(func() {
		verbose := 0
		if os.Getenv("SCRIBE_WHISPER_LOG") == "debug" {
			verbose = 1
		}
		C.scribe_init_logging(C.int(verbose))
		C.ggml_backend_load_all()
	})
}

// ErrModel is returned when a file cannot be loaded as a model.
var ErrModel = errors.New("whisper: cannot load model")

// Model is a whisper model loaded once; any number of States share its weights.
type Model struct {
	path string
	ctx  *C.struct_whisper_context
	dtw  bool // tokens carry DTW alignment (ModelOptions.DTW)

	mu     sync.Mutex
	closed bool
	states int
}

// LoadModel loads a ggml whisper model (e.g. ggml-base.en.bin) without a decoder state.
func LoadModel(path string) (*Model, error) { return LoadModelWith(path, ModelOptions{}) }

// ModelOptions are choices fixed when a model is loaded.
type ModelOptions struct {
	// DTW aligns each decoded token to the audio through the cross-attention of the
	// model's alignment heads (DecodedToken.At). Only the official model sizes have known
	// heads; other models load without it (Model.DTW says which).
	DTW bool
}

// LoadModelWith loads a model with the given options.
func LoadModelWith(path string, opts ModelOptions) (*Model, error) {
	if err := checkReadable(path); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModel, err)
	}
	h, err := checkModelHeader(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModel, err)
	}
	initLibrary()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	params := C.whisper_context_default_params()
	params.use_gpu = false
	preset, known := alignmentHeads(h)
	opts.DTW = opts.DTW && known
	if opts.DTW {
		params.dtw_token_timestamps = true
		params.dtw_aheads_preset = preset
		params.flash_attn = false // DTW reads the attention weights, which flash attention never stores
	}
	ctx := C.whisper_init_from_file_with_params_no_state(cpath, params)
	if ctx == nil {
		return nil, fmt.Errorf("%w: %s is not a whisper ggml model (or is damaged)", ErrModel, path)
	}
	return &Model{path: path, ctx: ctx, dtw: opts.DTW}, nil
}

// alignmentHeads is libwhisper's preset of cross-attention heads that follow the audio,
// for the official model sizes (told apart by their text decoder's shape and vocabulary).
func alignmentHeads(h ModelHeader) (C.enum_whisper_alignment_heads_preset, bool) {
	english := h.Vocab == 51864
	pick := func(en, multi C.enum_whisper_alignment_heads_preset) (C.enum_whisper_alignment_heads_preset, bool) {
		if english {
			return en, true
		}
		return multi, true
	}
	switch {
	case h.TextLayer == 4 && h.TextState == 384:
		return pick(C.WHISPER_AHEADS_TINY_EN, C.WHISPER_AHEADS_TINY)
	case h.TextLayer == 6 && h.TextState == 512:
		return pick(C.WHISPER_AHEADS_BASE_EN, C.WHISPER_AHEADS_BASE)
	case h.TextLayer == 12 && h.TextState == 768:
		return pick(C.WHISPER_AHEADS_SMALL_EN, C.WHISPER_AHEADS_SMALL)
	case h.TextLayer == 24 && h.TextState == 1024:
		return pick(C.WHISPER_AHEADS_MEDIUM_EN, C.WHISPER_AHEADS_MEDIUM)
	case h.TextLayer == 4 && h.TextState == 1280:
		return C.WHISPER_AHEADS_LARGE_V3_TURBO, !english
	}
	return C.WHISPER_AHEADS_NONE, false
}

func checkReadable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	if fi.Size() < 1024 {
		return fmt.Errorf("%s is too small (%d bytes) to be a model", path, fi.Size())
	}
	return nil
}

// DTW reports whether decoded tokens carry their DTW alignment (DecodedToken.At).
func (m *Model) DTW() bool { return m.dtw }

// Path is the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// Info describes a loaded model.
type Info struct {
	Type         string `json:"type"`
	Multilingual bool   `json:"multilingual"`
	Vocab        int    `json:"vocab"`
	AudioCtx     int    `json:"audio_ctx"`
	TextCtx      int    `json:"text_ctx"`
}

// Info reports the model's type and sizes.
func (m *Model) Info() Info {
	return Info{
		Type:         C.GoString(C.whisper_model_type_readable(m.ctx)),
		Multilingual: C.whisper_is_multilingual(m.ctx) != 0,
		Vocab:        int(C.whisper_n_vocab(m.ctx)),
		AudioCtx:     int(C.whisper_model_n_audio_ctx(m.ctx)),
		TextCtx:      int(C.whisper_model_n_text_ctx(m.ctx)),
	}
}

// Close frees the model. It fails if states are still open, since they point into it.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	if m.states > 0 {
		return fmt.Errorf("whisper: model %s still has %d open states", m.path, m.states)
	}
	C.whisper_free(m.ctx)
	m.closed = true
	return nil
}

// State is one decoder state (KV caches, mel buffers). A State decodes one utterance at a
// time; several States decode in parallel on one Model.
type State struct {
	m  *Model
	st *C.struct_whisper_state
	mu sync.Mutex
}

// NewState allocates a decoder state for the model.
func (m *Model) NewState() (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("whisper: model is closed")
	}
	st := C.whisper_init_state(m.ctx)
	if st == nil {
		return nil, errors.New("whisper: cannot allocate a decoder state (out of memory?)")
	}
	m.states++
	return &State{m: m, st: st}, nil
}

// Close frees the state.
func (s *State) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		return
	}
	C.whisper_free_state(s.st)
	s.st = nil
	s.m.mu.Lock()
	s.m.states--
	s.m.mu.Unlock()
}

// ErrAborted is returned when the context was cancelled during decoding.
var ErrAborted = errors.New("whisper: decoding aborted")

// Decode transcribes 16 kHz mono samples; no context is carried over from earlier calls. Cancelling ctx aborts the computation at the next
// graph boundary.
func (s *State) Decode(ctx context.Context, samples []float32, p domain.DecodeOptions) ([]domain.DecodedSegment, error) {
	if len(samples) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		return nil, errors.New("whisper: state is closed")
	}

	strategy := C.enum_whisper_sampling_strategy(C.WHISPER_SAMPLING_GREEDY)
	if p.BeamSize > 1 {
		strategy = C.WHISPER_SAMPLING_BEAM_SEARCH
	}
	cp := C.whisper_full_default_params(strategy)
	threads := p.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	cp.n_threads = C.int(threads)
	cp.no_context = true
	cp.print_special = false
	cp.print_progress = false
	cp.print_realtime = false
	cp.print_timestamps = false
	cp.token_timestamps = C.bool(p.TokenTimestamps)
	cp.suppress_blank = true
	cp.suppress_nst = C.bool(p.SuppressNonSpeech)
	cp.audio_ctx = C.int(p.AudioCtx)
	cp.temperature = C.float(p.Temperature)
	cp.temperature_inc = C.float(p.TemperatureInc)
	if p.EntropyThold > 0 {
		cp.entropy_thold = C.float(p.EntropyThold)
	}
	if p.LogprobThold != 0 {
		cp.logprob_thold = C.float(p.LogprobThold)
	}
	if p.NoSpeechThold > 0 {
		cp.no_speech_thold = C.float(p.NoSpeechThold)
	}
	if p.MaxTokens > 0 {
		cp.max_tokens = C.int(p.MaxTokens)
	}
	if p.BeamSize > 1 {
		cp.beam_search.beam_size = C.int(p.BeamSize)
	}
	lang := p.Language
	if lang == "" {
		lang = "en"
	}
	clang := C.CString(lang)
	defer C.free(unsafe.Pointer(clang))
	cp.language = clang
	if p.Prompt != "" {
		cprompt := C.CString(p.Prompt)
		defer C.free(unsafe.Pointer(cprompt))
		cp.initial_prompt = cprompt
	}

	if !s.m.dtw {
		if err := s.full(ctx, cp, samples); err != nil {
			return nil, err
		}
		return s.segments(p), nil
	}
	// A model with DTW alignment: libwhisper's own seek through the audio may leave a
	// window of 100–150 ms at the end, and aligning a segment decoded there aborts the
	// process (WHISPER_ASSERT filter_width < a->ne[2]: the alignment's 7-wide median
	// filter needs more than 7 audio frames of 20 ms). So each call is given one window
	// of at most 30 s and asked for a single segment, which stops libwhisper after it; the
	// segments are split at the timestamp tokens here, and the audio after the last one is
	// decoded again as a window of its own — as libwhisper's seek does — only when at
	// least a second of it is left.
	cp.single_segment = true
	var out []domain.DecodedSegment
	for off := 0; off < len(samples); {
		win := samples[off:min(len(samples), off+windowSamples)]
		if len(win) < minWindowSamples {
			win = append(append(make([]float32, 0, minWindowSamples), win...), make([]float32, minWindowSamples-len(win))...)
		}
		if err := s.full(ctx, cp, win); err != nil {
			return nil, err
		}
		n := min(len(samples)-off, windowSamples)
		segs, used := splitWindow(s.windowTokens(p), float64(n)/SampleRate, p.OneWindow && off+n == len(samples))
		shift := float64(off) / SampleRate
		for _, sg := range segs {
			out = append(out, sg.Shifted(shift))
		}
		off += max(int(used*SampleRate+0.5), 1)
	}
	return out, nil
}

// windowSamples is libwhisper's window, 30 s; minWindowSamples the shortest audio handed
// to it with DTW alignment (shorter is padded with silence); minRedecode the least audio
// after a window's last timestamp that is decoded again as a window of its own (older
// libwhisper's rule: "if only 1 second left, then stop"), and minProgress how far into the
// window that timestamp must be (so a window is never decoded again from nearly where it
// began).
const (
	windowSamples    = 30 * SampleRate
	minWindowSamples = SampleRate
	minRedecode      = 1.0
	minProgress      = 0.5
)

// full runs libwhisper over samples, abortable through ctx.
func (s *State) full(ctx context.Context, cp C.struct_whisper_full_params, samples []float32) error {
	flag := C.scribe_new_flag()
	if flag == nil {
		return errors.New("whisper: out of memory")
	}
	defer C.free(unsafe.Pointer(flag))
	C.scribe_set_abort(&cp, flag)
	stop := context.AfterFunc(ctx, func() { C.scribe_raise_flag(flag) })
	defer stop()

	pinner := runtime.Pinner{}
	pinner.Pin(&samples[0])
	rc := C.whisper_full_with_state(s.m.ctx, s.st, cp, (*C.float)(unsafe.Pointer(&samples[0])), C.int(len(samples)))
	pinner.Unpin()
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrAborted, ctx.Err())
	}
	if rc != 0 {
		return fmt.Errorf("whisper: decoding failed (code %d)", int(rc))
	}
	return nil
}

// token converts token j of segment i of the last decode.
func (s *State) token(p domain.DecodeOptions, ci, cj C.int, data C.whisper_token_data) domain.DecodedToken {
	tok := domain.DecodedToken{
		ID:      int(data.id),
		Text:    C.GoString(C.whisper_full_get_token_text_from_state(s.m.ctx, s.st, ci, cj)),
		P:       float32(data.p),
		LogProb: float32(data.plog),
		At:      -1,
	}
	if p.TokenTimestamps {
		// centiseconds, like segment times
		tok.Start, tok.End = float64(data.t0)/100, float64(data.t1)/100
		if s.m.dtw {
			tok.At = float64(data.t_dtw) / 100
		}
	}
	return tok
}

// segments are the last decode's segments as libwhisper split them.
func (s *State) segments(p domain.DecodeOptions) []domain.DecodedSegment {
	eot := C.whisper_token_eot(s.m.ctx)
	n := int(C.whisper_full_n_segments_from_state(s.st))
	segs := make([]domain.DecodedSegment, 0, n)
	for i := range n {
		ci := C.int(i)
		seg := domain.DecodedSegment{
			// whisper reports segment times in centiseconds.
			Start:        float64(C.whisper_full_get_segment_t0_from_state(s.st, ci)) / 100,
			End:          float64(C.whisper_full_get_segment_t1_from_state(s.st, ci)) / 100,
			Text:         C.GoString(C.whisper_full_get_segment_text_from_state(s.st, ci)),
			NoSpeechProb: float64(C.whisper_full_get_segment_no_speech_prob_from_state(s.st, ci)),
		}
		nt := int(C.whisper_full_n_tokens_from_state(s.st, ci))
		for j := range nt {
			cj := C.int(j)
			data := C.whisper_full_get_token_data_from_state(s.st, ci, cj)
			if data.id >= eot { // special and timestamp tokens
				continue
			}
			seg.Tokens = append(seg.Tokens, s.token(p, ci, cj, data))
		}
		segs = append(segs, seg)
	}
	return segs
}

// windowToken is one token of a single-segment decode: text, or a timestamp.
type windowToken struct {
	stamp    bool
	at       float64 // a timestamp's time, seconds from the window's start
	tok      domain.DecodedToken
	noSpeech float64
}

// windowTokens are the last (single-segment) decode's text and timestamp tokens, in order.
func (s *State) windowTokens(p domain.DecodeOptions) []windowToken {
	eot := C.whisper_token_eot(s.m.ctx)
	beg := C.whisper_token_beg(s.m.ctx)
	var out []windowToken
	for i := range int(C.whisper_full_n_segments_from_state(s.st)) {
		ci := C.int(i)
		ns := float64(C.whisper_full_get_segment_no_speech_prob_from_state(s.st, ci))
		for j := range int(C.whisper_full_n_tokens_from_state(s.st, ci)) {
			cj := C.int(j)
			data := C.whisper_full_get_token_data_from_state(s.st, ci, cj)
			switch {
			case data.id >= beg:
				out = append(out, windowToken{stamp: true, at: float64(data.id-beg) * 0.02, noSpeech: ns})
			case data.id < eot:
				out = append(out, windowToken{tok: s.token(p, ci, cj, data), noSpeech: ns})
			}
		}
	}
	return out
}

// splitWindow splits the tokens of one window of seconds of audio, decoded as a single
// segment, into segments at its timestamp tokens, as libwhisper does, and says how much of
// the window they account for. Words after the last timestamp are kept, with the window's
// end as theirs, unless a second or more of audio follows that timestamp: then, as
// libwhisper's seek does, they are dropped and the audio from that timestamp on is left
// to be decoded again as a window of its own (used is the timestamp; at least
// minProgress in). So is the audio after a last timestamp with no words after it, which
// the decoder may have ended early. keepTail (the window is the audio's last, and the
// caller asked for DecodeOptions.OneWindow) keeps them whatever follows.
func splitWindow(toks []windowToken, seconds float64, keepTail bool) (segs []domain.DecodedSegment, used float64) {
	var cur domain.DecodedSegment
	var text []byte
	last := -1.0 // the last timestamp
	closeAt := func(end float64) {
		if len(cur.Tokens) > 0 {
			cur.End, cur.Text = min(end, seconds), string(text)
			segs = append(segs, cur)
		}
		cur, text = domain.DecodedSegment{Start: min(end, seconds)}, text[:0:0]
	}
	for _, t := range toks {
		if t.stamp {
			closeAt(t.at)
			last = t.at
			continue
		}
		cur.Tokens = append(cur.Tokens, t.tok)
		cur.NoSpeechProb = t.noSpeech
		text = append(text, t.tok.Text...)
	}
	if !keepTail && last >= minProgress && seconds-last >= minRedecode {
		return segs, last
	}
	closeAt(seconds)
	return segs, seconds
}

// EncodeTime runs only the encoder over samples (one full window, as every decode with the
// model's full context does) and reports how long it took: benchmarks split a decode's
// time between the encoder and the decoder with it.
func (s *State) EncodeTime(samples []float32, threads int) (time.Duration, error) {
	if len(samples) == 0 {
		return 0, errors.New("whisper: no samples")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		return 0, errors.New("whisper: state is closed")
	}
	var pinner runtime.Pinner
	pinner.Pin(&samples[0])
	defer pinner.Unpin()
	start := time.Now()
	if rc := C.whisper_pcm_to_mel_with_state(s.m.ctx, s.st, (*C.float)(unsafe.Pointer(&samples[0])), C.int(len(samples)), C.int(threads)); rc != 0 {
		return 0, fmt.Errorf("whisper: mel spectrogram failed (code %d)", int(rc))
	}
	if rc := C.whisper_encode_with_state(s.m.ctx, s.st, 0, C.int(threads)); rc != 0 {
		return 0, fmt.Errorf("whisper: encoder failed (code %d)", int(rc))
	}
	return time.Since(start), nil
}

// SystemInfo is libwhisper's description of the CPU features it uses.
func SystemInfo() string {
	initLibrary()
	return C.GoString(C.whisper_print_system_info())
}
