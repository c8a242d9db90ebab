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

	mu     sync.Mutex
	closed bool
	states int
}

// LoadModel loads a ggml whisper model (e.g. ggml-base.en.bin) without a decoder state.
func LoadModel(path string) (*Model, error) {
	if err := checkReadable(path); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModel, err)
	}
	if _, err := checkModelHeader(path); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModel, err)
	}
	initLibrary()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	params := C.whisper_context_default_params()
	params.use_gpu = false
	ctx := C.whisper_init_from_file_with_params_no_state(cpath, params)
	if ctx == nil {
		return nil, fmt.Errorf("%w: %s is not a whisper ggml model (or is damaged)", ErrModel, path)
	}
	return &Model{path: path, ctx: ctx}, nil
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
	cp.suppress_blank = true
	cp.suppress_nst = C.bool(p.SuppressNonSpeech)
	cp.audio_ctx = C.int(p.AudioCtx)
	cp.token_timestamps = C.bool(p.TokenTimestamps)
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

	flag := C.scribe_new_flag()
	if flag == nil {
		return nil, errors.New("whisper: out of memory")
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
		return nil, fmt.Errorf("%w: %w", ErrAborted, ctx.Err())
	}
	if rc != 0 {
		return nil, fmt.Errorf("whisper: decoding failed (code %d)", int(rc))
	}

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
			seg.Tokens = append(seg.Tokens, domain.DecodedToken{
				ID:      int(data.id),
				Text:    C.GoString(C.whisper_full_get_token_text_from_state(s.m.ctx, s.st, ci, cj)),
				P:       float32(data.p),
				LogProb: float32(data.plog),
				// whisper reports token times in centiseconds (0 unless asked for).
				Start: float64(data.t0) / 100,
				End:   float64(data.t1) / 100,
			})
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// SystemInfo is libwhisper's description of the CPU features it uses.
func SystemInfo() string {
	initLibrary()
	return C.GoString(C.whisper_print_system_info())
}
