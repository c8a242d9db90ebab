package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"scribe/internal/domain"
)

// CLIRun is how whisper.cpp's own whisper-cli is run as the anchor the figures are
// compared with: the same model, threads and audio as scribe, otherwise its defaults
// (beam search of 5, temperature fallback) plus Args.
type CLIRun struct {
	Exe     string
	Model   string
	Threads int
	Args    []string
}

// Transcribe runs whisper-cli on the WAV file at path and reads its JSON output. The
// transcript has no speakers and no speech intervals (whisper-cli has neither unless
// its --vad is given, and then it does not report them).
func (c CLIRun) Transcribe(ctx context.Context, path string) (*domain.Transcript, error) {
	dir, err := os.MkdirTemp("", "scribe-cli-")
	if err != nil {
		return nil, fmt.Errorf("whisper-cli: %w", err)
	}
	defer os.RemoveAll(dir)
	base := filepath.Join(dir, "out")
	args := append([]string{"-m", c.Model, "-f", path, "-t", strconv.Itoa(max(c.Threads, 1)), "-l", "en", "-np", "-oj", "-of", base}, c.Args...)
	_, took, err := timed(ctx, c.Exe, args)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(base + ".json")
	if err != nil {
		return nil, fmt.Errorf("whisper-cli: no JSON output: %w", err)
	}
	segs, err := parseCLIJSON(b)
	if err != nil {
		return nil, err
	}
	tr := &domain.Transcript{Segments: segs, Model: c.Model}
	tr.Timings.Total = time.Duration(took * float64(time.Second))
	tr.Timings.Fill()
	return tr, nil
}

// parseCLIJSON reads whisper-cli's -oj output: segments with offsets in milliseconds.
func parseCLIJSON(b []byte) ([]domain.Segment, error) {
	var out struct {
		Transcription []struct {
			Offsets struct {
				From, To float64
			} `json:"offsets"`
			Text string `json:"text"`
		} `json:"transcription"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("whisper-cli: JSON output: %w", err)
	}
	segs := make([]domain.Segment, 0, len(out.Transcription))
	for _, t := range out.Transcription {
		segs = append(segs, domain.Segment{Start: t.Offsets.From / 1000, End: t.Offsets.To / 1000,
			Speaker: domain.SpeakerUnknown, Text: t.Text})
	}
	return segs, nil
}
