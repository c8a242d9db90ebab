package app

import (
	"errors"
	"runtime"
	"time"

	"scribe/internal/secondpass"
	"scribe/internal/transcribe"
	"scribe/internal/whisper"
)

// SecondPass is the optional second pass (transcription.second_pass_model) over live
// transcription: its model, one decoder state, and the service that wraps live.
type SecondPass struct {
	*secondpass.Service
	model *whisper.Model
	state *whisper.State
}

// SecondPassOptions adjust the second pass (tests make the wait for idleness explicit).
type SecondPassOptions struct {
	Quiet time.Duration
	// Idler, when set, replaces the live engine's WhenIdle (tests hold refinements back).
	Idler secondpass.Idler
}

// NewSecondPass loads the configured second-pass model and wraps live (the server's
// transcriber) so that committed utterances are refined with it at the lowest priority
// of rt's scheduler. Close it before the store the refinements are written to.
func (rt *Runtime) NewSecondPass(live secondpass.Live, opt SecondPassOptions) (*SecondPass, error) {
	cfg := rt.Config
	if cfg.Transcription.SecondPassModel == "" {
		return nil, errors.New("app: no transcription.second_pass_model configured")
	}
	model, err := whisper.LoadModel(cfg.Transcription.SecondPassModel)
	if err != nil {
		return nil, err
	}
	st, err := model.NewState()
	if err != nil {
		model.Close()
		return nil, err
	}
	sp := &SecondPass{model: model, state: st}
	fail := func(err error) (*SecondPass, error) {
		st.Close()
		model.Close()
		return nil, err
	}
	// It runs only while live decoding is idle, so it may use every core.
	tcfg, err := engineConfig(cfg, model, runtime.NumCPU())
	if err != nil {
		return fail(err)
	}
	engine, err := transcribe.NewEngine(tcfg, []transcribe.Decoder{st})
	if err != nil {
		return fail(err)
	}
	idler := opt.Idler
	if idler == nil {
		idler = rt.Engine
	}
	sp.Service, err = secondpass.New(secondpass.Config{MaxQueued: cfg.Transcription.SecondPassQueue, Quiet: opt.Quiet, Logger: rt.logger},
		live, engine, idler)
	if err != nil {
		return fail(err)
	}
	return sp, nil
}

// Close stops the second pass (dropping what is queued) and frees its model.
func (sp *SecondPass) Close() {
	sp.Service.Close()
	sp.state.Close()
	_ = sp.model.Close() // nothing is left to lose: the states using it are closed
}
