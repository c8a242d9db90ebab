package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"scribe/internal/app"
	"scribe/internal/domain"
	"scribe/internal/metrics"
	"scribe/internal/server"
	"scribe/internal/store"
)

// Safety and monitoring settings read from the environment until the config file has
// them: SCRIBE_METRICS_TOKEN lets a remote Prometheus scrape /metrics with a bearer
// token (otherwise only loopback may); SCRIBE_LANGUAGE_GROUPS ("group a,group b")
// turns on the optional, consented language/accent group at session start.
const (
	envMetricsToken   = "SCRIBE_METRICS_TOKEN"
	envLanguageGroups = "SCRIBE_LANGUAGE_GROUPS"
)

// roomTranscriber runs each recording on a pipeline of its own over the shared engine,
// so that its observations are labelled with the room (the pipeline itself is cheap:
// the model, decoders and VAD model files are shared or loaded per run anyway).
type roomTranscriber struct {
	rt *app.Runtime
	m  *metrics.Metrics
}

func (t roomTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	room := server.RoomName(ctx)
	if room == "" {
		room = "unknown"
	}
	p, err := t.rt.NewPipeline(true, t.m.Observer(room))
	if err != nil {
		return err
	}
	return p.Transcribe(ctx, src, offset, emit)
}

// safetyWiring builds the metrics (reading gauges from st), the per-room transcriber,
// the safety options and a logger that counts errors in the metrics.
func safetyWiring(rt *app.Runtime, st *store.Store, wb *writeBack) (tr server.Transcriber, opts server.SafetyOptions, logger *slog.Logger) {
	m := metrics.New(time.Now(), metrics.Sources{ActiveSessions: st.ActiveSessionCount, OpenFlags: st.OpenFlagCount,
		OutboxBacklog: wb.Backlog, OutboxFailed: wb.Failed})
	opts = server.SafetyOptions{Metrics: m, MetricsToken: os.Getenv(envMetricsToken), SetVocabulary: rt.Engine.SetVocabulary}
	for _, g := range strings.Split(os.Getenv(envLanguageGroups), ",") {
		if g = strings.TrimSpace(g); g != "" {
			opts.LanguageGroups = append(opts.LanguageGroups, g)
		}
	}
	logger = slog.New(m.LogHandler(slog.Default().Handler()))
	return roomTranscriber{rt: rt, m: m}, opts, logger
}
