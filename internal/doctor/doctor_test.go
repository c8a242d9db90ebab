package doctor

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scribe/internal/capture"
	"scribe/internal/config"
	"scribe/internal/diarize"
	"scribe/internal/fhir/fhirtest"
	"scribe/internal/keys"
	"scribe/internal/server"
	"scribe/internal/store"
)

// testSetup is a working installation on the test models: a data directory with a
// migrated database and a generated TLS certificate, a private key file.
func testSetup(t *testing.T) Options {
	t.Helper()
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	t.Setenv(keys.EnvVar, "")
	cfg := config.Default()
	cfg.Models.Whisper = config.SharedTestModel("for-tests-ggml-tiny.en.bin")
	cfg.Models.VAD = config.SharedTestModel("for-tests-silero-v6.2.0-ggml.bin")
	if cfg.Models.Whisper == "" || cfg.Models.VAD == "" {
		t.Skip("../shared/models not available")
	}
	cfg.Transcription.TemperatureInc = 0
	cfg.Models.Workers, cfg.Models.Threads = 1, 2
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	tlsDir := filepath.Join(cfg.DataDir, "tls")
	os.Mkdir(tlsDir, 0o700)
	if err := server.GenerateSelfSigned(filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "data.key")
	if err := keys.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	return Options{Config: cfg, KeyFile: keyFile, BuildTime: time.Now().Add(-time.Hour), Devices: listDevices}
}

// listDevices lists this machine's real PortAudio input devices.
func listDevices() ([]Device, error) {
	devs, err := capture.Devices()
	var out []Device
	for _, d := range devs {
		out = append(out, Device{Index: d.Index, Name: d.Name, Channels: d.Channels, Default: d.Default})
	}
	return out, err
}

func byCheck(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m
}

func run(t *testing.T, opt Options) (map[string]Result, string, error) {
	t.Helper()
	var out strings.Builder
	rs, err := Run(context.Background(), opt, &out)
	t.Logf("doctor report:\n%s", out.String())
	if lines := strings.Count(out.String(), "\n"); lines != len(rs) {
		t.Errorf("%d lines for %d results", lines, len(rs))
	}
	return byCheck(rs), out.String(), err
}

func wantStatus(t *testing.T, rs map[string]Result, check string, want Status, detail ...string) {
	t.Helper()
	r, ok := rs[check]
	if !ok {
		t.Errorf("no %q check in the report", check)
		return
	}
	if r.Status != want {
		t.Errorf("%s: %s (%s), want %s", check, r.Status, r.Detail, want)
	}
	for _, d := range detail {
		if !strings.Contains(r.Detail, d) {
			t.Errorf("%s: %q does not explain %q", check, r.Detail, d)
		}
	}
}

// On the test setup — test models, a real FHIR server, a private key — nothing fails; the
// test models are reported as unknown to the manifest, and the benchmark gives a room count.
func TestDoctorPassesOnTestSetup(t *testing.T) {
	opt := testSetup(t)
	fhirSrv := fhirtest.Start(t)
	opt.Config.EPR.FHIRBaseURL = fhirSrv.BaseURL
	opt.Bench = true
	rs, out, err := run(t, opt)
	if err != nil {
		t.Fatalf("doctor failed on a working setup: %v\n%s", err, out)
	}
	wantStatus(t, rs, "whisper", Warn, "unknown model (not in manifest)")
	wantStatus(t, rs, "vad", OK, "silero-v6.2.0", "loads and runs")
	wantStatus(t, rs, "data dir", OK, "writable", "0700")
	wantStatus(t, rs, "database", OK, "integrity ok")
	wantStatus(t, rs, "data key", OK, "versions [1]")
	wantStatus(t, rs, "tls", OK, "valid until")
	// The in-memory test server (Medplum's router) answers /metadata with a Bundle, so
	// reachability is all that can be shown; a real EPR gives OK with its FHIR version.
	if r := rs["epr"]; r.Status == Fail || !strings.Contains(r.Detail, fhirSrv.BaseURL) {
		t.Errorf("epr: %s %s", r.Status, r.Detail)
	}
	// The room count depends on the machine and its load at the moment, so only check
	// that the benchmark ran and reported its figures.
	if r := rs["bench"]; r.Status == Fail || !strings.Contains(r.Detail, "decoded 5 s in") || !strings.Contains(r.Detail, "room(s) live") {
		t.Errorf("bench: %s %s", r.Status, r.Detail)
	}
	if _, ok := rs["audio"]; !ok {
		t.Error("no audio device check")
	}
	for _, c := range []string{"disk", "clock"} {
		if rs[c].Status == Fail {
			t.Errorf("%s failed: %s", c, rs[c].Detail)
		}
	}
}

