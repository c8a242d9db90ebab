package server

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/config"
	"scribe/internal/keys"
	"scribe/internal/store"
)

// A backup taken while a session is recording on the real transcription stack restores to
// a working instance: the copy opens (with the data key, and only with it), holds the
// session and the segments committed before the backup, and a server started on it
// serves them to the clinician, with the interrupted session paused.
func TestBackupDuringLiveSessionRestores(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	t.Setenv(keys.EnvVar, "")
	jfk := filepath.Join(config.SharedDir(), "audio", "jfk.wav")
	if _, err := os.Stat(jfk); err != nil {
		t.Skip("../shared/audio/jfk.wav not available")
	}
	rt := realRuntime(t, 1, 2)
	e := newEnv(t, func(c *Config, d *Deps) { c.WAVSpeed = 1; d.Transcriber = rt.Pipeline })
	doc := e.user("gp", store.RoleClinician)
	cl := e.login("gp")
	// jfk.wav three times over: long enough that the session is still recording when its
	// first line is committed, however busy the machine.
	clip, err := audio.ReadFile(jfk)
	if err != nil {
		t.Fatal(err)
	}
	x := clip.To16k().Channels[0]
	long := filepath.Join(t.TempDir(), "jfk3.wav")
	if err := audio.WriteWAVFile(long, 16000, [][]float32{append(append(append([]float32(nil), x...), x...), x...)}); err != nil {
		t.Fatal(err)
	}
	room := e.room("Room 1", store.SourceWAV, map[string]string{"path": long}, doc.ID)
	sess := startWAV(t, e, cl, room.ID)
	ctx := context.Background()

	// Wait for committed text while the session is still recording, then back up.
	waitFor(t, time.Minute, "a committed segment", func() bool {
		segs, err := e.srv.Store().Segments(ctx, sess.ID, false)
		return err == nil && len(segs) > 0
	})
	before, err := e.srv.Store().Segments(ctx, sess.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "scribe-backup.db")
	if _, err := store.BackupFile(ctx, filepath.Join(e.dir, "scribe.db"), backup, e.srv.Store().Keyring()); err != nil {
		t.Fatal(err)
	}
	if v, _ := cl.session(sess.ID); v.State != store.StateRecording {
		t.Fatalf("session was %s at backup time; the test needs it live", v.State)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v", err, fi.Mode())
	}
	if _, err := store.BackupFile(ctx, filepath.Join(e.dir, "scribe.db"), backup, nil); err == nil {
		t.Error("backup overwrote an existing file")
	}
	// The live session carries on after the backup.
	waitFor(t, time.Minute, "the session to finish", func() bool { v, _ := cl.session(sess.ID); return v.State == store.StateStopped })
	_, final := cl.session(sess.ID)

	// Restore: the backup becomes scribe.db of a fresh data directory. Without the data
	// key it is refused; with it, it opens.
	restored := t.TempDir()
	copyFile(t, backup, filepath.Join(restored, "scribe.db"))
	if st, err := store.Open(ctx, filepath.Join(restored, "scribe.db")); err == nil {
		st.Close()
		t.Fatal("restored database opened without its data key")
	} else {
		t.Logf("without the key: %v", err)
	}
	copyFile(t, filepath.Join(e.dir, "data.key"), filepath.Join(restored, "data.key"))
	st, err := store.Open(ctx, filepath.Join(restored, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Segments(ctx, sess.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.Consultation(ctx, sess.ID)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(before) || len(got) > len(final) {
		t.Fatalf("backup holds %d segments; %d were committed before it and %d in the end", len(got), len(before), len(final))
	}
	for i, g := range got {
		// A line still growing at backup time holds the words committed by then.
		if g.ID != final[i].ID || g.Start != final[i].Start || !strings.HasPrefix(final[i].Text, g.Text) {
			t.Errorf("segment %d in the backup %+v differs from the live one %+v", i, g, final[i])
		}
	}
	if c.State != store.StateRecording {
		t.Errorf("session in the backup is %s, want recording (as it was)", c.State)
	}
	t.Logf("backup during the session: %d of %d segments", len(got), len(final))

	// A server on the restored directory works: login, the session (paused, since nobody
	// is recording now) and its transcript.
	srv, err := New(Config{DataDir: restored, ShutdownTimeout: 10 * time.Second}, Deps{Transcriber: rt.Pipeline, Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	e2 := &testEnv{t: t, srv: srv, dir: restored}
	e2.ts = newTLSServer(t, srv)
	cl2 := e2.login("gp")
	v, segs := cl2.session(sess.ID)
	if v.State != store.StatePaused || len(segs) != len(got) {
		t.Errorf("restored server: session %s with %d segments, want paused with %d", v.State, len(segs), len(got))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTLSServer(t *testing.T, srv *Server) *httptest.Server {
	ts := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return ts
}
