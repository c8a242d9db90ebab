package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"scribe/internal/app"
	"scribe/internal/bench"
	"scribe/internal/config"
	"scribe/internal/corpus"
)

func init() {
	register("bench", "measure speed, capacity and accuracy (file, live, capacity, rooms-memory, frontend, accuracy, hallucination)", cmdBench)
}

const benchUsage = `usage: scribe bench SUBCOMMAND [flags]

  file --vs whisper-cli [--model M] [--runs N] [--threads T] FILE
                          wall time and real-time factor against whisper-cli
  live --rooms N [--seconds S]   N rooms replaying rendered consultations at real time into
                          a real server; delay from each utterance's end to its committed
                          text at a websocket client; CPU and RSS
  capacity [--bound 2s] [--max-rooms N] [--seconds S]   most rooms within the p95 bound
  rooms-memory [--rooms N] [--seconds S]   RSS with N−1 and N rooms (separate processes),
                          and the front end's throughput and memory per room
  frontend [--rooms N]           clean-up + VAD throughput and memory per room
  accuracy --model M --corpus DIR [--modes file,live,whisper-cli] [--channels stereo,mono] [--cleanup on|both]
                          WER, WDER, speaker attribution (time-weighted, unknown share)
                          and VAD accuracy against ground truth, per mode, hearing
                          (stereo/mono of a dry render; array/capsule 0 of a room render:
                          scribe corpus render -room), noise condition, voice pair, and
                          with or without the clean-up chain
  hallucination [--seconds 300]  words written for rooms without speech (silence, room tone,
                          pink noise, door slams and typing): scribe file and live,
                          whisper-cli without and with its --vad

Every subcommand writes JSON to --out (default stdout) and a PNG bar chart to --chart.`

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, benchUsage)
		return errUsagef("missing subcommand")
	}
	sub, args := args[0], args[1:]
	fs := newFlags("bench "+sub, stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, benchUsage); fs.PrintDefaults() }
	var mf modelFlags
	mf.add(fs)
	out := fs.String("out", "", "JSON output file (default stdout)")
	chart := fs.String("chart", "", "PNG chart file (none when empty)")
	corpusDir := fs.String("corpus", "", "rendered consultations (*.truth.json) or a PriMock57 tree")
	switch sub {
	case "file":
		vs := fs.String("vs", "whisper-cli", "the tool to compare with (whisper-cli)")
		runs := fs.Int("runs", 3, "runs of each tool")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errUsagef("bench file: want exactly one WAV file")
		}
		cli, err := exec.LookPath(*vs)
		if err != nil {
			return fmt.Errorf("bench file: %s not found (Debian whisper.cpp-tools): %w", *vs, err)
		}
		cfg, err := mf.load()
		if err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		rep, err := bench.RunFile(ctx, bench.FileOptions{Scribe: self, WhisperCLI: cli, Model: cfg.Models.Whisper,
			VADModel: cfg.Models.VAD, Threads: cfg.Models.Threads, Runs: *runs, File: pos[0]})
		if err != nil {
			return err
		}
		return writeBench(stdout, *out, *chart, rep, rep.Chart())
	case "live", "capacity":
		rooms := fs.Int("rooms", 1, "rooms replaying at once (live)")
		seconds := fs.Float64("seconds", 60, "seconds of each consultation to replay")
		bound := fs.Duration("bound", 2e9, "p95 delay bound (capacity)")
		maxRooms := fs.Int("max-rooms", 8, "stop the capacity search here")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		cfg, recs, err := benchSetup(ctx, &mf, *corpusDir, *seconds)
		if err != nil {
			return err
		}
		cfg.Transcription.TemperatureInc = 0 // see benchSetup
		rt, err := app.Load(cfg, app.Options{})
		if err != nil {
			return err
		}
		defer rt.Close()
		opt := bench.LiveOptions{Rooms: *rooms, Seconds: *seconds, Pace: 1, Recordings: recs}
		if sub == "live" {
			rep, err := bench.RunLive(ctx, rt, opt)
			if err != nil {
				return err
			}
			limit := 1.0
			if *rooms > 1 {
				limit = 2
			}
			return writeBench(stdout, *out, *chart, rep, rep.Chart(limit))
		}
		rep, err := bench.RunCapacity(ctx, rt, opt, bound.Seconds(), *maxRooms)
		if err != nil {
			return err
		}
		return writeBench(stdout, *out, *chart, rep, rep.Chart())
	case "rooms-memory":
		rooms := fs.Int("rooms", 2, "compare N−1 rooms with N")
		seconds := fs.Float64("seconds", 60, "seconds of each consultation to replay")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		cfg, recs, err := benchSetup(ctx, &mf, *corpusDir, *seconds)
		if err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		run := func(k int) (*bench.LiveReport, error) {
			return childLive(ctx, self, &mf, *corpusDir, k, *seconds, stderr)
		}
		fe, err := bench.RunFrontEnd(cfg, recs[0], 4)
		if err != nil {
			return err
		}
		rep, err := bench.RoomsMemory(*rooms, *seconds, run, fe)
		if err != nil {
			return err
		}
		return writeBench(stdout, *out, *chart, rep, rep.Chart())
	case "frontend":
		rooms := fs.Int("rooms", 4, "front ends held at once for the memory figure")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		cfg, recs, err := benchSetup(ctx, &mf, *corpusDir, 0)
		if err != nil {
			return err
		}
		rep, err := bench.RunFrontEnd(cfg, recs[0], *rooms)
		if err != nil {
			return err
		}
		return writeBench(stdout, *out, *chart, rep, rep.Chart())
	case "accuracy":
		modes := fs.String("modes", bench.ModeFile, "comma-separated: file (scribe transcribe), live (the live pipeline, replayed), whisper-cli")
		channels := fs.String("channels", "stereo", "comma-separated: stereo (a microphone each), mono (the mix)")
		pace := fs.Float64("live-pace", 4, "live mode: replay speed, × real time (0: as fast as the pipeline takes it)")
		cliArgs := fs.String("whisper-cli-args", "", "whisper-cli mode: arguments beyond model, file, threads and language (default: its own defaults)")
		join := fs.String("join", "", "instead of measuring: join these reports (comma-separated JSON files, one model) into one")
		cleanup := fs.String("cleanup", "on", "scribe's modes with the clean-up chain only (on), or also without it (both)")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		if *join != "" {
			var parts []*bench.AccuracyReport
			for _, path := range splitList(*join) {
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				var r bench.AccuracyReport
				if err := json.Unmarshal(b, &r); err != nil {
					return fmt.Errorf("bench accuracy --join: %s: %w", path, err)
				}
				parts = append(parts, &r)
			}
			rep, err := bench.JoinAccuracy(parts)
			if err != nil {
				return err
			}
			return writeBench(stdout, *out, *chart, rep, rep.Chart())
		}
		cfg, err := mf.load()
		if err != nil {
			return err
		}
		if *cleanup != "on" && *cleanup != "both" {
			return errUsagef("bench accuracy: --cleanup %q: want on or both", *cleanup)
		}
		opt := bench.AccuracyOptions{Modes: splitList(*modes), Channels: splitList(*channels), LivePace: *pace, WithoutCleanup: *cleanup == "both",
			CLI: bench.CLIRun{Model: cfg.Models.Whisper, Threads: cfg.Models.Threads, Args: strings.Fields(*cliArgs)}}
		if slices.Contains(opt.Modes, bench.ModeWhisperCLI) {
			if opt.CLI.Exe, err = exec.LookPath("whisper-cli"); err != nil {
				return fmt.Errorf("bench accuracy: whisper-cli not found (Debian whisper.cpp-tools): %w", err)
			}
		}
		dir := *corpusDir
		if dir == "" {
			dir = "testdata/audio"
		}
		rt, err := app.Load(cfg, app.Options{})
		if err != nil {
			return err
		}
		defer rt.Close()
		rep, err := bench.RunAccuracy(ctx, rt, dir, opt)
		if err != nil {
			return err
		}
		if rep.TestModel {
			fmt.Fprintln(stderr, "scribe bench accuracy:", rep.Note)
		}
		return writeBench(stdout, *out, *chart, rep, rep.Chart())
	case "hallucination":
		seconds := fs.Int("seconds", 300, "length of each no-speech clip (a multiple of 30 s)")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		cfg, err := mf.load()
		if err != nil {
			return err
		}
		cli, err := exec.LookPath("whisper-cli")
		if err != nil {
			return fmt.Errorf("bench hallucination: whisper-cli not found (Debian whisper.cpp-tools): %w", err)
		}
		rt, err := app.Load(cfg, app.Options{})
		if err != nil {
			return err
		}
		defer rt.Close()
		rep, err := bench.RunHallucination(ctx, rt, bench.CLIRun{Exe: cli, Model: cfg.Models.Whisper, Threads: cfg.Models.Threads}, cfg.Models.VAD, *seconds)
		if err != nil {
			return err
		}
		return writeBench(stdout, *out, *chart, rep, rep.Chart())
	}
	fmt.Fprintln(stderr, benchUsage)
	return errUsagef("unknown bench subcommand %q", sub)
}

