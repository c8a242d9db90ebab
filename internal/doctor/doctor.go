// Package doctor checks that a scribe installation can work and explains, one line per
// item, what is wrong: model files and checksums, the VAD model, audio devices and the
// microphone set-up, disk space
// and data directory permissions, the data key, the TLS certificate, the clock, the EPR's
// FHIR endpoint, the room agents' connectivity, and how many rooms this machine can
// transcribe live. On a room agent (Options.AgentConfig) it checks the agent's side.
package doctor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scribe/internal/config"
	"scribe/internal/diarize"
	"scribe/internal/fhir"
	"scribe/internal/keys"
	"scribe/internal/models"
	"scribe/internal/store"
	"scribe/internal/whisper"
)

// Status is a check's verdict. Only Fail makes the doctor exit non-zero: a Warn is
// something to know about that does not stop scribe working.
type Status int

// The verdicts, in increasing severity.
const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warn:
		return "WARN"
	default:
		return "FAIL"
	}
}

// Result is one line of the report.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"-"`
	Detail string `json:"detail"`
}

// MarshalJSON spells the status as a word.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		Status string `json:"status"`
	}{plain(r), r.Status.String()})
}

// Options say what to check.
type Options struct {
	Config  config.Config
	KeyFile string // data key file; the systemd credential and SCRIBE_DATA_KEY are tried first
	// Bench runs the short decoding benchmark (loads the whisper model: seconds).
	Bench bool
	// Devices lists audio input devices; nil skips the check (tests, machines without PortAudio).
	Devices func() ([]Device, error)
	// HTTPClient reaches the EPR; nil uses one with a 5 s timeout.
	HTTPClient *http.Client
	// BuildTime is when this binary was built: the clock must not be earlier. Zero skips that.
	BuildTime time.Time
	// MinFreeBytes below which the disk check fails; 0 = the configuration's
	// storage.min_free_mb (the floor below which no session starts), or 1 GiB.
	MinFreeBytes uint64
	// AgentConfig, when set, makes this a room agent's doctor (agent.go): the enrolment
	// file, the gateway and its pinned certificate, the token, audio devices and the VAD
	// model, instead of the gateway's checks.
	AgentConfig string
	// Now is the clock the enrolled agents' last-seen times are judged by; nil = time.Now.
	Now func() time.Time
}

// Device is an audio input device as the check sees it.
type Device struct {
	Index    int
	Name     string
	Channels int // input channels it delivers
	Default  bool
}

func (d Device) String() string { return fmt.Sprintf("#%d %s (%d ch)", d.Index, d.Name, d.Channels) }

// Run runs every check, writes one line per check to w as it finishes, and returns the
// results. The error is non-nil when any check failed.
func Run(ctx context.Context, opt Options, w io.Writer) ([]Result, error) {
	opt = opt.withDefaults()
	checks := []func(context.Context, Options) []Result{
		one(checkWhisperModel), one(checkVADModel), one(checkDevices), one(checkMicrophones), one(checkDataDir), one(checkDisk), one(checkDatabase),
		one(checkKey), one(checkTLS), one(checkClock), one(checkEPR), checkAgents, one(checkBench),
	}
	if opt.AgentConfig != "" {
		checks = []func(context.Context, Options) []Result{checkAgentSide, one(checkDevices), one(checkMicrophones), one(checkVADModel), one(checkClock)}
	}
	var out []Result
	failed := 0
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		for _, r := range c(ctx, opt) {
			if r.Check == "" {
				continue // not applicable
			}
			out = append(out, r)
			if r.Status == Fail {
				failed++
			}
			if w != nil {
				fmt.Fprintf(w, "%-4s  %-9s %s\n", r.Status, r.Check, r.Detail)
			}
		}
	}
	if failed > 0 {
		return out, fmt.Errorf("%d check(s) failed", failed)
	}
	return out, nil
}

