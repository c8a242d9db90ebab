// Package metrics exposes scribe's operational figures in the Prometheus text format:
// pipeline lag per room, decoding real-time factor, queue depths, write-back backlog and
// failures, errors, uptime and active sessions. Nothing here carries patient data: the
// only label values are room names, error kinds and outbox states.
//
// # Access
//
// /metrics is meant for a practice's monitoring box, not for users. Handler answers a
// request only when it comes from a loopback address, or when it carries
// "Authorization: Bearer <token>" with the configured token (compared in constant time).
// With no token configured, only loopback scrapes are answered. Everything else gets 403
// (wrong or missing token) without revealing any figure.
package metrics

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"scribe/internal/pipeline"
)

// Series names, for dashboards and tests.
const (
	NamePipelineLag     = "scribe_pipeline_lag_seconds"
	NameRealTimeFactor  = "scribe_decode_real_time_factor"
	NameDecodeSeconds   = "scribe_decode_seconds"
	NameQueueDepth      = "scribe_pipeline_queue_depth"
	NameUtterances      = "scribe_utterances_decoded_total"
	NameOutboxBacklog   = "scribe_outbox_backlog"
	NameOutboxFailed    = "scribe_outbox_failed"
	NameOutboxFailures  = "scribe_outbox_failures_total"
	NameErrors          = "scribe_errors_total"
	NameUptime          = "scribe_uptime_seconds"
	NameActiveSessions  = "scribe_active_sessions"
	NameOpenFlags       = "scribe_safety_flags_open"
	NameVocabularyInUse = "scribe_vocabulary_version"
	NameStoreFailures   = "scribe_store_failures_total"
	NameStorageFree     = "scribe_storage_free_bytes"
	NameStorageFloor    = "scribe_storage_min_free_bytes"
	NameUnsaved         = "scribe_transcript_unsaved_segments"
)

// Metrics holds scribe's collectors in a registry of its own (no global state).
type Metrics struct {
	reg            *prometheus.Registry
	start          time.Time
	lag            *prometheus.HistogramVec
	rtf            *prometheus.HistogramVec
	decode         *prometheus.HistogramVec
	queue          *prometheus.GaugeVec
	utterances     *prometheus.CounterVec
	outboxBacklog  prometheus.Gauge
	outboxFailed   prometheus.Gauge
	outboxFailures prometheus.Counter
	errors         *prometheus.CounterVec
	vocabulary     prometheus.Gauge
	storeFailures  *prometheus.CounterVec
}

// Gauges read at scrape time; each may be nil.
type Sources struct {
	ActiveSessions func(ctx context.Context) (int, error)
	OpenFlags      func(ctx context.Context) (int, error)
	// OutboxBacklog and OutboxFailed, when set, are read at scrape time instead of the
	// values given to SetOutbox.
	OutboxBacklog func(ctx context.Context) (int, error)
	OutboxFailed  func(ctx context.Context) (int, error)
}

// New makes the collectors. now is the process start (uptime counts from it).
func New(start time.Time, src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), start: start}
	m.lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NamePipelineLag,
		Help:    "Time from the VAD closing a line (the end of an utterance heard) to all its words being committed, per room.",
		Buckets: []float64{0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60}}, []string{"room"})
	m.rtf = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameRealTimeFactor,
		Help:    "Decoding time divided by the seconds of audio decoded, per decode (a live room decodes its rolling buffer of a few seconds every step).",
		Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 4}}, []string{"room"})
	m.decode = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameDecodeSeconds,
		Help:    "Wall time of one decode (a room's rolling buffer, at a step or a line's close).",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)}, []string{"room"})
	m.queue = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameQueueDepth,
		Help: "Lines of a room closed and still waiting for their words, at its last committed line."}, []string{"room"})
	m.utterances = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameUtterances,
		Help: "Lines (utterances) committed."}, []string{"room"})
	m.outboxBacklog = prometheus.NewGauge(prometheus.GaugeOpts{Name: NameOutboxBacklog,
		Help: "Approved notes waiting to be written to the patient record."})
	m.outboxFailed = prometheus.NewGauge(prometheus.GaugeOpts{Name: NameOutboxFailed,
		Help: "Approved notes whose write-back failed permanently and needs a person."})
	m.outboxFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: NameOutboxFailures,
		Help: "Write-back attempts that failed (retried or not)."})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameErrors,
		Help: "Errors logged, by kind (the log message)."}, []string{"kind"})
	m.vocabulary = prometheus.NewGauge(prometheus.GaugeOpts{Name: NameVocabularyInUse,
		Help: "Version of the admin-managed vocabulary hint list in use (0: configured file or built-in list)."})
	m.storeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameStoreFailures,
		Help: "Writes to the database that failed because the disk is full or failing, by what was being written."}, []string{"kind"})
	if src.OutboxBacklog == nil {
		m.reg.MustRegister(m.outboxBacklog)
	}
	if src.OutboxFailed == nil {
		m.reg.MustRegister(m.outboxFailed)
	}
	m.reg.MustRegister(m.lag, m.rtf, m.decode, m.queue, m.utterances, m.outboxFailures, m.errors, m.vocabulary, m.storeFailures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: NameUptime, Help: "Seconds since scribe started."},
			func() float64 { return time.Since(m.start).Seconds() }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for name, fn := range map[string]func(context.Context) (int, error){NameActiveSessions: src.ActiveSessions, NameOpenFlags: src.OpenFlags,
		NameOutboxBacklog: src.OutboxBacklog, NameOutboxFailed: src.OutboxFailed} {
		if fn == nil {
			continue
		}
		help := map[string]string{
			NameActiveSessions: "Consultations recording or paused.",
			NameOpenFlags:      "Clinician flags not yet closed by the Clinical Safety Officer.",
			NameOutboxBacklog:  "Approved notes waiting to be written to the patient record (queued, sending or held).",
			NameOutboxFailed:   "Approved notes whose write-back failed permanently and needs a person.",
		}[name]
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := fn(ctx)
			if err != nil {
				m.CountError("metrics_source")
				return -1
			}
			return float64(n)
		}))
	}
	// Series that are zero until something happens are still listed, so a dashboard can
	// tell "no failures" from "not exported".
	m.errors.WithLabelValues("none")
	m.storeFailures.WithLabelValues("segment")
	return m
}

