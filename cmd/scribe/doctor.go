package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"scribe/internal/agent"
	"scribe/internal/capture"
	"scribe/internal/config"
	"scribe/internal/doctor"
	"scribe/internal/store"
)

func init() {
	register("doctor", "check an installation and explain what is wrong, one line per check", cmdDoctor)
}

// installedKeyFile is where scripts/install generates the data key.
const installedKeyFile = "/etc/scribe/data.key"

// installedGatewayConfig is where scripts/install puts the gateway's configuration.
const installedGatewayConfig = "/etc/scribe/scribe.yaml"

func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("doctor", stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	dataDir := fs.String("data-dir", "", "data directory (default from config)")
	keyFile := fs.String("key-file", "", "data key file (default /etc/scribe/data.key if present, else data.key in the data directory; the systemd credential and SCRIBE_DATA_KEY take precedence)")
	bench := fs.Bool("bench", true, "decode 5 s of audio to estimate how many rooms this machine can serve")
	format := fs.String("format", "text", "text or json")
	agentCfg := fs.String("agent-config", "", "check this room agent instead of a gateway: its enrolment file (e.g. "+agent.DefaultConfigPath+"), the gateway, the token, audio devices, the VAD model; default: "+agent.DefaultConfigPath+" when it exists, no --config is given and there is no "+installedGatewayConfig)
	vadModel := fs.String("vad-model", "", "Silero VAD model (default from the configuration)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *agentCfg == "" && *cfgPath == "" && fileExists(agent.DefaultConfigPath) && !fileExists(installedGatewayConfig) {
		// A room box installed with scripts/install --agent has no gateway config: check it
		// as an agent. An all-in-one machine has both and gets the gateway's checks.
		*agentCfg = agent.DefaultConfigPath
	}
	if *format != "text" && *format != "json" {
		return errUsagef("--format %q: want text or json", *format)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *vadModel != "" {
		cfg.Models.VAD = *vadModel
	}
	if *keyFile == "" {
		// scripts/install puts the key in /etc/scribe and hands it to the service as a
		// systemd credential; otherwise the store keeps it beside the database.
		*keyFile = store.DefaultKeyFile(filepath.Join(cfg.DataDir, "scribe.db"))
		if fileExists(installedKeyFile) {
			*keyFile = installedKeyFile
		}
	}
	opt := doctor.Options{Config: cfg, KeyFile: *keyFile, Bench: *bench, BuildTime: buildTime(), AgentConfig: *agentCfg,
		Devices: func() ([]doctor.Device, error) {
			devs, err := capture.Devices()
			out := make([]doctor.Device, 0, len(devs))
			for _, d := range devs {
				out = append(out, doctor.Device{Index: d.Index, Name: d.Name, Channels: d.Channels, Default: d.Default})
			}
			return out, err
		}}
	lines := stdout
	if *format == "json" {
		lines = nil
	}
	results, err := doctor.Run(ctx, opt, lines)
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(results); jerr != nil {
			return jerr
		}
	}
	return err
}

// buildTime is the commit time recorded by the Go toolchain, else the binary's mtime: the
// clock can never rightly be earlier.
func buildTime() time.Time {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil {
			return fi.ModTime()
		}
	}
	return time.Time{}
}
