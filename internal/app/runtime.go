// Package app wires scribe's feature packages into a running transcription stack: one
// whisper model in memory, a pool of decoder states, a Silero VAD per stream, the clean-up
// chain per channel, and the live pipeline over them. cmd/scribe and the server use it.
package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"scribe/internal/audio"
	"scribe/internal/config"
	"scribe/internal/diarize"
	"scribe/internal/domain"
	"scribe/internal/dsp"
	"scribe/internal/frontend"
	"scribe/internal/pipeline"
	"scribe/internal/source"
	"scribe/internal/stream"
	"scribe/internal/transcribe"
	"scribe/internal/vad"
	"scribe/internal/whisper"
)

// Runtime is a loaded transcription stack. Close it to free the model.
type Runtime struct {
	Config   config.Config
	Model    *whisper.Model
	Engine   *transcribe.Engine
	Pipeline *pipeline.Pipeline
	LoadTime time.Duration

	states []*whisper.State
	logger *slog.Logger
}

// Options adjust a runtime for one use.
type Options struct {
	Provisional bool
	Logger      *slog.Logger
	Observe     func(pipeline.Observation)
}

// Load loads the models named in cfg and builds the pipeline.
func Load(cfg config.Config, opt Options) (*Runtime, error) {
	start := time.Now()
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	// Fail early and clearly on a bad VAD path, before the larger model loads.
	probe, err := whisper.LoadVAD(cfg.Models.VAD, 1)
	if err != nil {
		return nil, err
	}
	probe.Close()
	scfg := StreamConfig(cfg)
	if err := scfg.Validate(); err != nil {
		return nil, err
	}
	// The streaming commit policy places words on the timeline by the decoder's
	// alignment of each token to the audio (DTW).
	model, err := whisper.LoadModelWith(cfg.Models.Whisper, whisper.ModelOptions{DTW: true})
	if err != nil {
		return nil, err
	}
	rt := &Runtime{Config: cfg, Model: model}
	workers, threads := cfg.Parallelism()
	decoders := make([]transcribe.Decoder, 0, workers)
	for range workers {
		st, err := model.NewState()
		if err != nil {
			rt.Close()
			return nil, err
		}
		rt.states = append(rt.states, st)
		decoders = append(decoders, st)
	}
	tcfg, err := engineConfig(cfg, model, threads)
	if err != nil {
		rt.Close()
		return nil, err
	}
	if rt.Engine, err = transcribe.NewEngine(tcfg, decoders); err != nil {
		rt.Close()
		return nil, err
	}

	rt.logger = opt.Logger
	if rt.Pipeline, err = rt.NewPipeline(opt.Provisional, opt.Observe); err != nil {
		rt.Close()
		return nil, err
	}
	rt.LoadTime = time.Since(start)
	return rt, nil
}

// engineConfig is the decoding the configuration asks for, on model with threads per decode.
func engineConfig(cfg config.Config, model *whisper.Model, threads int) (transcribe.Config, error) {
	tcfg := transcribe.DefaultConfig()
	tcfg.Language = cfg.Transcription.Language
	tcfg.Threads = threads
	tcfg.BeamSize = cfg.Transcription.BeamSize
	tcfg.TemperatureInc = cfg.Transcription.TemperatureInc
	tcfg.ShrinkAudioCtx = cfg.Transcription.ShrinkAudioCtx
	tcfg.ModelAudioCtx = model.Info().AudioCtx
	var err error
	tcfg.Vocabulary, err = transcribe.LoadVocabulary(cfg.Transcription.Vocabulary)
	return tcfg, err
}

// DSPConfig is the clean-up chain the configuration asks for.
func DSPConfig(cfg config.Config) dsp.Config {
	d := dsp.DefaultConfig()
	d.HighPass = cfg.Audio.HighPass
	d.NoiseSuppression = cfg.Audio.NoiseSuppression
	d.AGC = cfg.Audio.AGC
	return d
}

// VADConfig is the utterance segmentation the configuration asks for. Utterances are
// cut at speaker turns by channel dominance only with a microphone per person: the
// capsules of an array, a few centimetres apart, hear both people alike.
func VADConfig(cfg config.Config) vad.Config {
	v := vad.DefaultConfig()
	v.MinSilence, v.MaxUtterance, v.Padding = cfg.Audio.MinSilence, cfg.Audio.MaxUtterance, cfg.Audio.Padding
	if k := cfg.Audio.Microphones.Kind; k == diarize.KindArray || k == diarize.KindSingle {
		v.TurnMin = 0
	}
	return v
}