// StoreFailure counts a write that failed for lack of disk (kind: what was written).
func (m *Metrics) StoreFailure(kind string) { m.storeFailures.WithLabelValues(kind).Inc() }

// WatchStorage exports the data disk's free space (read at scrape time), the floor below
// which sessions do not start, and the committed segments waiting in memory for the disk.
func (m *Metrics) WatchStorage(free func() (uint64, error), floor uint64, unsaved func() int) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: NameStorageFree, Help: "Bytes free on the data disk."}, func() float64 {
			n, err := free()
			if err != nil {
				m.CountError("metrics_source")
				return -1
			}
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: NameStorageFloor, Help: "Free bytes below which no session starts (storage.min_free_mb)."},
			func() float64 { return float64(floor) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: NameUnsaved, Help: "Committed transcript segments kept in memory because the disk refused them."},
			func() float64 { return float64(unsaved()) }),
	)
}

// Observe records one pipeline observation for room: a decode's time and real-time
// factor, or a committed line's lag and the room's queue.
func (m *Metrics) Observe(room string, o pipeline.Observation) {
	if o.Decode > 0 {
		m.decode.WithLabelValues(room).Observe(o.Decode.Seconds())
		if o.AudioSeconds > 0 {
			m.rtf.WithLabelValues(room).Observe(o.Decode.Seconds() / o.AudioSeconds)
		}
	}
	if o.Final {
		m.utterances.WithLabelValues(room).Inc()
		m.lag.WithLabelValues(room).Observe(o.Lag.Seconds())
		m.queue.WithLabelValues(room).Set(float64(o.Queued))
	}
}

// Observer returns a pipeline observer bound to a room.
func (m *Metrics) Observer(room string) func(pipeline.Observation) {
	return func(o pipeline.Observation) { m.Observe(room, o) }
}

// SetOutbox is for the write-back outbox: notes waiting, and notes failed for good.
func (m *Metrics) SetOutbox(backlog, failed int) {
	m.outboxBacklog.Set(float64(backlog))
	m.outboxFailed.Set(float64(failed))
}

// OutboxFailure counts one failed write-back attempt.
func (m *Metrics) OutboxFailure() { m.outboxFailures.Inc() }

// CountError counts an error of a kind (a short fixed string, never patient data).
func (m *Metrics) CountError(kind string) { m.errors.WithLabelValues(kind).Inc() }

// SetVocabularyVersion records which vocabulary version the engine now uses.
func (m *Metrics) SetVocabularyVersion(v int64) { m.vocabulary.Set(float64(v)) }

// Registry is the registry behind the handler (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics to loopback clients, or to clients presenting the bearer
// token when one is set (see the package comment).
func (m *Metrics) Handler(token string) http.Handler {
	inner := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Allowed(r, token) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("metrics are served to loopback clients or with the configured bearer token\n"))
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// Allowed reports whether r may read the metrics.
func Allowed(r *http.Request, token string) bool {
	if token != "" {
		if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1 {
			return true
		}
	}
	// A request forwarded by a proxy on the same box is not a local client.
	if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LogHandler wraps a slog handler so that every record at Error level is also counted
// in scribe_errors_total, labelled with its message (messages are fixed strings in
// scribe's code; attributes, which may carry ids, are not used as labels).
func (m *Metrics) LogHandler(h slog.Handler) slog.Handler { return &countingHandler{Handler: h, m: m} }

type countingHandler struct {
	slog.Handler
	m *Metrics
}

func (c *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		c.m.CountError(r.Message)
	}
	return c.Handler.Handle(ctx, r)
}

func (c *countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &countingHandler{Handler: c.Handler.WithAttrs(as), m: c.m}
}

func (c *countingHandler) WithGroup(name string) slog.Handler {
	return &countingHandler{Handler: c.Handler.WithGroup(name), m: c.m}
}