func (opt Options) withDefaults() Options {
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if opt.MinFreeBytes == 0 {
		opt.MinFreeBytes = uint64(opt.Config.Storage.MinFreeMB) << 20
	}
	if opt.MinFreeBytes == 0 {
		opt.MinFreeBytes = 1 << 30
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return opt
}

// one adapts a check of one line to the checks that may give several (one per agent).
func one(c func(context.Context, Options) Result) func(context.Context, Options) []Result {
	return func(ctx context.Context, opt Options) []Result { return []Result{c(ctx, opt)} }
}

func ok(check, format string, a ...any) Result {
	return Result{Check: check, Status: OK, Detail: fmt.Sprintf(format, a...)}
}
func warn(check, format string, a ...any) Result {
	return Result{Check: check, Status: Warn, Detail: fmt.Sprintf(format, a...)}
}
func fail(check, format string, a ...any) Result {
	return Result{Check: check, Status: Fail, Detail: fmt.Sprintf(format, a...)}
}

// checkModelFile checks the file exists and identifies it against the manifest. A file
// that is not in the manifest (a practice's own fine-tune, the test models) is a warning:
// it may be fine, but nobody has vouched for its digest.
func checkModelFile(check, path, pullName string) (Result, bool) {
	if path == "" {
		return fail(check, "no model configured (models.%s in the config)", check), false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail(check, "%s is missing (%v): run `scribe model pull %s`", path, errors.Unwrap(err), pullName), false
	}
	if !fi.Mode().IsRegular() {
		return fail(check, "%s is not a regular file", path), false
	}
	e, err := models.VerifyAny(path)
	switch {
	case err == nil:
		return ok(check, "%s is %s (size and sha256 match the manifest)", path, e.Name), true
	case errors.Is(err, models.ErrUnknownModel):
		return warn(check, "%s: unknown model (not in manifest), checksum not verified", path), true
	default:
		return fail(check, "%s: %v", path, err), false
	}
}

func checkWhisperModel(_ context.Context, opt Options) Result {
	r, _ := checkModelFile("whisper", opt.Config.Models.Whisper, "base.en")
	return r
}

func checkVADModel(_ context.Context, opt Options) Result {
	r, usable := checkModelFile("vad", opt.Config.Models.VAD, "silero-v6.2.0")
	if !usable {
		return r
	}
	v, err := whisper.LoadVAD(opt.Config.Models.VAD, 1)
	if err != nil {
		return fail("vad", "%s does not load as a Silero VAD model: %v", opt.Config.Models.VAD, err)
	}
	defer v.Close()
	// About a second of silence (whole 512-sample windows) through the network proves it runs, not just parses.
	if _, err := v.Probs(make([]float32, 32*512)); err != nil {
		return fail("vad", "%s loads but does not run: %v", opt.Config.Models.VAD, err)
	}
	r.Detail += "; loads and runs"
	return r
}

func checkDevices(_ context.Context, opt Options) Result {
	if opt.Devices == nil {
		return Result{}
	}
	devs, err := opt.Devices()
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.String()
	}
	if (err != nil || len(names) == 0) && opt.AgentConfig != "" {
		return warn("audio", "no input device usable here (%v): this room agent cannot capture until a microphone is connected (see scribe devices)", err)
	}
	if err != nil || len(names) == 0 {
		return warn("audio", "no input device usable here (%v): fine for a gateway whose rooms use the browser microphone; a room with source \"device\" needs one", err)
	}
	return ok("audio", "%d input device(s): %s", len(names), strings.Join(names, "; "))
}