// childLive runs scribe bench live with rooms rooms in a fresh process and reads its report.
func childLive(ctx context.Context, self string, mf *modelFlags, corpusDir string, rooms int, seconds float64, stderr io.Writer) (*bench.LiveReport, error) {
	args := []string{"bench", "live", "--rooms", strconv.Itoa(rooms), "--seconds", strconv.FormatFloat(seconds, 'f', -1, 64),
		"--workers", strconv.Itoa(mf.workers), "--threads", strconv.Itoa(mf.threads)}
	for flag, v := range map[string]string{"--config": mf.config, "--model": mf.model, "--vad-model": mf.vadModel, "--corpus": corpusDir} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	if mf.noDSP {
		args = append(args, "--no-clean")
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("scribe %s: %w", strings.Join(args, " "), err)
	}
	var rep bench.LiveReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("scribe bench live: report: %w", err)
	}
	return &rep, nil
}

// benchSetup loads the configuration and the recordings to replay: the rendered
// consultations in corpusDir, else testdata/audio, else a fresh render of PriMock57's
// first consultation (espeak-ng) into the corpus cache. Temperature fallback is off for
// live benches: on the weightless test model every decode would be redone five times.
func benchSetup(ctx context.Context, mf *modelFlags, corpusDir string, seconds float64) (config.Config, []bench.Recording, error) {
	cfg, err := mf.load()
	if err != nil {
		return cfg, nil, err
	}
	if mf.workers == 1 && mf.threads == 0 {
		// The default split of the cores, not the file-transcription default of one worker.
		cfg.Models.Workers, cfg.Models.Threads = 0, 0
		cfg.Models.Workers, cfg.Models.Threads = cfg.Parallelism()
	}
	if mf.config == "" {
		cfg.Transcription.TemperatureInc = 0
	}
	var paths []string
	for _, dir := range []string{corpusDir, "testdata/audio"} {
		if dir == "" {
			continue
		}
		if paths, err = bench.FindRendered(dir); err != nil {
			return cfg, nil, err
		}
		if len(paths) > 0 {
			break
		}
	}
	if len(paths) == 0 {
		cache, _ := os.UserCacheDir()
		r, err := corpus.Render(ctx, filepath.Join("..", "shared", "corpus", "primock57"), corpus.DefaultIDs[0],
			corpus.RenderOptions{OutDir: filepath.Join(cache, "scribe", "corpus"), MaxSeconds: seconds})
		if err != nil {
			return cfg, nil, fmt.Errorf("bench: no rendered consultations (make corpus): %w", err)
		}
		paths = []string{r.TruthPath}
	}
	var recs []bench.Recording
	for _, p := range paths {
		if strings.Contains(filepath.Base(p), "dB.") {
			continue // noisy variants: the clean renders measure speed
		}
		rec, err := bench.LoadRendered(p)
		if err != nil {
			return cfg, nil, err
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return cfg, nil, fmt.Errorf("bench: only noisy renders found")
	}
	return cfg, recs, nil
}

func writeBench(stdout io.Writer, out, chartPath string, rep any, chart bench.Chart) error {
	w := stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	return bench.WriteChart(chartPath, chart)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