// FrontendConfig is the clean-up and VAD every live stream runs, on the gateway and on a
// room agent's box.
func FrontendConfig(cfg config.Config) frontend.Config {
	dcfg := DSPConfig(cfg)
	return frontend.Config{
		VAD:        VADConfig(cfg),
		NewScorer:  NewScorer(cfg.Models.VAD),
		NewCleaner: func() frontend.Cleaner { return dsp.NewChain(dcfg) },
	}
}

// StreamConfig is the streaming commit policy the configuration asks for.
func StreamConfig(cfg config.Config) stream.Config {
	s := stream.DefaultConfig()
	l := cfg.Transcription.Live
	if l.Policy != "" {
		s.Policy = stream.Policy(l.Policy)
	}
	if l.Agreement != 0 {
		s.Agreement = l.Agreement
	}
	if l.Step != 0 {
		s.Step = l.Step
	}
	if l.Context != 0 {
		s.Context = l.Context
	}
	if l.Grace != 0 {
		s.Grace = l.Grace
	}
	return s
}

// NewAttributor makes a stream's speaker attribution from the configured microphone
// set-up, or the stream's own (a room agent's, on ctx), for its channel count.
func NewAttributor(cfg config.Config, logger *slog.Logger) func(ctx context.Context, nch int) pipeline.Attributor {
	return func(ctx context.Context, nch int) pipeline.Attributor {
		s, ok := diarize.SetupFrom(ctx)
		if !ok {
			s = cfg.Audio.Microphones
		}
		if _, why := s.Resolve(nch); why != "" {
			logger.Warn("speaker attribution: "+why, "microphones", s.Kind, "capsules", s.Capsules)
		}
		return diarize.New(s, nch)
	}
}

// NewScorer gives each stream its own Silero VAD from the model file at path (Silero keeps
// LSTM state per stream) and the function releasing it.
func NewScorer(path string) func() (vad.Scorer, func(), error) {
	return func() (vad.Scorer, func(), error) {
		v, err := whisper.LoadVAD(path, 1)
		if err != nil {
			return nil, nil, err
		}
		return v, v.Close, nil
	}
}

// Close frees decoder states and the model.
func (rt *Runtime) Close() {
	for _, st := range rt.states {
		st.Close()
	}
	rt.states = nil
	if rt.Model != nil {
		if err := rt.Model.Close(); err != nil {
			slog.Warn("closing model", "err", err)
		}
	}
}

// TranscribeClip transcribes a decoded recording as fast as the machine allows: file
// mode. The same clean-up and VAD as live rooms find the speech; then, unlike live rooms,
// the speech is packed into windows of up to transcription.file_window seconds (30, as
// whisper was trained) and each window is decoded once with the text before it as
// context (transcribe.Packer), instead of each utterance alone. Times are the
// recording's; each segment's speaker comes from the channels under it.
func (rt *Runtime) TranscribeClip(ctx context.Context, clip *audio.Clip) (*domain.Transcript, error) {
	return rt.transcribeClip(ctx, clip, rt.fileMode(), time.Second, 0)
}

// fileMode is the pipeline configuration of file transcription: no provisional text,
// speech packed into windows.
func (rt *Runtime) fileMode() pipeline.Config {
	pcfg := pipeline.DefaultConfig()
	pcfg.Provisional = false
	pcfg.PackSeconds = rt.Config.Transcription.FileWindow
	pcfg.MixSpeakers = rt.Config.Transcription.FileMixSpeakers
	return pcfg
}

// ReplayClip transcribes a decoded recording through the live path instead — the
// streaming commit policy, with provisional text — replaying it at pace × real time
// (0: as fast as the pipeline takes it). It measures live rooms' accuracy on recordings
// (scribe bench accuracy).
func (rt *Runtime) ReplayClip(ctx context.Context, clip *audio.Clip, pace float64) (*domain.Transcript, error) {
	// 0.1 s reads, as a microphone delivers audio.
	return rt.transcribeClip(ctx, clip, pipeline.DefaultConfig(), 100*time.Millisecond, pace)
}

