package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scribe/internal/app"
	"scribe/internal/audio"
	"scribe/internal/corpus"
	"scribe/internal/domain"
)

// HallucinationRun is what one tool wrote for one clip in which nobody speaks.
type HallucinationRun struct {
	Tool  string  `json:"tool"`
	Words int     `json:"words"`
	Text  string  `json:"text,omitempty"` // what it wrote (first 300 characters)
	WallS float64 `json:"wall_s"`
	// SpeechS is the speech scribe's VAD found (scribe's rows only).
	SpeechS float64 `json:"vad_speech_s,omitempty"`
}

// HallucinationClip is one no-speech clip through every tool.
type HallucinationClip struct {
	Clip    string             `json:"clip"`
	Seconds float64            `json:"seconds"`
	Runs    []HallucinationRun `json:"runs"`
}

// HallucinationReport: words written for rooms without speech, by scribe (file mode and
// live) and by whisper-cli with and without its own Silero VAD.
type HallucinationReport struct {
	Model       string              `json:"model"`
	VADModel    string              `json:"vad_model"`
	Goal        string              `json:"goal"`
	LoadAverage float64             `json:"load_average_1m"`
	Clips       []HallucinationClip `json:"clips"`
}

// Tools in the hallucination report, in chart order.
var hallucinationTools = []string{"scribe file", "scribe live", "whisper-cli", "whisper-cli --vad"}

// RunHallucination makes the no-speech clips (corpus.NoSpeechClips, seconds each) in a
// temporary directory and runs each through scribe's file mode and live pipeline and
// through whisper-cli (its defaults) without and with --vad (the same Silero model).
func RunHallucination(ctx context.Context, rt *app.Runtime, cli CLIRun, vadModel string, seconds int) (*HallucinationReport, error) {
	dir, err := os.MkdirTemp("", "scribe-nospeech-")
	if err != nil {
		return nil, fmt.Errorf("bench hallucination: %w", err)
	}
	defer os.RemoveAll(dir)
	clips, err := corpus.NoSpeechClips(dir, seconds)
	if err != nil {
		return nil, fmt.Errorf("bench hallucination: %w", err)
	}
	rep := &HallucinationReport{Model: rt.Model.Path(), VADModel: vadModel, Goal: "zero words", LoadAverage: LoadAverage()}
	withVAD := cli
	withVAD.Args = append(append([]string(nil), cli.Args...), "--vad", "-vm", vadModel)
	for _, c := range clips {
		clip, err := audio.ReadFile(c.Path)
		if err != nil {
			return nil, err
		}
		hc := HallucinationClip{Clip: c.Name, Seconds: clip.Duration()}
		for _, tool := range hallucinationTools {
			start := time.Now()
			var tr *domain.Transcript
			switch tool {
			case "scribe file":
				tr, err = rt.TranscribeClip(ctx, clip)
			case "scribe live":
				tr, err = rt.ReplayClip(ctx, clip, 0)
			case "whisper-cli":
				tr, err = cli.Transcribe(ctx, c.Path)
			case "whisper-cli --vad":
				tr, err = withVAD.Transcribe(ctx, c.Path)
			}
			if err != nil {
				return nil, fmt.Errorf("bench hallucination: %s, %s: %w", c.Name, tool, err)
			}
			run := HallucinationRun{Tool: tool, WallS: time.Since(start).Seconds(), SpeechS: domain.TotalSeconds(tr.Speech)}
			var text []string
			for _, s := range tr.Segments {
				if f := strings.Fields(s.Text); len(f) > 0 {
					run.Words += len(f)
					text = append(text, strings.Join(f, " "))
				}
			}
			if run.Text = strings.Join(text, " / "); len(run.Text) > 300 {
				run.Text = strings.ToValidUTF8(run.Text[:300], "") + "…"
			}
			hc.Runs = append(hc.Runs, run)
		}
		rep.Clips = append(rep.Clips, hc)
	}
	return rep, nil
}

// Chart shows the words each tool wrote, per clip (the goal is none).
func (r *HallucinationReport) Chart() Chart {
	c := Chart{Title: "Words written where nobody spoke: " + filepath.Base(r.Model), Series: hallucinationTools}
	for _, hc := range r.Clips {
		c.Labels = append(c.Labels, hc.Clip)
		g := make([]float64, len(hc.Runs))
		for i, run := range hc.Runs {
			g[i] = float64(run.Words)
		}
		c.Groups = append(c.Groups, g)
	}
	return c
}