// checkMicrophones explains the configured microphone set-up (how speakers will be
// attributed) and checks that an input device delivers the channels it needs: an array's
// capsules, a pair's two.
func checkMicrophones(_ context.Context, opt Options) Result {
	m := opt.Config.Audio.Microphones
	if err := m.Validate(); err != nil {
		return fail("mics", "audio.microphones: %v", err)
	}
	var what string
	switch m.Kind {
	case diarize.KindArray:
		layout := m.Layout
		if layout == "" {
			layout = "linear"
		}
		clin := m.Clinician
		if clin == "" {
			clin = diarize.ClinicianFirst
		}
		what = fmt.Sprintf("array of %d capsules %g mm apart (%s), speakers by direction, clinician named by %q", m.Capsules, m.SpacingMM, layout, clin)
	case diarize.KindPair:
		what = "microphone pair (clinician's channel " + map[bool]string{true: "right", false: "left"}[m.Clinician == diarize.ClinicianRight] + "), speakers by the louder channel"
	case diarize.KindSingle:
		what = "one microphone, speakers by voice clustering (clinician: the first voice after Start)"
	default:
		return ok("mics", "auto: one channel is attributed by voice clustering, two as a microphone pair; set audio.microphones for an array on the desk")
	}
	need := m.Channels()
	if opt.Devices == nil {
		return ok("mics", "%s", what)
	}
	devs, err := opt.Devices()
	if err != nil || len(devs) == 0 {
		return warn("mics", "%s; no input device to check it against (%v)", what, err)
	}
	var fit []string
	defaultFits := false
	for _, d := range devs {
		if d.Channels >= need {
			fit = append(fit, d.String())
			defaultFits = defaultFits || d.Default
		}
	}
	switch {
	case len(fit) == 0:
		return fail("mics", "%s: needs %d input channels, and no device delivers that many (%d at most): check the array's firmware/channel mode, or set audio.microphones to what is connected", what, need, maxChannels(devs))
	case !defaultFits:
		return warn("mics", "%s: the default input device delivers fewer than %d channels; use one of %s (--device, or the room's source_config device)", what, need, strings.Join(fit, "; "))
	}
	return ok("mics", "%s; %d channels from %s", what, need, strings.Join(fit, "; "))
}

func maxChannels(devs []Device) int {
	n := 0
	for _, d := range devs {
		n = max(n, d.Channels)
	}
	return n
}

func checkDataDir(_ context.Context, opt Options) Result {
	dir := opt.Config.DataDir
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return warn("data dir", "%s does not exist yet; scribe serve creates it (mode 0700)", dir)
	}
	if err != nil {
		return fail("data dir", "%s: %v", dir, err)
	}
	if !fi.IsDir() {
		return fail("data dir", "%s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return fail("data dir", "%s has mode %04o: other users can reach patient data (chmod 700 %s)", dir, perm, dir)
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return fail("data dir", "%s is not writable by this user: %v", dir, err)
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return ok("data dir", "%s exists, is writable and is private (mode %04o)", dir, fi.Mode().Perm())
}

func checkDisk(_ context.Context, opt Options) Result {
	dir := existingParent(opt.Config.DataDir)
	free, err := store.FreeBytes(dir)
	if err != nil {
		return fail("disk", "cannot measure free space on %s: %v", dir, err)
	}
	gib, floor := float64(free)/(1<<30), float64(opt.MinFreeBytes)/(1<<30)
	switch {
	case free < opt.MinFreeBytes:
		return fail("disk", "%.1f GiB free on %s, below the floor of %.1f GiB (storage.min_free_mb): no session starts until space is freed", gib, dir, floor)
	case free < 5*opt.MinFreeBytes:
		return warn("disk", "%.1f GiB free on %s: getting low (sessions stop starting below %.1f GiB, storage.min_free_mb)", gib, dir, floor)
	}
	return ok("disk", "%.1f GiB free on %s (floor %.1f GiB)", gib, dir, floor)
}

func existingParent(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			return d
		}
	}
}

// checkDatabase opens the database read-only (no migrations run) and compares its schema
// with what this binary knows.
func checkDatabase(ctx context.Context, opt Options) Result {
	path := filepath.Join(opt.Config.DataDir, "scribe.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return ok("database", "%s not created yet (scribe serve creates it)", path)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(path)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return fail("database", "%s: %v", path, err)
	}
	defer func() {
		db.Close()
		store.ChownSidecars(path) // root running the doctor must not take the -wal/-shm files
	}()
	var version int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fail("database", "%s is not a readable scribe database: %v", path, err)
	}
	var integrity string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&integrity); err != nil || integrity != "ok" {
		return fail("database", "%s fails SQLite's integrity check: %v %s (restore a backup)", path, err, integrity)
	}
	known := store.SchemaVersion()
	switch {
	case version > known:
		return fail("database", "%s is at schema %d but this scribe knows only %d: run a newer scribe or restore a backup", path, version, known)
	case version < known:
		return ok("database", "%s at schema %d; scribe serve will migrate it to %d", path, version, known)
	}
	return ok("database", "%s at schema %d, integrity ok", path, version)
}

