package whisper

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// VADWindow is the number of samples Silero scores at a time (32 ms at 16 kHz).
const VADWindow = 512

// VAD is a Silero voice-activity model. It keeps LSTM state between calls of Probs, so a
// live stream fed in pieces scores exactly as if fed at once. One VAD serves one stream.
type VAD struct {
	mu  sync.Mutex
	ctx *C.struct_whisper_vad_context
}

// LoadVAD loads a Silero ggml model (e.g. ggml-silero-v6.2.0.bin).
func LoadVAD(path string, threads int) (*VAD, error) {
	if err := checkReadable(path); err != nil {
		return nil, fmt.Errorf("whisper: cannot load VAD model: %w", err)
	}
	initLibrary()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	params := C.whisper_vad_default_context_params()
	params.use_gpu = false
	if threads > 0 {
		params.n_threads = C.int(threads)
	}
	ctx := C.whisper_vad_init_from_file_with_params(cpath, params)
	if ctx == nil {
		return nil, fmt.Errorf("whisper: %s is not a Silero VAD ggml model (or is damaged)", path)
	}
	return &VAD{ctx: ctx}, nil
}

// Close frees the model.
func (v *VAD) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ctx != nil {
		C.whisper_vad_free(v.ctx)
		v.ctx = nil
	}
}

// Reset clears the LSTM state, e.g. when a new stream starts.
func (v *VAD) Reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ctx != nil {
		C.whisper_vad_reset_state(v.ctx)
	}
}

// Probs scores samples, whose length must be a multiple of VADWindow, and returns one
// speech probability per window. State carries over from the previous call.
func (v *VAD) Probs(samples []float32) ([]float32, error) {
	if len(samples)%VADWindow != 0 {
		return nil, fmt.Errorf("whisper: VAD input of %d samples is not a multiple of %d", len(samples), VADWindow)
	}
	if len(samples) == 0 {
		return nil, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ctx == nil {
		return nil, errors.New("whisper: VAD is closed")
	}
	var pinner runtime.Pinner
	pinner.Pin(&samples[0])
	ok := C.whisper_vad_detect_speech_no_reset(v.ctx, (*C.float)(unsafe.Pointer(&samples[0])), C.int(len(samples)))
	pinner.Unpin()
	if !ok {
		return nil, errors.New("whisper: VAD failed")
	}
	n := int(C.whisper_vad_n_probs(v.ctx))
	if n > len(samples)/VADWindow {
		n = len(samples) / VADWindow
	}
	out := make([]float32, n)
	copy(out, unsafe.Slice((*float32)(unsafe.Pointer(C.whisper_vad_probs(v.ctx))), n))
	return out, nil
}

// SegmentParams are libwhisper's own speech-segment rules, used for whole files.
type SegmentParams struct {
	Threshold        float32
	MinSpeechMS      int
	MinSilenceMS     int
	MaxSpeechSeconds float32
	SpeechPadMS      int
}

// DefaultSegmentParams are libwhisper's defaults.
func DefaultSegmentParams() SegmentParams {
	p := C.whisper_vad_default_params()
	return SegmentParams{
		Threshold:        float32(p.threshold),
		MinSpeechMS:      int(p.min_speech_duration_ms),
		MinSilenceMS:     int(p.min_silence_duration_ms),
		MaxSpeechSeconds: float32(p.max_speech_duration_s),
		SpeechPadMS:      int(p.speech_pad_ms),
	}
}

// Span is a speech interval in seconds.
type Span struct{ Start, End float64 }

// Segments runs libwhisper's whole-file speech segmentation (state is reset first).
func (v *VAD) Segments(samples []float32, p SegmentParams) ([]Span, error) {
	if len(samples) == 0 {
		return nil, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ctx == nil {
		return nil, errors.New("whisper: VAD is closed")
	}
	cp := C.whisper_vad_default_params()
	cp.threshold = C.float(p.Threshold)
	cp.min_speech_duration_ms = C.int(p.MinSpeechMS)
	cp.min_silence_duration_ms = C.int(p.MinSilenceMS)
	cp.max_speech_duration_s = C.float(p.MaxSpeechSeconds)
	cp.speech_pad_ms = C.int(p.SpeechPadMS)
	var pinner runtime.Pinner
	pinner.Pin(&samples[0])
	segs := C.whisper_vad_segments_from_samples(v.ctx, cp, (*C.float)(unsafe.Pointer(&samples[0])), C.int(len(samples)))
	pinner.Unpin()
	if segs == nil {
		return nil, errors.New("whisper: VAD segmentation failed")
	}
	defer C.whisper_vad_free_segments(segs)
	n := int(C.whisper_vad_segments_n_segments(segs))
	out := make([]Span, n)
	for i := range n {
		// libwhisper reports VAD segment times in centiseconds.
		out[i] = Span{
			Start: float64(C.whisper_vad_segments_get_segment_t0(segs, C.int(i))) / 100,
			End:   float64(C.whisper_vad_segments_get_segment_t1(segs, C.int(i))) / 100,
		}
	}
	return out, nil
}
