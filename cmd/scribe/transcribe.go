package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"scribe/internal/app"
	"scribe/internal/audio"
	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/vad"
)

func init() {
	register("transcribe", "transcribe a WAV file locally (text, json, srt or vtt)", cmdTranscribe)
	register("vad", "list the speech intervals of a WAV file", cmdVAD)
}

// modelFlags are the options every command that loads models shares.
type modelFlags struct {
	config, model, vadModel string
	threads, workers        int
	noDSP                   bool
}

func (m *modelFlags) add(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&m.config, "config", "", "configuration file (YAML)")
	fs.StringVar(&m.model, "model", "", "whisper ggml model file (default from config or SCRIBE_MODEL)")
	fs.StringVar(&m.vadModel, "vad-model", "", "Silero ggml VAD model file (default from config or SCRIBE_VAD_MODEL)")
	fs.IntVar(&m.threads, "threads", 0, "CPU threads per decode (0 = all cores)")
	fs.IntVar(&m.workers, "workers", 1, "concurrent decodes")
	fs.BoolVar(&m.noDSP, "no-clean", false, "skip the clean-up chain (high-pass, noise suppression, gain)")
}

func (m *modelFlags) load() (config.Config, error) {
	cfg, err := config.Load(m.config)
	if err != nil {
		return cfg, err
	}
	if m.model != "" {
		cfg.Models.Whisper = m.model
	}
	if m.vadModel != "" {
		cfg.Models.VAD = m.vadModel
	}
	cfg.Models.Workers = m.workers
	cfg.Models.Threads = m.threads
	if m.threads == 0 {
		_, cfg.Models.Threads = cfg.Parallelism()
	}
	if m.noDSP {
		cfg.Audio.HighPass, cfg.Audio.NoiseSuppression, cfg.Audio.AGC = false, false, false
	}
	return cfg, nil
}

func cmdTranscribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("transcribe", stderr)
	var mf modelFlags
	mf.add(fs)
	format := fs.String("format", "text", "output format: text, json, srt or vtt")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scribe transcribe FILE.wav [--model M] [--vad-model V] [--threads N] [--format text|json|srt|vtt]")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one WAV file", errUsage)
	}
	switch *format {
	case "text", "json", "srt", "vtt":
	default:
		return fmt.Errorf("%w: unknown format %q (text, json, srt or vtt)", errUsage, *format)
	}
	cfg, err := mf.load()
	if err != nil {
		return err
	}
	if err := checkWAV(pos[0]); err != nil { // a bad file is named before the models load
		return err
	}
	rt, err := app.Load(cfg, app.Options{})
	if err != nil {
		return err
	}
	defer rt.Close()
	tr, err := rt.TranscribeFile(ctx, pos[0]) // streamed: memory does not grow with the file
	if err != nil {
		return err
	}
	return writeTranscript(stdout, tr, *format)
}

// checkWAV reads the file's headers: missing, not a WAV or an unsupported encoding.
func checkWAV(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audio: %w", err)
	}
	defer f.Close()
	if _, err := audio.NewReader(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeTranscript(w io.Writer, tr *domain.Transcript, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(tr)
	case "srt":
		for i, s := range tr.Segments {
			fmt.Fprintf(w, "%d\n%s --> %s\n%s\n\n", i+1, clock(s.Start, ","), clock(s.End, ","), cueText(s))
		}
	case "vtt":
		fmt.Fprint(w, "WEBVTT\n\n")
		for _, s := range tr.Segments {
			fmt.Fprintf(w, "%s --> %s\n<v %s>%s\n\n", clock(s.Start, "."), clock(s.End, "."), s.Speaker, cueText(s))
		}
	default:
		for _, s := range tr.Segments {
			fmt.Fprintf(w, "[%s] %s: %s\n", clock(s.Start, ".")[:8], s.Speaker, cueText(s))
		}
	}
	return nil
}

// cueText shows flagged and empty segments so no heard speech is invisible.
func cueText(s domain.Segment) string {
	text := s.Text
	if text == "" {
		text = "[speech — no text recognised]"
	}
	if len(s.Flags) > 0 {
		fl := make([]string, len(s.Flags))
		for i, f := range s.Flags {
			fl[i] = string(f)
		}
		text += " {" + strings.Join(fl, ",") + "}"
	}
	return text
}

func clock(sec float64, sep string) string {
	ms := int64(sec*1000 + 0.5)
	return fmt.Sprintf("%02d:%02d:%02d%s%03d", ms/3600000, ms/60000%60, ms/1000%60, sep, ms%1000)
}

func cmdVAD(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("vad", stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	vadModel := fs.String("vad-model", "", "Silero ggml VAD model file")
	format := fs.String("format", "text", "output format: text or json")
	minSilence := fs.Float64("min-silence", 0.25, "pause (s) that separates two intervals")
	pad := fs.Float64("pad", 0, "padding (s) added around each interval")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scribe vad FILE.wav [--vad-model V] [--format text|json]")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one WAV file", errUsage)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *vadModel != "" {
		cfg.Models.VAD = *vadModel
	}
	clip, err := audio.ReadFile(pos[0])
	if err != nil {
		return err
	}
	vcfg := vad.DefaultConfig()
	vcfg.MinSilence, vcfg.Padding, vcfg.MaxUtterance, vcfg.MinSpeech = *minSilence, *pad, 30, 0.25
	ivs, err := app.SpeechIntervals(cfg.Models.VAD, clip, vcfg)
	if err != nil {
		return err
	}
	if *format == "json" {
		if ivs == nil {
			ivs = []domain.Interval{}
		}
		return json.NewEncoder(stdout).Encode(map[string]any{"audio_seconds": clip.Duration(), "speech": ivs})
	}
	for _, iv := range ivs {
		fmt.Fprintf(stdout, "%.2f\t%.2f\n", iv.Start, iv.End)
	}
	return nil
}