// A missing model is a failure that says how to get it, and the benchmark cannot run.
func TestDoctorReportsMissingModel(t *testing.T) {
	opt := testSetup(t)
	opt.Config.Models.Whisper = filepath.Join(t.TempDir(), "ggml-base.en.bin")
	opt.Bench = true
	rs, _, err := run(t, opt)
	if err == nil {
		t.Fatal("doctor passed with the whisper model missing")
	}
	wantStatus(t, rs, "whisper", Fail, "is missing", "scribe model pull base.en")
	wantStatus(t, rs, "bench", Fail, "missing")
	wantStatus(t, rs, "vad", OK)
}

// An EPR that does not answer (a closed port) is a clear failure naming the URL.
func TestDoctorReportsUnreachableEPR(t *testing.T) {
	opt := testSetup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String() + "/fhir/R4"
	l.Close()
	opt.Config.EPR.FHIRBaseURL = base
	rs, _, err := run(t, opt)
	if err == nil {
		t.Fatal("doctor passed with the EPR unreachable")
	}
	wantStatus(t, rs, "epr", Fail, "cannot reach", base, "connection refused")
}

// A key file other users can read fails, saying how to fix it.
func TestDoctorReportsBadKeyPermissions(t *testing.T) {
	opt := testSetup(t)
	if err := os.Chmod(opt.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	rs, _, err := run(t, opt)
	if err == nil {
		t.Fatal("doctor passed with a world-readable key file")
	}
	wantStatus(t, rs, "data key", Fail, "0644", "chmod 600")

	opt.KeyFile = filepath.Join(t.TempDir(), "none.key")
	rs, _, _ = run(t, opt)
	wantStatus(t, rs, "data key", Fail, "does not exist")
}

// Other broken items: a data directory others can read, a database from a newer scribe,
// a certificate that does not match its key.
func TestDoctorReportsOtherBrokenItems(t *testing.T) {
	opt := testSetup(t)
	os.Chmod(opt.Config.DataDir, 0o755)
	db, err := sql.Open("sqlite3", filepath.Join(opt.Config.DataDir, "scribe.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations(version, name, applied_at) VALUES (99999, '99999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	other := t.TempDir()
	if err := server.GenerateSelfSigned(filepath.Join(other, "c.pem"), filepath.Join(other, "k.pem")); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(other, "k.pem"), filepath.Join(opt.Config.DataDir, "tls", "key.pem"))
	rs, _, err := run(t, opt)
	if err == nil {
		t.Fatal("doctor passed")
	}
	wantStatus(t, rs, "data dir", Fail, "0755", "chmod 700")
	wantStatus(t, rs, "database", Fail, "schema 99999", "newer scribe")
	wantStatus(t, rs, "tls", Fail, "private key does not match")
}

func TestRoomsFormula(t *testing.T) {
	for _, c := range []struct {
		cores, threads int
		decode         float64
		want           int
	}{
		{2, 2, 0.4, 2}, // one decoder, a 5 s buffer decoded in 0.4 s
		{8, 2, 0.4, 10},
		{4, 4, 1.5, 0}, // slower than one decode a second: not even one room keeps up
		{2, 1, 0.5, 4},
		{2, 1, 0, 0},
	} {
		if got := roomsFor(c.cores, c.threads, c.decode); got != c.want {
			t.Errorf("roomsFor(%d, %d, %g) = %d, want %d", c.cores, c.threads, c.decode, got, c.want)
		}
	}
}

// Answers the in-memory FHIR server cannot give: refused credentials, a non-FHIR page, a
// proper R4 capability statement, and another FHIR version.
func TestDoctorEPRAnswers(t *testing.T) {
	opt := testSetup(t)
	for _, c := range []struct {
		status int
		body   string
		want   Status
		detail string
	}{
		{401, `{"resourceType":"OperationOutcome"}`, Fail, "check the EPR credentials"},
		{200, `<html>login</html>`, Fail, "is this the FHIR base URL"},
		{200, `{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1"}`, OK, "FHIR 4.0.1 server; no conditional create for DocumentReference: scribe searches"},
		{200, `{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","rest":[{"resource":[{"type":"DocumentReference","conditionalCreate":true}]}]}`, OK, "conditional create (If-None-Exist)"},
		{200, `{"resourceType":"CapabilityStatement","fhirVersion":"5.0.0"}`, Fail, "scribe writes FHIR R4"},
	} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/fhir/metadata" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(c.status)
			w.Write([]byte(c.body))
		}))
		opt.Config.EPR.FHIRBaseURL = ts.URL + "/fhir/"
		r := checkEPR(context.Background(), opt.withDefaults())
		ts.Close()
		if r.Status != c.want || !strings.Contains(r.Detail, c.detail) {
			t.Errorf("%d %s: got %s %q, want %s containing %q", c.status, c.body, r.Status, r.Detail, c.want, c.detail)
		}
	}
}

