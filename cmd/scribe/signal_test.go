package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// When SCRIBE_SIGNAL_HELPER is set, this test binary acts as a scribe whose graceful stop
// hangs: it waits on stopOnSignal's context (as main does), says so, and never returns.
func TestMain(m *testing.M) {
	if os.Getenv("SCRIBE_SIGNAL_HELPER") == "1" {
		ctx := stopOnSignal()
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println("stopping")
		select {} // a graceful stop that never finishes
	}
	os.Exit(m.Run())
}

// The first SIGTERM starts the graceful stop; a second one aborts it and kills the process.
func TestSecondSignalAborts(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "SCRIBE_SIGNAL_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := bufio.NewScanner(out)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			cmd.Process.Kill()
			t.Fatalf("helper said %q, want %q", lines.Text(), want)
		}
	}
	expect("ready")
	cmd.Process.Signal(syscall.SIGTERM)
	expect("stopping")
	go func() { io.Copy(io.Discard, out); done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("the first signal ended the process (%v); it should only start the graceful stop", err)
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("helper ended with %v", err)
		}
		ws := ee.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("helper ended with %v, want killed by SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the second SIGTERM did not abort the hung graceful stop")
	}
}

// The real binary stops gracefully on one SIGTERM: exit status 0, with the database
// closed cleanly (a backup of it taken afterwards passes the integrity check).
func TestServeStopsGracefullyOnSIGTERM(t *testing.T) {
	model, vad := testModels(t)
	bin := scribeBinary(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	cmd.Env = append(os.Environ(), "SCRIBE_MODEL="+model, "SCRIBE_VAD_MODEL="+vad, "SCRIBE_DATA_KEY=", "CREDENTIALS_DIRECTORY=")
	out, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	started := make(chan bool, 1)
	go func() {
		ok := false
		for lines.Scan() {
			if strings.Contains(lines.Text(), "https://") {
				ok = true
				break
			}
		}
		started <- ok
		io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-started:
		if !ok {
			cmd.Wait()
			t.Fatalf("serve did not start:\n%s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve did not print its URL:\n%s", stderr.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("serve did not stop within 30 s of SIGTERM")
	}
	code, stdout, errOut := runCLI("backup", "--data-dir", dir, dir+"/copy.db")
	if code != 0 {
		t.Fatalf("backup of the stopped server's database: exit %d: %s", code, errOut)
	}
	t.Log(strings.TrimSpace(stdout))
	if code, _, errOut := runCLI("backup", "--data-dir", dir, dir+"/copy.db"); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Errorf("backup over an existing file: exit %d: %s", code, errOut)
	}
}
