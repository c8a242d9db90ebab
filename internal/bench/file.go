package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// FileOptions compare `scribe transcribe` with whisper-cli on one recording. Both run as
// child processes (each loads its model, as a user would run them), with the same model,
// threads and greedy decoding without temperature fallback (whisper-cli -bs 1 -bo 1 -nf;
// scribe temperature_inc 0).
type FileOptions struct {
	Scribe     string // scribe executable
	WhisperCLI string // whisper-cli executable
	Model      string
	VADModel   string
	Threads    int
	Runs       int
	File       string
}

// FileRun is one timed run of one tool.
type FileRun struct {
	Tool  string  `json:"tool"`
	Run   int     `json:"run"`
	WallS float64 `json:"wall_s"`
}

// FileReport is the comparison.
type FileReport struct {
	File         string    `json:"file"`
	Model        string    `json:"model"`
	Threads      int       `json:"threads"`
	AudioSeconds float64   `json:"audio_seconds"`
	Runs         []FileRun `json:"runs"`
	Scribe       Summary   `json:"scribe_wall_s"`
	WhisperCLI   Summary   `json:"whisper_cli_wall_s"`
	// RTF is wall time over audio time (below 1 is faster than real time), of the medians.
	ScribeRTF     float64   `json:"scribe_rtf"`
	WhisperCLIRTF float64   `json:"whisper_cli_rtf"`
	Ratio         float64   `json:"ratio_median"`    // scribe / whisper-cli medians
	PairRatios    []float64 `json:"ratio_per_pair"`  // run i of scribe / run i of whisper-cli
	LoadAverage   float64   `json:"load_average_1m"` // other work on the box skews figures
	Goal          string    `json:"goal"`
	GoalMet       bool      `json:"goal_met"`
}

// RunFile times both tools opt.Runs times, alternating so drifting load hits both alike.
func RunFile(ctx context.Context, opt FileOptions) (*FileReport, error) {
	if opt.Runs < 1 {
		return nil, fmt.Errorf("bench file: runs %d must be at least 1", opt.Runs)
	}
	if opt.Threads < 1 {
		return nil, fmt.Errorf("bench file: threads %d must be at least 1", opt.Threads)
	}
	for _, p := range []string{opt.File, opt.Model, opt.VADModel, opt.Scribe, opt.WhisperCLI} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("bench file: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "scribe-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench file: %w", err)
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(cfgPath, []byte("transcription:\n  temperature_inc: 0\n"), 0o600); err != nil {
		return nil, fmt.Errorf("bench file: %w", err)
	}
	threads := strconv.Itoa(opt.Threads)
	scribeArgs := []string{"transcribe", "--config", cfgPath, "--model", opt.Model, "--vad-model", opt.VADModel,
		"--threads", threads, "--workers", "1", "--format", "json", opt.File}
	cliArgs := []string{"-m", opt.Model, "-f", opt.File, "-t", threads, "-bs", "1", "-bo", "1", "-nf", "-np"}

	rep := &FileReport{File: opt.File, Model: opt.Model, Threads: opt.Threads, LoadAverage: LoadAverage(),
		Goal: "scribe wall time ≤ 0.8 × whisper-cli's"}
	var ours, theirs []float64
	for i := range opt.Runs {
		out, took, err := timed(ctx, opt.Scribe, scribeArgs)
		if err != nil {
			return nil, fmt.Errorf("bench file: scribe run %d: %w", i+1, err)
		}
		if i == 0 {
			var tr struct {
				AudioSeconds float64 `json:"audio_seconds"`
			}
			if err := json.Unmarshal(out, &tr); err != nil {
				return nil, fmt.Errorf("bench file: scribe output: %w", err)
			}
			rep.AudioSeconds = tr.AudioSeconds
		}
		_, took2, err := timed(ctx, opt.WhisperCLI, cliArgs)
		if err != nil {
			return nil, fmt.Errorf("bench file: whisper-cli run %d: %w", i+1, err)
		}
		ours, theirs = append(ours, took), append(theirs, took2)
		rep.Runs = append(rep.Runs, FileRun{Tool: "scribe", Run: i + 1, WallS: took}, FileRun{Tool: "whisper-cli", Run: i + 1, WallS: took2})
		rep.PairRatios = append(rep.PairRatios, took/took2)
	}
	rep.Scribe, rep.WhisperCLI = Summarise(ours), Summarise(theirs)
	rep.Ratio = rep.Scribe.P50 / rep.WhisperCLI.P50
	if rep.AudioSeconds > 0 {
		rep.ScribeRTF, rep.WhisperCLIRTF = rep.Scribe.P50/rep.AudioSeconds, rep.WhisperCLI.P50/rep.AudioSeconds
	}
	rep.GoalMet = rep.Ratio <= 0.8
	return rep, nil
}

// Chart shows each run's wall time: scribe and whisper-cli side by side.
func (r *FileReport) Chart() Chart {
	c := Chart{Series: []string{"scribe", "whisper-cli"}}
	for i := range r.PairRatios {
		c.Groups = append(c.Groups, []float64{r.Runs[2*i].WallS, r.Runs[2*i+1].WallS})
	}
	return c
}

func timed(ctx context.Context, exe string, args []string) ([]byte, float64, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Seconds()
	if err != nil {
		tail := stderr.Bytes()
		if len(tail) > 500 {
			tail = tail[len(tail)-500:]
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, 0, fmt.Errorf("%s: %w: %s", filepath.Base(exe), err, tail)
		}
		return nil, 0, fmt.Errorf("%s: %w", filepath.Base(exe), err)
	}
	return stdout.Bytes(), took, nil
}
