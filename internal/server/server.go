// Package server is the consultation server a GP uses: the embedded web UI, a JSON API,
// live transcript websockets, browser-microphone audio, and the review-and-approve flow.
// State lives in SQLite (internal/store); each recording session owns one transcription
// pipeline goroutine.
package server

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"scribe/internal/domain"
	"scribe/internal/store"
)

// Transcriber turns a live audio source into transcript events.
type Transcriber interface {
	// Transcribe reads src until it returns io.EOF, commits whatever is pending, and returns nil.
	// Cancelling ctx abandons work in progress. offset (seconds) is added to all segment times
	// (a session resumed after Pause continues its timeline). emit is called from one goroutine.
	Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error
}

// SourceFactory opens the audio source of a room for one recording run.
type SourceFactory func(ctx context.Context, room store.Room) (domain.AudioSource, error)

// ApprovedNote is what the write-back receives when a clinician approves a transcript.
type ApprovedNote struct {
	SessionID          string
	DocumentID         string
	NHSNumber          string // "" when none was given
	ClinicianID        int64
	ClinicianName      string
	ClinicianGMC       string
	ClinicianSDSUserID string
	// ClinicianRegistrationBody/Number: NMC, GPhC or HCPC registration of a non-doctor.
	ClinicianRegistrationBody   string
	ClinicianRegistrationNumber string
	RoomID                      int64
	RoomName                    string
	ConsultationStart           time.Time
	ConsultationStop            time.Time
	ApprovedAt                  time.Time
	Text                        string // assembled document, see store.AssembleDocument
}

// Config is the server's settings; the command line loads it from a file and the environment.
type Config struct {
	Listen    string // host:port, default ":8443"
	DataDir   string // database, generated TLS certificate; required
	TLSCert   string // PEM certificate; empty: self-signed one generated in DataDir/tls
	TLSKey    string
	PlainHTTP bool // serve plain HTTP (only behind a TLS-terminating proxy); cookies stay Secure

	Demo     bool     // create demo rooms replaying DemoWAVs and a demo clinician
	DemoWAVs []string // WAV files the demo rooms play at real-time pace
	WAVSpeed float64  // replay speed of WAV rooms (1 = real time; tests use more); 0 means 1

	LoginMaxAge     time.Duration // default 12h
	LoginIdle       time.Duration // default 1h
	LoginRecheck    time.Duration // how often an open websocket re-checks its login; default 15s
	ShutdownTimeout time.Duration // default 30s: time for running pipelines to commit
	MaxBodyBytes    int64         // JSON request limit, default 64 KiB
	BodyReadTimeout time.Duration // a request body must arrive within this; default 10s
	LiveLogSize     int           // messages kept per session for resume, default 2048
	ViewerQueue     int           // per-viewer send queue, default 256

	// Audio retention and transcript purge (retention.go).
	AudioRetention      string        // "none" (default) or "until-approved"
	AudioTTL            time.Duration // until-approved audio is deleted after this; default and max 24h
	SpoolDir            string        // encrypted audio spools; default DataDir/spool
	TranscriptRetention time.Duration // transcripts purged this long after approval; default 30 days
	PurgeInterval       time.Duration // how often the purge runs after the one at start; default 6h

	AgentSeenEvery time.Duration // how often a connected room agent's last_seen_at is refreshed; default 1 min
	// HeartbeatEvery is how often a recording session records that it is alive; after a
	// crash it is marked interrupted at its last heartbeat. Default 5 s.
	HeartbeatEvery time.Duration

	// Audit anchors (anchor.go): a signed checkpoint of the audit chain's head goes to the
	// log (the system journal), CheckpointFile (default DataDir/audit-checkpoints.log) and
	// the database at start, every CheckpointEvery (default 10 min) and at shutdown.
	CheckpointFile  string
	CheckpointEvery time.Duration

	// Storage (storage.go): sessions do not start with less than MinFreeBytes free on the
	// data disk (0: no floor); text that could not be stored is retried every
	// StorageRetryEvery (default 5 s) until it is.
	MinFreeBytes      uint64
	StorageRetryEvery time.Duration
}

// Deps are the parts the server is given rather than builds.
type Deps struct {
	Transcriber Transcriber
	// Store, when set, is used instead of opening DataDir/scribe.db (the caller closes it).
	Store *store.Store
	// OnApproved runs inside the approval transaction; an error aborts the approval.
	OnApproved func(ctx context.Context, tx *sql.Tx, note ApprovedNote) error
	// DeliveryState reports a session's write-back state for the UI (optional).
	DeliveryState func(ctx context.Context, sessionID string) (state, reason string)
	// Deliveries, when set, gives admins the write-back queue and retry.
	Deliveries DeliveryAdmin
	// Corrections, when set, lets clinicians fix, amend and withdraw approved notes and
	// the CSO list amendments and withdrawals (corrections.go).
	Corrections NoteCorrections
	// Sources opens audio sources by room source kind ("wav", "browser", "device");
	// missing kinds fall back to the built-in WAV and browser sources.
	Sources map[string]SourceFactory
	Safety  SafetyOptions // metrics, language groups, vocabulary (safety.go)
	Logger  *slog.Logger
	Stdout  io.Writer // where the URL is printed on start; default os.Stdout
}

