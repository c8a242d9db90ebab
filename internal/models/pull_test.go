package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeModel is a few hundred KB of pseudo-random bytes standing in for a model file.
func fakeModel(t *testing.T, size int) ([]byte, Entry) {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(data)
	return data, Entry{Name: "fake", Kind: KindWhisper, File: "ggml-fake.bin", Size: int64(size), SHA256: hex.EncodeToString(sum[:])}
}

// modelServer serves one file. It records the Range header of every request and the
// number of body bytes it sent, and can be told to ignore Range requests.
type modelServer struct {
	data        []byte
	ignoreRange bool

	mu        sync.Mutex
	ranges    []string
	bytesSent int64
	requests  int
}

func (s *modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	cw := &countingWriter{ResponseWriter: w}
	if s.ignoreRange {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
		_, _ = cw.Write(s.data)
	} else {
		http.ServeContent(cw, r, "model.bin", time.Time{}, bytes.NewReader(s.data))
	}
	s.mu.Lock()
	s.bytesSent += cw.n
	s.mu.Unlock()
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func startServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func assertInstalled(t *testing.T, path string, e Entry) {
	t.Helper()
	if err := Verify(path, e); err != nil {
		t.Fatalf("installed file does not verify: %v", err)
	}
	if _, err := os.Stat(path + PartialSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial file left behind after a successful pull (stat err %v)", err)
	}
}

func TestPullFullDownload(t *testing.T) {
	data, e := fakeModel(t, 300<<10)
	srv := &modelServer{data: data}
	e.URL = startServer(t, srv).URL + "/ggml-fake.bin"
	dir := t.TempDir()
	var progress bytes.Buffer

	path, err := Pull(context.Background(), e, dir, &progress, nil)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, e.File) {
		t.Fatalf("path = %q, want %q", path, filepath.Join(dir, e.File))
	}
	assertInstalled(t, path, e)
	if srv.ranges[0] != "" {
		t.Errorf("fresh download sent Range %q", srv.ranges[0])
	}
	// Not a terminal: plain lines, one per tenth, ending at 100 %.
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 10 || !strings.Contains(lines[len(lines)-1], "100.0%") || strings.Contains(progress.String(), "\r") {
		t.Errorf("progress output = %q, want 10 plain lines ending at 100.0%%", progress.String())
	}
}

func TestPullResumesPartial(t *testing.T) {
	data, e := fakeModel(t, 300<<10)
	srv := &modelServer{data: data}
	e.URL = startServer(t, srv).URL + "/m"
	dir := t.TempDir()
	const have = 100 << 10
	if err := os.WriteFile(filepath.Join(dir, e.File+PartialSuffix), data[:have], 0o644); err != nil {
		t.Fatal(err)
	}

	path, err := Pull(context.Background(), e, dir, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertInstalled(t, path, e)
	if len(srv.ranges) != 1 || srv.ranges[0] != "bytes=102400-" {
		t.Errorf("server saw Range headers %q, want one \"bytes=102400-\"", srv.ranges)
	}
	if want := int64(len(data) - have); srv.bytesSent != want {
		t.Errorf("server sent %d bytes, want only the missing %d", srv.bytesSent, want)
	}
}

func TestPullRestartsWhenServerIgnoresRange(t *testing.T) {
	data, e := fakeModel(t, 200<<10)
	srv := &modelServer{data: data, ignoreRange: true}
	e.URL = startServer(t, srv).URL + "/m"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, e.File+PartialSuffix), data[:50<<10], 0o644); err != nil {
		t.Fatal(err)
	}

	path, err := Pull(context.Background(), e, dir, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertInstalled(t, path, e)
	if srv.ranges[0] == "" {
		t.Error("pull with a partial file did not ask for a range")
	}
}

func TestPullRefusesCorruptContent(t *testing.T) {
	data, e := fakeModel(t, 200<<10)
	bad := bytes.Clone(data)
	bad[123456] ^= 0x40
	e.URL = startServer(t, &modelServer{data: bad}).URL + "/m"
	dir := t.TempDir()

	_, err := Pull(context.Background(), e, dir, io.Discard, nil)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), e.SHA256) {
		t.Errorf("error %q does not name the expected digest", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("files left after a refused download: %v", entries)
	}
}