func checkKey(_ context.Context, opt Options) Result {
	kr, err := keys.Load(opt.KeyFile)
	switch {
	case errors.Is(err, keys.ErrInsecureFile):
		return fail("data key", "%v", err)
	case errors.Is(err, os.ErrNotExist) && !fileExists(filepath.Join(opt.Config.DataDir, "scribe.db")):
		return warn("data key", "key file %s does not exist yet; scribe serve creates one with a new database", opt.KeyFile)
	case errors.Is(err, os.ErrNotExist):
		return fail("data key", "key file %s does not exist (scripts/install creates /etc/scribe/data.key)", opt.KeyFile)
	case err != nil:
		return fail("data key", "%v", err)
	}
	// A round trip proves the key is usable, not just well-formed.
	ct, err := kr.Encrypt([]byte("doctor"), []byte("doctor"))
	if err == nil {
		_, err = kr.Decrypt(ct, []byte("doctor"))
	}
	if err != nil {
		return fail("data key", "key from %s does not encrypt and decrypt: %v", kr.Source(), err)
	}
	return ok("data key", "from %s, versions %v (encrypting with v%d)", kr.Source(), kr.Versions(), kr.Current())
}

func checkEPR(ctx context.Context, opt Options) Result {
	base := strings.TrimRight(opt.Config.EPR.FHIRBaseURL, "/")
	if base == "" {
		return warn("epr", "no epr.fhir_base_url configured: approved notes are not written to the patient record")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metadata", nil)
	if err != nil {
		return fail("epr", "epr.fhir_base_url %q is not a URL: %v", base, err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := opt.HTTPClient.Do(req)
	if err != nil {
		return fail("epr", "cannot reach the FHIR server at %s: %v", base, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fail("epr", "%s/metadata refused us (%s): check the EPR credentials", base, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return fail("epr", "%s/metadata answered %s", base, resp.Status)
	}
	var cs struct {
		ResourceType string `json:"resourceType"`
		FHIRVersion  string `json:"fhirVersion"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err == nil {
		err = json.Unmarshal(body, &cs)
	}
	if err != nil || cs.ResourceType == "" {
		return fail("epr", "%s/metadata did not answer with a FHIR resource (%v): is this the FHIR base URL?", base, err)
	}
	if cs.ResourceType != "CapabilityStatement" {
		// Reachable and speaking FHIR, but without the capability statement every FHIR
		// server should publish we cannot check its version.
		return warn("epr", "%s is reachable and answers FHIR, but /metadata is a %s, not a CapabilityStatement: FHIR version unchecked", base, cs.ResourceType)
	}
	if !strings.HasPrefix(cs.FHIRVersion, "4.0") {
		return fail("epr", "%s speaks FHIR %q; scribe writes FHIR R4 (4.0.x)", base, cs.FHIRVersion)
	}
	// Exactly once rests on conditional create where the server declares it, and on a
	// search by identifier before each create where it does not (README, Write-back).
	how := "no conditional create for DocumentReference: scribe searches by identifier before each create"
	if fhir.DeclaresConditionalCreate(body) {
		how = "conditional create (If-None-Exist) for DocumentReference"
	}
	return ok("epr", "%s is a FHIR %s server; %s", base, cs.FHIRVersion, how)
}

// roomsFor estimates how many rooms can be transcribed live. A live room's speech is
// decoded again after each step of new speech, a decode of its rolling buffer (a few
// seconds, like the benchmark's) costing about decodeSec whatever its length, since the
// encoder always runs over a full window. A decode with threads threads keeps that many
// cores busy, so the box runs cores/threads decodes at once. Under load a room's steps
// grow rather than queue; rooms are counted at one decode per second of speech each,
// which keeps the text within about two seconds of the speech:
//
//	rooms ≈ (cores / threads) × (1 s / decodeSec)
func roomsFor(cores, threads int, decodeSec float64) int {
	if decodeSec <= 0 || threads <= 0 {
		return 0
	}
	return int(math.Floor(float64(cores) / float64(threads) / decodeSec))
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
