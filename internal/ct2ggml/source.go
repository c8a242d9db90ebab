package ct2ggml

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Source is where a CTranslate2 model's files come from: a directory (faster-whisper's
// layout) or one or more wheel/zip archives (PyPI packages that ship a model, possibly
// split as model.bin.part1, model.bin.part2 … across several packages). Files are found by
// base name, so the package's own folder layout does not matter.
type Source struct {
	desc    string
	files   map[string]func() (io.ReadCloser, error) // base name → opener
	closers []io.Closer
}

// Close releases the archives a Source opened.
func (s *Source) Close() error { return closeAll(s.closers) }

// String names the source for messages.
func (s *Source) String() string { return s.desc }

// FromDir reads a model directory such as faster-whisper's (model.bin, config.json,
// vocabulary.txt or vocabulary.json).
func FromDir(dir string) (*Source, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ct2ggml: %w", err)
	}
	s := &Source{desc: dir, files: map[string]func() (io.ReadCloser, error){}}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		s.files[e.Name()] = func() (io.ReadCloser, error) { return os.Open(p) }
	}
	return s, nil
}

// FromArchives reads the model's files out of wheel (zip) archives without unpacking them.
// The same base name in two archives is an error: which one to use would be a guess.
func FromArchives(paths ...string) (*Source, error) {
	s := &Source{desc: strings.Join(paths, " + "), files: map[string]func() (io.ReadCloser, error){}}
	for _, p := range paths {
		zr, err := zip.OpenReader(p)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("ct2ggml: %s: %w", p, err)
		}
		s.closers = append(s.closers, zr)
		for _, f := range zr.File {
			if f.FileInfo().IsDir() || strings.Contains(f.Name, ".dist-info/") || strings.HasSuffix(f.Name, ".py") {
				continue
			}
			base := path.Base(f.Name)
			if _, dup := s.files[base]; dup {
				s.Close()
				return nil, fmt.Errorf("%w: %s appears twice in %s", ErrFormat, base, s.desc)
			}
			s.files[base] = f.Open
		}
	}
	return s, nil
}

// Open opens a file by base name.
func (s *Source) Open(name string) (io.ReadCloser, error) {
	open, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s", ErrFormat, s.desc, name)
	}
	return open()
}

func (s *Source) has(name string) bool { _, ok := s.files[name]; return ok }

// ReadFile reads a whole (small) file by base name.
func (s *Source) ReadFile(name string) ([]byte, error) {
	rc, err := s.Open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// openModelBin returns model.bin, or its parts model.bin.part1 … partN joined in order.
func (s *Source) openModelBin() (io.ReadCloser, error) {
	if s.has("model.bin") {
		return s.Open("model.bin")
	}
	var parts []int
	for name := range s.files {
		if n, ok := strings.CutPrefix(name, "model.bin.part"); ok {
			i, err := strconv.Atoi(n)
			if err != nil {
				return nil, fmt.Errorf("%w: unexpected file %s", ErrFormat, name)
			}
			parts = append(parts, i)
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: %s has no model.bin (nor model.bin.partN)", ErrFormat, s.desc)
	}
	sort.Ints(parts)
	for i, p := range parts {
		if p != i+1 {
			return nil, fmt.Errorf("%w: %s: model.bin.part%d is missing (found parts %v)", ErrFormat, s.desc, i+1, parts)
		}
	}
	var readers []io.Reader
	var closers []io.Closer
	for _, p := range parts {
		rc, err := s.Open("model.bin.part" + strconv.Itoa(p))
		if err != nil {
			closeAll(closers)
			return nil, err
		}
		readers = append(readers, rc)
		closers = append(closers, rc)
	}
	return multiReadCloser{Reader: io.MultiReader(readers...), closers: closers}, nil
}

type multiReadCloser struct {
	io.Reader
	closers []io.Closer
}

func (m multiReadCloser) Close() error { return closeAll(m.closers) }

func closeAll(cs []io.Closer) error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// readVocabulary returns the model's tokens in id order, from vocabulary.txt (one per
// line, as faster-whisper ships) or vocabulary.json (a JSON list).
func (s *Source) readVocabulary() ([]string, error) {
	switch {
	case s.has("vocabulary.txt"):
		b, err := s.ReadFile("vocabulary.txt")
		if err != nil {
			return nil, err
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		return strings.Split(string(b), "\n"), nil
	case s.has("vocabulary.json"):
		b, err := s.ReadFile("vocabulary.json")
		if err != nil {
			return nil, err
		}
		return parseJSONVocabulary(b)
	}
	return nil, fmt.Errorf("%w: %s has neither vocabulary.txt nor vocabulary.json", ErrFormat, s.desc)
}