func TestPullCorruptPartialIsDiscardedThenRecovers(t *testing.T) {
	data, e := fakeModel(t, 200<<10)
	srv := &modelServer{data: data}
	e.URL = startServer(t, srv).URL + "/m"
	dir := t.TempDir()
	junk := bytes.Repeat([]byte{0xAA}, 10<<10)
	if err := os.WriteFile(filepath.Join(dir, e.File+PartialSuffix), junk, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(context.Background(), e, dir, io.Discard, nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("resume onto a corrupt partial: err = %v, want ErrChecksum", err)
	}
	// The bad partial is gone, so the next pull starts clean and succeeds.
	path, err := Pull(context.Background(), e, dir, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertInstalled(t, path, e)
	if got := srv.ranges[len(srv.ranges)-1]; got != "" {
		t.Errorf("second pull sent Range %q, want a fresh download", got)
	}
}

func TestPullRejectsOversizedBody(t *testing.T) {
	data, e := fakeModel(t, 100<<10)
	e.URL = startServer(t, &modelServer{data: append(bytes.Clone(data), 1, 2, 3)}).URL + "/m"
	_, err := Pull(context.Background(), e, t.TempDir(), io.Discard, nil)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum for a body longer than the model", err)
	}
}

func TestPullHTTPError(t *testing.T) {
	_, e := fakeModel(t, 1000)
	e.URL = startServer(t, http.NotFoundHandler()).URL + "/missing"
	_, err := Pull(context.Background(), e, t.TempDir(), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v, want an HTTP 404 error", err)
	}
}

func TestPullKeepsVerifiedFileWithoutRequest(t *testing.T) {
	data, e := fakeModel(t, 50<<10)
	srv := &modelServer{data: data}
	e.URL = startServer(t, srv).URL + "/m"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, e.File), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(context.Background(), e, dir, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	if srv.requests != 0 {
		t.Errorf("server got %d requests for an installed model", srv.requests)
	}
}

func TestPullCancelKeepsPartialForResume(t *testing.T) {
	data, e := fakeModel(t, 300<<10)
	half := len(data) / 2
	sentHalf := make(chan struct{})
	stalling := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data[:half])
		w.(http.Flusher).Flush()
		close(sentHalf)
		<-r.Context().Done() // hold the connection open until the client gives up
	})
	e.URL = startServer(t, stalling).URL + "/m"
	dir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := Pull(ctx, e, dir, io.Discard, nil)
		errc <- err
	}()
	<-sentHalf
	// Give the client a moment to write what arrived before cancelling.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(filepath.Join(dir, e.File+PartialSuffix)); err == nil && st.Size() == int64(half) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, e.File)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("final file exists after a cancelled pull")
	}
	st, err := os.Stat(filepath.Join(dir, e.File+PartialSuffix))
	if err != nil || st.Size() != int64(half) {
		t.Fatalf("partial after cancel: %v, size %d; want %d bytes kept", err, sizeOf(st), half)
	}

	// A later pull resumes from where the cancelled one stopped.
	srv := &modelServer{data: data}
	e.URL = startServer(t, srv).URL + "/m"
	path, err := Pull(context.Background(), e, dir, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertInstalled(t, path, e)
	if want := "bytes=" + strconv.Itoa(half) + "-"; len(srv.ranges) != 1 || srv.ranges[0] != want {
		t.Errorf("resume after cancel sent Range %q, want %q", srv.ranges, want)
	}
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return -1
	}
	return st.Size()
}

func TestProgressBarTerminalLine(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(0, 0)
	p := &progressBar{out: &out, tty: true, name: "tiny.en", total: 10e6, now: func() time.Time { return clock }, redrawStep: redrawEvery}
	p.began = clock
	clock = clock.Add(time.Second)
	_, _ = p.Write(make([]byte, 5e6))
	clock = clock.Add(50 * time.Millisecond) // too soon to redraw
	_, _ = p.Write(make([]byte, 1e6))
	clock = clock.Add(time.Second)
	_, _ = p.Write(make([]byte, 4e6))
	p.finish()
	got := out.String()
	if n := strings.Count(got, "\r"); n != 2 {
		t.Errorf("redraws = %d, want 2 (the 50 ms one suppressed): %q", n, got)
	}
	if !strings.Contains(got, " 50.0%     5.0/10.0 MB    5.0 MB/s") {
		t.Errorf("first line lacks percent/MB/rate: %q", got)
	}
	if !strings.HasSuffix(got, "100.0%    10.0/10.0 MB    4.9 MB/s\n") {
		t.Errorf("last line = %q", got)
	}
}
