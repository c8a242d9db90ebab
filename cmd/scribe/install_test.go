package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

// scribeBinary builds the scribe command once per test run, for tests that need it as a
// separate process (install, signals).
func scribeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "scribe-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "scribe")
		out, err := exec.Command("go", "build", "-o", builtPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			builtPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, builtPath)
	}
	return builtPath
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (it is in the sid build root)", name)
	}
}

// systemdVerify runs systemd-analyze verify on a unit inside root and returns everything
// it printed: any line is a warning or an error.
func systemdVerify(t *testing.T, root, unit string) (string, error) {
	t.Helper()
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, unit)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// make install (scripts/install) into a staging root lays out the binary, user, config,
// data directory and unit, and the unit passes systemd-analyze verify with no warnings.
func TestInstallIntoStagingRootAndVerifyUnits(t *testing.T) {
	requireTool(t, "systemd-analyze")
	requireTool(t, "systemd-sysusers")
	bin := scribeBinary(t)
	root := t.TempDir()
	install := func() {
		cmd := exec.Command("../../scripts/install", bin)
		cmd.Env = append(os.Environ(), "DESTDIR="+root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/install: %v\n%s", err, out)
		}
	}
	install()

	modes := map[string]os.FileMode{
		"usr/local/bin/scribe":              0o755,
		"etc/systemd/system/scribe.service": 0o644,
		"etc/scribe":                        0o750 | os.ModeDir,
		"etc/scribe/scribe.yaml":            0o640,
		"etc/scribe/data.key":               0o600,
		"var/lib/scribe":                    0o700 | os.ModeDir,
	}
	checkModes(t, root, modes)
	if !hasLine(t, filepath.Join(root, "etc/passwd"), func(l string) bool {
		return strings.HasPrefix(l, "scribe:") && strings.HasSuffix(l, ":/var/lib/scribe:/usr/sbin/nologin")
	}) {
		t.Error("no system user scribe with home /var/lib/scribe and no login shell in etc/passwd")
	}
	if !hasLine(t, filepath.Join(root, "etc/group"), func(l string) bool {
		return strings.HasPrefix(l, "audio:") && strings.Contains(l, "scribe")
	}) {
		t.Error("scribe is not in the audio group")
	}

	// Running it again keeps the key and configuration the operator already has.
	key, _ := os.ReadFile(filepath.Join(root, "etc/scribe/data.key"))
	os.WriteFile(filepath.Join(root, "etc/scribe/scribe.yaml"), []byte("listen: 127.0.0.1:9443\n"), 0o640)
	install()
	key2, _ := os.ReadFile(filepath.Join(root, "etc/scribe/data.key"))
	cfg, _ := os.ReadFile(filepath.Join(root, "etc/scribe/scribe.yaml"))
	if string(key) != string(key2) || len(strings.TrimSpace(string(key))) != 44 {
		t.Errorf("data key changed or malformed on reinstall: %q → %q", key, key2)
	}
	if string(cfg) != "listen: 127.0.0.1:9443\n" {
		t.Errorf("reinstall overwrote the configuration: %q", cfg)
	}

	for _, unit := range []string{"scribe.service"} {
		out, err := systemdVerify(t, root, "/etc/systemd/system/"+unit)
		if err != nil || out != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
		body, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system", unit))
		for _, d := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "SupplementaryGroups=audio", "User=scribe"} {
			if !strings.Contains(string(body), "\n"+d+"\n") {
				t.Errorf("%s lacks %s", unit, d)
			}
		}
	}
	gw, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/scribe.service"))
	if !strings.Contains(string(gw), "\nReadWritePaths=/var/lib/scribe\n") {
		t.Error("scribe.service does not allow writing its data directory")
	}

	// The check has teeth: a unit whose binary is missing, or with a misspelt setting, fails.
	os.Remove(filepath.Join(root, "usr/local/bin/scribe"))
	if out, err := systemdVerify(t, root, "/etc/systemd/system/scribe.service"); err == nil && out == "" {
		t.Error("verify passed with the binary missing")
	}
	bad := filepath.Join(root, "etc/systemd/system/broken.service")
	os.WriteFile(bad, []byte("[Service]\nExecStart=/bin/true\nProtectSystm=strict\n"), 0o644)
	if out, _ := systemdVerify(t, root, "/etc/systemd/system/broken.service"); !strings.Contains(out, "ProtectSystm") {
		t.Errorf("a misspelt setting was not reported: %q", out)
	}
}