// Server is a running (or ready to run) consultation server.
type Server struct {
	cfg      Config
	deps     Deps
	store    *store.Store
	ownsDB   bool
	log      *slog.Logger
	live     *manager
	agents   *agentHub  // room agents (agents.go)
	ret      *retention // retention.go
	anchor   anchoring  // anchor.go
	handler  http.Handler
	policy   store.LoginPolicy
	sockets  socketCounts  // open websockets per login (ws.go)
	throttle loginThrottle // failed logins per source (throttle.go)
	changes  broadcaster   // a session changed state (review.go: worklists)

	mu      sync.Mutex
	url     string
	ready   chan struct{}
	closers []func()
}

// New checks the configuration, opens the database and prepares the handler.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: config needs a data directory")
	}
	if deps.Transcriber == nil {
		return nil, errors.New("server: a transcriber is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = ":8443"
	}
	if cfg.WAVSpeed <= 0 {
		cfg.WAVSpeed = 1
	}
	if cfg.LoginMaxAge <= 0 {
		cfg.LoginMaxAge = 12 * time.Hour
	}
	if cfg.LoginIdle <= 0 {
		cfg.LoginIdle = time.Hour
	}
	if cfg.LoginRecheck <= 0 {
		cfg.LoginRecheck = 15 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = 10 * time.Second
	}
	if cfg.LiveLogSize <= 0 {
		cfg.LiveLogSize = 2048
	}
	if cfg.ViewerQueue <= 0 {
		cfg.ViewerQueue = 256
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 5 * time.Second
	}
	if cfg.CheckpointFile == "" {
		cfg.CheckpointFile = filepath.Join(cfg.DataDir, "audit-checkpoints.log")
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 10 * time.Minute
	}
	if cfg.StorageRetryEvery <= 0 {
		cfg.StorageRetryEvery = 5 * time.Second
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Stdout == nil {
		deps.Stdout = os.Stdout
	}
	if err := privateDir(cfg.DataDir, deps.Logger); err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, ready: make(chan struct{}),
		policy: store.LoginPolicy{MaxAge: cfg.LoginMaxAge, Idle: cfg.LoginIdle}}
	ctx := context.Background()
	if deps.Store != nil {
		s.store = deps.Store
	} else {
		st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "scribe.db"))
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.store, s.ownsDB = st, true
	}
	s.live = newManager(s)
	if m := deps.Safety.Metrics; m != nil {
		m.WatchStorage(func() (uint64, error) { return store.FreeBytes(cfg.DataDir) }, cfg.MinFreeBytes, s.live.unsaved)
	}
	// Before serving: sweep spools left by a crash, start the TTL and purge goroutines.
	if err := s.setUpRetention(ctx); err != nil {
		s.Close()
		return nil, err
	}
	// No passive listening: a session that was recording when the server went down stays
	// paused until its clinician resumes it.
	if err := s.live.pauseOrphans(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.Demo {
		if err := s.setUpDemo(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.handler = s.routes()
	s.startAnchoring() // anchor.go
	return s, nil
}

// privateDir makes dir (0700) or, when it exists readable by others, makes it 0700:
// transcripts, keys and spools live there.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("data directory was open to other users; made private", "dir", dir, "was", fmt.Sprintf("%04o", perm))
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// Store is the server's database.
func (s *Server) Store() *store.Store { return s.store }

// Handler serves the UI, API and websockets (for tests with httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// URL is the address the server listens on, once Run has started listening.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Ready is closed once Run is listening.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Close stops all pipelines at once and closes the database if the server opened it.
// Run does a graceful shutdown itself; Close is for servers used only via Handler.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if s.live != nil {
		s.live.shutdown(ctx)
	}
	s.stopRetention() // held audio is deleted (reason shutdown) while the store is open
	s.stopAnchoring() // a last checkpoint, covering the shutdown's own entries
	if s.ownsDB {
		return s.store.Close()
	}
	return nil
}

// Run listens and serves until ctx is cancelled, then shuts down gracefully: running
// sessions are paused (their pipelines commit what they have), connections close, and
// the database is closed, all within Config.ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.cfg.Listen, err)
	}
	scheme := "https"
	if s.cfg.PlainHTTP {
		scheme = "http"
	} else {
		cert, err := s.loadOrCreateCert()
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, serverTLSConfig(cert))
	}
	url := fmt.Sprintf("%s://%s/", scheme, displayAddr(ln.Addr()))
	s.mu.Lock()
	s.url = url
	s.mu.Unlock()
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Headers and body together; bodyDeadline gives each body its own, shorter limit,
		// and websocket upgrades clear the deadline once they take the connection over.
		ReadTimeout: 10*time.Second + s.cfg.BodyReadTimeout,
		IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("scribe server listening", "url", url)
	fmt.Fprintf(s.deps.Stdout, "scribe is running at %s\n", url)
	close(s.ready)

	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.live.shutdown(shutCtx) // pipelines first: they commit, viewers get the last segments
	s.stopRetention()        // then held audio is deleted (reason shutdown), evidenced
	s.stopAnchoring()        // and the audit chain's head is anchored one last time
	err = hs.Shutdown(shutCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		hs.Close()
		err = nil
	}
	if s.ownsDB {
		if cerr := s.store.Close(); err == nil {
			err = cerr
		}
	}
	s.log.Info("scribe server stopped")
	return err
}

func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
