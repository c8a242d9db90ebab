package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"scribe/internal/domain"
	"scribe/internal/pipeline"
)

func scrape(t *testing.T, h http.Handler, remote, auth string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = remote
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestMetricsExposeNamedSeries(t *testing.T) {
	m := New(time.Now().Add(-time.Minute), Sources{
		ActiveSessions: func(context.Context) (int, error) { return 2, nil },
		OpenFlags:      func(context.Context) (int, error) { return 0, errors.New("database gone") },
	})
	obs := m.Observer("Room 1")
	obs(pipeline.Observation{Decode: time.Second, AudioSeconds: 4})                                                                       // a step
	obs(pipeline.Observation{Final: true, Interval: domain.Interval{Start: 0, End: 4}, AudioSeconds: 4, Lag: 3 * time.Second, Queued: 5}) // a line
	m.SetOutbox(7, 1)
	m.OutboxFailure()
	m.SetVocabularyVersion(3)
	log := slog.New(m.LogHandler(slog.NewTextHandler(io.Discard, nil)))
	log.Error("transcription pipeline failed", "session", "abc")
	log.Info("not an error")

	scrape(t, m.Handler(""), "127.0.0.1:5555", "") // a failing source is counted while gathering, so seen next time
	code, body := scrape(t, m.Handler(""), "127.0.0.1:5555", "")
	if code != 200 {
		t.Fatalf("loopback scrape: %d %s", code, body)
	}
	for _, want := range []string{
		NamePipelineLag + `_sum{room="Room 1"} 3`,
		NamePipelineLag + `_count{room="Room 1"} 1`,
		NameRealTimeFactor + `_sum{room="Room 1"} 0.25`,
		NameDecodeSeconds + `_count{room="Room 1"} 1`,
		NameQueueDepth + `{room="Room 1"} 5`,
		NameUtterances + `{room="Room 1"} 1`,
		NameOutboxBacklog + " 7",
		NameOutboxFailed + " 1",
		NameOutboxFailures + " 1",
		NameErrors + `{kind="transcription pipeline failed"} 1`,
		NameErrors + `{kind="metrics_source"} `, // the failing OpenFlags source (counted at every scrape)
		NameOpenFlags + " -1",
		NameActiveSessions + " 2",
		NameVocabularyInUse + " 3",
		NameUptime + " ",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, `kind="not an error"`) {
		t.Error("an Info record was counted as an error")
	}
	if strings.Contains(body, "abc") {
		t.Error("a log attribute leaked into the metrics")
	}
}

func TestMetricsAccess(t *testing.T) {
	m := New(time.Now(), Sources{})
	open := m.Handler("")
	guarded := m.Handler("s3cret-token")
	cases := []struct {
		name   string
		h      http.Handler
		remote string
		auth   string
		want   int
	}{
		{"loopback v4", open, "127.0.0.1:1", "", 200},
		{"loopback v6", open, "[::1]:1", "", 200},
		{"remote without token configured", open, "192.168.1.20:1", "", 403},
		{"remote with a token nobody configured", open, "192.168.1.20:1", "Bearer anything", 403},
		{"remote with the token", guarded, "192.168.1.20:1", "Bearer s3cret-token", 200},
		{"remote with a wrong token", guarded, "192.168.1.20:1", "Bearer s3cret-tokeX", 403},
		{"remote with basic auth", guarded, "192.168.1.20:1", "Basic s3cret-token", 403},
		{"loopback still allowed with a token set", guarded, "127.0.0.1:1", "", 200},
	}
	for _, c := range cases {
		code, body := scrape(t, c.h, c.remote, c.auth)
		if code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, code, c.want)
		}
		if code == 403 && strings.Contains(body, NameUptime) {
			t.Errorf("%s: a refused scrape shows figures", c.name)
		}
	}
	// A proxy on the same box forwarding a remote client does not make it local.
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "127.0.0.1:1"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	if Allowed(req, "") {
		t.Error("a forwarded request counted as loopback")
	}
}