// scripts/install --agent (make install-agent) lays out a room box: the binary, the user
// in groups audio and gpio, the udev rule for the GPIO chips and scribe-agent.service,
// which passes systemd-analyze verify, may write nowhere and may open sound cards and
// GPIO chips only. Nothing of the gateway's (data key, data directory, unit) is installed.
func TestInstallAgentIntoStagingRootAndVerifyUnit(t *testing.T) {
	requireTool(t, "systemd-analyze")
	requireTool(t, "systemd-sysusers")
	bin := scribeBinary(t)
	root := t.TempDir()
	for range 2 { // and again: a reinstall keeps working
		cmd := exec.Command("../../scripts/install", "--agent", bin)
		cmd.Env = append(os.Environ(), "DESTDIR="+root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/install --agent: %v\n%s", err, out)
		}
	}
	modes := map[string]os.FileMode{
		"usr/local/bin/scribe":                    0o755,
		"etc/systemd/system/scribe-agent.service": 0o644,
		"etc/udev/rules.d/60-scribe-gpio.rules":   0o644,
		"etc/scribe":                              0o750 | os.ModeDir,
	}
	checkModes(t, root, modes)
	for _, p := range []string{"etc/systemd/system/scribe.service", "etc/scribe/data.key", "etc/scribe/scribe.yaml", "var/lib/scribe"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("the agent install made the gateway's %s", p)
		}
	}
	for _, g := range []string{"audio", "gpio"} {
		if !hasLine(t, filepath.Join(root, "etc/group"), func(l string) bool {
			return strings.HasPrefix(l, g+":") && strings.Contains(l, "scribe")
		}) {
			t.Errorf("scribe is not in the %s group", g)
		}
	}
	rule, _ := os.ReadFile(filepath.Join(root, "etc/udev/rules.d/60-scribe-gpio.rules"))
	if !strings.Contains(string(rule), `KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"`) {
		t.Errorf("udev rule does not give group gpio the GPIO chips: %q", rule)
	}

	unit := "/etc/systemd/system/scribe-agent.service"
	if out, err := systemdVerify(t, root, unit); err != nil || out != "" {
		t.Errorf("systemd-analyze verify scribe-agent.service: %v\n%s", err, out)
	}
	body, _ := os.ReadFile(filepath.Join(root, unit))
	for _, d := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
		"User=scribe", "SupplementaryGroups=audio gpio", "DevicePolicy=closed", "DeviceAllow=char-alsa rw",
		"DeviceAllow=char-gpiochip rw", "CapabilityBoundingSet=", "MemoryDenyWriteExecute=yes",
		"ExecStart=/usr/local/bin/scribe agent run --config /etc/scribe/agent.json"} {
		if !strings.Contains(string(body), "\n"+d+"\n") {
			t.Errorf("scribe-agent.service lacks %s", d)
		}
	}
	// The agent keeps audio in memory only: it gets no writable path at all.
	for _, d := range []string{"ReadWritePaths=", "StateDirectory=", "CacheDirectory=", "LogsDirectory=", "RuntimeDirectory="} {
		if strings.Contains(string(body), "\n"+d) {
			t.Errorf("scribe-agent.service has %s; the agent writes nothing", d)
		}
	}

	// Installing the gateway on the same box afterwards (all-in-one) keeps the agent's
	// gpio membership and both units verify.
	cmd := exec.Command("../../scripts/install", bin)
	cmd.Env = append(os.Environ(), "DESTDIR="+root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/install: %v\n%s", err, out)
	}
	if !hasLine(t, filepath.Join(root, "etc/group"), func(l string) bool { return strings.HasPrefix(l, "gpio:") && strings.Contains(l, "scribe") }) {
		t.Error("installing the gateway dropped scribe from the gpio group")
	}
	for _, u := range []string{"scribe.service", "scribe-agent.service"} {
		if out, err := systemdVerify(t, root, "/etc/systemd/system/"+u); err != nil || out != "" {
			t.Errorf("systemd-analyze verify %s on an all-in-one box: %v\n%s", u, err, out)
		}
	}
}

// checkModes requires each path under root to be installed with its mode (permissions
// and whether it is a directory).
func checkModes(t *testing.T, root string, modes map[string]os.FileMode) {
	t.Helper()
	for p, want := range modes {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s not installed: %v", p, err)
			continue
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
}

func hasLine(t *testing.T, path string, match func(string) bool) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if match(sc.Text()) {
			return true
		}
	}
	return false
}
