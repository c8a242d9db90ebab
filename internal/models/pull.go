package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PartialSuffix is appended to a model's file name while it downloads. A partial file left
// behind by an interrupted pull is resumed by the next one.
const PartialSuffix = ".partial"

// ErrChecksum is wrapped by Pull when the downloaded bytes are not the model.
var ErrChecksum = errors.New("downloaded file failed verification")

// Pull downloads e into destDir and returns the final path. It writes to
// <destDir>/<file>.partial, resuming with an HTTP Range request when a partial file is
// already there, checks the size and SHA-256, and only then renames the file to its final
// name (after fsync), so the final path never holds an unverified model. A file already
// at the final path that verifies is kept and no request is made. progress, when not nil,
// gets a progress bar (one rewritten line on a terminal, plain lines otherwise). client
// nil means http.DefaultClient; cancelling ctx stops the transfer and keeps the partial file.
func Pull(ctx context.Context, e Entry, destDir string, progress io.Writer, client *http.Client) (string, error) {
	if err := e.validate(); err != nil {
		return "", fmt.Errorf("pull: %w", err)
	}
	if client == nil {
		client = http.DefaultClient
	}
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return "", fmt.Errorf("pull %s: %w", e.Name, err)
	}
	final := filepath.Join(destDir, e.File)
	if err := Verify(final, e); err == nil {
		slog.Info("model already installed", "model", e.Name, "path", final)
		return final, nil
	}
	partial := final + PartialSuffix

	sum, err := download(ctx, e, partial, progress, client)
	if err != nil {
		return "", err
	}
	if sum != e.SHA256 {
		// A partial that cannot become the model must not be resumed either.
		_ = os.Remove(partial)
		return "", fmt.Errorf("pull %s from %s: sha256 %s, expected %s; partial download deleted: %w",
			e.Name, e.URL, sum, e.SHA256, ErrChecksum)
	}
	if err := os.Rename(partial, final); err != nil {
		return "", fmt.Errorf("pull %s: install: %w", e.Name, err)
	}
	if err := syncDir(destDir); err != nil {
		return "", fmt.Errorf("pull %s: sync %s: %w", e.Name, destDir, err)
	}
	slog.Info("model installed", "model", e.Name, "path", final, "bytes", e.Size)
	return final, nil
}

// download brings the partial file up to e.Size bytes and returns the SHA-256 of its whole
// content. It leaves the partial in place on a transfer error so a later pull can resume.
func download(ctx context.Context, e Entry, partial string, progress io.Writer, client *http.Client) (string, error) {
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", e.Name, err)
	}
	defer f.Close()

	have, h, err := hashExisting(f, e.Size)
	if err != nil {
		return "", fmt.Errorf("pull %s: read partial %s: %w", e.Name, partial, err)
	}
	if have < e.Size {
		have, err = fetch(ctx, e, f, h, have, progress, client)
		if err != nil {
			return "", err
		}
	}
	if have != e.Size {
		_ = os.Remove(partial)
		return "", fmt.Errorf("pull %s from %s: got %d bytes, expected %d; partial download deleted: %w",
			e.Name, e.URL, have, e.Size, ErrChecksum)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("pull %s: sync: %w", e.Name, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("pull %s: close: %w", e.Name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashExisting hashes what a previous pull left in f. A partial longer than the model
// cannot be right and is emptied.
func hashExisting(f *os.File, size int64) (int64, hash.Hash, error) {
	h := sha256.New()
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	if st.Size() > size {
		if err := f.Truncate(0); err != nil {
			return 0, nil, err
		}
		return 0, h, nil
	}
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, nil, err
	}
	return n, h, nil
}

// fetch requests the bytes from offset have onwards and appends them to f and h. It
// returns how many bytes f holds afterwards.
func fetch(ctx context.Context, e Entry, f *os.File, h hash.Hash, have int64, progress io.Writer, client *http.Client) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL, nil)
	if err != nil {
		return have, fmt.Errorf("pull %s: %w", e.Name, err)
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := client.Do(req)
	if err != nil {
		return have, fmt.Errorf("pull %s from %s: %w", e.Name, e.URL, err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, err := contentRangeStart(resp.Header.Get("Content-Range"))
		if err != nil || start != have {
			return have, fmt.Errorf("pull %s from %s: server answered range %d- with Content-Range %q",
				e.Name, e.URL, have, resp.Header.Get("Content-Range"))
		}
		slog.Info("resuming model download", "model", e.Name, "offset", have)
	case resp.StatusCode == http.StatusOK:
		if have > 0 {
			// The server ignored the Range header and is sending the whole file: start over.
			slog.Info("server ignored range request; restarting download", "model", e.Name)
			if err := f.Truncate(0); err != nil {
				return have, fmt.Errorf("pull %s: %w", e.Name, err)
			}
			h.Reset()
			have = 0
		}
	default:
		return have, fmt.Errorf("pull %s from %s: HTTP %s", e.Name, e.URL, resp.Status)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return have, fmt.Errorf("pull %s: %w", e.Name, err)
	}

	bar := newProgressBar(progress, e.Name, e.Size, have)
	defer bar.finish()
	// Read at most one byte past the expected size: enough to notice an oversized body
	// without filling the disk with it.
	body := io.LimitReader(resp.Body, e.Size-have+1)
	n, err := io.Copy(io.MultiWriter(f, h, bar), body)
	have += n
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return have, fmt.Errorf("pull %s from %s: interrupted after %d of %d bytes (run pull again to resume): %w",
			e.Name, e.URL, have, e.Size, err)
	}
	return have, nil
}

// contentRangeStart reads the first byte position of "bytes START-END/TOTAL".
func contentRangeStart(v string) (int64, error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, fmt.Errorf("content-range %q: no bytes unit", v)
	}
	startStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, fmt.Errorf("content-range %q: no range", v)
	}
	return strconv.ParseInt(strings.TrimSpace(startStr), 10, 64)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