func (rt *Runtime) transcribeClip(ctx context.Context, clip *audio.Clip, pcfg pipeline.Config, chunk time.Duration, pace float64) (*domain.Transcript, error) {
	if clip == nil || len(clip.Channels) == 0 {
		return nil, errors.New("no audio")
	}
	start := time.Now()
	c16 := clip.To16k()
	src, err := source.NewClip(c16.Channels, chunk, pace)
	if err != nil {
		return nil, err
	}
	return rt.transcribe(ctx, start, src, pcfg, src.Position)
}

// TranscribeFile transcribes the WAV file at path like TranscribeClip, reading it as a
// stream: decoded and resampled a second at a time, so memory does not grow with the
// recording's length.
func (rt *Runtime) TranscribeFile(ctx context.Context, path string) (*domain.Transcript, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	defer f.Close()
	src, err := source.NewFile(bufio.NewReaderSize(f, 1<<16), time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tr, err := rt.transcribe(ctx, start, src, rt.fileMode(), src.Seconds)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tr, nil
}

// transcribe runs src through a pipeline of pcfg of its own; seconds tells how much audio
// src has given once it is done.
func (rt *Runtime) transcribe(ctx context.Context, start time.Time, src domain.AudioSource, pcfg pipeline.Config, seconds func() float64) (*domain.Transcript, error) {
	tr := &domain.Transcript{Channels: src.Channels(), Model: rt.Model.Path()}
	var decode time.Duration
	observe := func(o pipeline.Observation) {
		decode += o.Decode
		if o.Final {
			tr.Speech = append(tr.Speech, o.Speech...)
		}
	}
	p, err := rt.newPipeline(pcfg, observe)
	if err != nil {
		return nil, err
	}
	err = p.Transcribe(ctx, src, 0, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventCommitted {
			tr.Segments = domain.AddCommitted(tr.Segments, ev)
			if ev.Audio != nil {
				tr.Speakers = append(tr.Speakers, ev.Audio.Speakers...)
			}
		}
	})
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	tr.AudioSeconds = seconds()
	tr.Timings.Load = rt.LoadTime
	tr.Timings.Decode = decode
	tr.Timings.Total = time.Since(start)
	tr.Timings.Frontend = tr.Timings.Total - decode
	tr.Timings.Fill()
	return tr, nil
}

// NewPipeline builds a pipeline over the runtime's engine, with or without provisional
// text, reporting each decoded utterance to observe (may be nil).
func (rt *Runtime) NewPipeline(provisional bool, observe func(pipeline.Observation)) (*pipeline.Pipeline, error) {
	pcfg := pipeline.DefaultConfig()
	pcfg.Provisional = provisional
	return rt.newPipeline(pcfg, observe)
}

// newPipeline builds a pipeline of pcfg with the configured commit policy, clean-up, VAD
// and speaker attribution.
func (rt *Runtime) newPipeline(pcfg pipeline.Config, observe func(pipeline.Observation)) (*pipeline.Pipeline, error) {
	pcfg.Stream = StreamConfig(rt.Config)
	return pipeline.New(pcfg, pipeline.Deps{
		Engine:        rt.Engine,
		Frontend:      FrontendConfig(rt.Config),
		NewAttributor: NewAttributor(rt.Config, rt.logger),
		Logger:        rt.logger,
		Observe:       observe,
	})
}

// SpeechIntervals runs the Silero VAD over a recording's mono mix.
func SpeechIntervals(vadPath string, clip *audio.Clip, cfg vad.Config) ([]domain.Interval, error) {
	v, err := whisper.LoadVAD(vadPath, 1)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	c16 := clip.To16k()
	iv, err := vad.Speech(cfg, v, domain.MixDown(c16.Channels))
	if err != nil {
		return nil, fmt.Errorf("vad: %w", err)
	}
	return iv, nil
}

// SegmentSpans are a transcript's segments as speaker spans (unknown ones left out), for
// scoring attribution against ground truth (diarize.Score).
func SegmentSpans(segs []domain.Segment) []domain.SpeakerSpan {
	var out []domain.SpeakerSpan
	for _, s := range segs {
		if s.Speaker == domain.SpeakerClinician || s.Speaker == domain.SpeakerPatient {
			out = append(out, domain.SpeakerSpan{Interval: domain.Interval{Start: s.Start, End: s.End}, Speaker: s.Speaker})
		}
	}
	return out
}