// The disk check measures free space against the practice's floor (storage.min_free_mb),
// the same floor below which no session starts.
func TestDoctorDiskCheckUsesTheConfiguredFloor(t *testing.T) {
	opt := testSetup(t)
	free, err := store.FreeBytes(opt.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	opt.Config.Storage.MinFreeMB = int(free>>20) + 1024
	rs, _, err := run(t, opt)
	if err == nil {
		t.Error("doctor passed with less free space than the configured floor")
	}
	wantStatus(t, rs, "disk", Fail, "storage.min_free_mb", "no session starts")
	opt.Config.Storage.MinFreeMB = 1
	rs, _, _ = run(t, opt)
	if rs["disk"].Status == Fail {
		t.Errorf("disk check with a 1 MB floor: %s %s", rs["disk"].Status, rs["disk"].Detail)
	}
}

// The microphone check names the set-up and how speakers will be attributed, and fails
// when no input device delivers the channels it needs: a 4-capsule array behind a
// device in its one-channel (processed) mode cannot give directions.
func TestMicrophonesCheck(t *testing.T) {
	usb := func(ch int) func() ([]Device, error) {
		return func() ([]Device, error) {
			return []Device{{Index: 0, Name: "Built-in", Channels: 2, Default: true}, {Index: 3, Name: "USB array", Channels: ch}}, nil
		}
	}
	for _, c := range []struct {
		mics    diarize.Setup
		devices func() ([]Device, error)
		status  Status
		detail  string
	}{
		{diarize.Setup{Kind: "auto"}, usb(1), OK, "auto"},
		{diarize.Setup{Kind: "array", Capsules: 4, SpacingMM: 45, Layout: "ring"}, usb(6), Warn, "#3 USB array (6 ch)"},
		{diarize.Setup{Kind: "array", Capsules: 4, SpacingMM: 45, Layout: "ring"}, usb(1), Fail, "needs 4 input channels"},
		{diarize.Setup{Kind: "array", Capsules: 2, SpacingMM: 65, Clinician: "left"}, usb(1), OK, `array of 2 capsules 65 mm apart (linear), speakers by direction, clinician named by "left"`},
		{diarize.Setup{Kind: "pair"}, usb(1), OK, "louder channel"},
		{diarize.Setup{Kind: "single"}, usb(1), OK, "voice clustering"},
		{diarize.Setup{Kind: "array", Capsules: 4}, usb(6), Fail, "spacing"},
	} {
		cfg := config.Default()
		cfg.Audio.Microphones = c.mics
		r := checkMicrophones(context.Background(), Options{Config: cfg, Devices: c.devices})
		if r.Check != "mics" || r.Status != c.status || !strings.Contains(r.Detail, c.detail) {
			t.Errorf("%+v: %s %s; want %s containing %q", c.mics, r.Status, r.Detail, c.status, c.detail)
		}
	}
}
