package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"scribe/internal/agent"
	"scribe/internal/app"
	"scribe/internal/audio"
	"scribe/internal/capture"
	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/gpio"
	"scribe/internal/source"
	"scribe/internal/whisper"
)

func init() {
	register("agent", "room agent: enrol with the gateway, then capture, clean and send speech (scribe agent enrol|run)", cmdAgent)
}

func cmdAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsagef("scribe agent enrol URL CODE | scribe agent run [flags]")
	}
	switch args[0] {
	case "enrol", "enroll":
		return agentEnrol(ctx, args[1:], stdout, stderr)
	case "run":
		return agentRun(ctx, args[1:], stdout, stderr)
	}
	return errUsagef("unknown agent subcommand %q (want enrol or run)", args[0])
}

func agentEnrol(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("agent enrol", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "where to write the agent config (mode 0600)")
	fp := fs.String("fingerprint", "", "require the gateway certificate to have this SHA-256 fingerprint")
	name := fs.String("name", "", "a name for this agent, shown to admins (default: the host name)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errUsagef("scribe agent enrol URL CODE [--config F] [--fingerprint SHA256] [--name N]")
	}
	if *name == "" {
		*name, _ = os.Hostname()
	}
	cfg, err := agent.Enrol(ctx, pos[0], pos[1], *name, *fp)
	if err != nil {
		return err
	}
	if err := cfg.Save(*cfgPath); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled as agent %d for room %q\ngateway certificate SHA-256 fingerprint (pinned):\n  %s\ncompare it with the gateway's (scribe doctor on the gateway, or openssl x509 -noout -fingerprint -sha256)\nconfig written to %s\n",
		cfg.AgentID, cfg.RoomName, cfg.Fingerprint, *cfgPath)
	return nil
}

func agentRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("agent run", stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "agent config written by scribe agent enrol")
	scribeCfg := fs.String("scribe-config", "", "scribe configuration (YAML) for the audio and VAD settings")
	device := fs.Int("device", -1, "PortAudio input device (see scribe devices; -1 = default)")
	channels := fs.Int("channels", 0, "input channels: 1; 2 for a clinician mic (left) and patient mic (right); an array's capsules (0 = as audio.microphones in --scribe-config says, else 1)")
	wavPath := fs.String("wav", "", "replay this WAV file at real time instead of a microphone (testing, demos)")
	vadModel := fs.String("vad-model", "", "Silero VAD model (default from the scribe configuration)")
	buffer := fs.Duration("buffer", agent.DefaultBuffer, "speech kept in memory while the gateway is unreachable")
	trace := fs.Bool("trace-frames", false, "print one JSON line per speech frame sent (run, seq, start, samples) on stdout")
	chip := fs.String("gpio-chip", "gpiochip0", "GPIO chip of the LED and button (Linux GPIO character device)")
	ledLine := fs.Int("led-line", -1, "GPIO line of the recording LED (-1 = none)")
	buttonLine := fs.Int("button-line", -1, "GPIO line of the Start/Pause button (-1 = none)")
	buttonHigh := fs.Bool("button-active-high", false, "the button connects the line to 3.3 V (default: to GND, with the internal pull-up)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	acfg, err := agent.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*scribeCfg)
	if err != nil {
		return err
	}
	if *vadModel != "" {
		cfg.Models.VAD = *vadModel
	}
	probe, err := whisper.LoadVAD(cfg.Models.VAD, 1) // fail now, not at the first Start
	if err != nil {
		return err
	}
	probe.Close()

	var open func(context.Context) (domain.AudioSource, error)
	nch := *channels
	if nch == 0 {
		nch = max(1, cfg.Audio.Microphones.Channels())
	}
	if *wavPath != "" {
		w, err := newWAVReplay(*wavPath)
		if err != nil {
			return err
		}
		open, nch = w.open, len(w.chans)
	} else {
		open = func(context.Context) (domain.AudioSource, error) {
			return capture.Open(capture.Options{Device: *device, Channels: nch})
		}
	}
	opts := agent.Options{
		Config:      acfg,
		Channels:    nch,
		Open:        open,
		Frontend:    app.FrontendConfig(cfg),
		Microphones: cfg.Audio.Microphones,
		Buffer:      *buffer,
	}
	if *trace {
		opts.Trace = stdout
	}
	if *ledLine >= 0 {
		led, err := gpio.OpenLED(*chip, *ledLine)
		if err != nil {
			return err
		}
		defer led.Close()
		opts.Indicator = led
	}
	if *buttonLine >= 0 {
		bctx, cancel := context.WithCancel(ctx)
		defer cancel()
		presses, stop, err := gpio.WatchButton(bctx, *chip, *buttonLine, !*buttonHigh)
		if err != nil {
			return err
		}
		defer stop()
		opts.Button = presses
	}
	a, err := agent.New(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "scribe agent for room %q, gateway %s\n", acfg.RoomName, acfg.URL)
	err = a.Run(ctx)
	if errors.Is(err, agent.ErrRefused) {
		return fmt.Errorf("%w (the agent stops; enrol it again if it should record)", err)
	}
	return err
}

// wavReplay plays a WAV file at real time across recording runs: each run continues
// where the last one stopped, so a paused demo does not skip or rush.
type wavReplay struct {
	chans [][]float32
	mu    sync.Mutex
	pos   int
}

func newWAVReplay(path string) (*wavReplay, error) {
	clip, err := audio.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := clip.To16k()
	if len(c.Channels) == 0 || len(c.Channels[0]) == 0 {
		return nil, fmt.Errorf("%s: no audio", path)
	}
	return &wavReplay{chans: c.Channels}, nil
}

func (w *wavReplay) open(context.Context) (domain.AudioSource, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pos >= len(w.chans[0]) {
		return source.NewClip(emptyChans(len(w.chans)), 100*time.Millisecond, 1)
	}
	rest := make([][]float32, len(w.chans))
	for i, c := range w.chans {
		rest[i] = c[w.pos:]
	}
	clip, err := source.NewClip(rest, 100*time.Millisecond, 1)
	if err != nil {
		return nil, err
	}
	return &wavRun{Clip: clip, w: w}, nil
}

func emptyChans(n int) [][]float32 { return make([][]float32, n) }

// wavRun is one run's part of the replay; Close records how far it got.
type wavRun struct {
	*source.Clip
	w    *wavReplay
	once sync.Once
}

func (r *wavRun) Close() error {
	r.once.Do(func() {
		r.w.mu.Lock()
		r.w.pos += int(r.Clip.Position() * domain.SampleRate)
		r.w.mu.Unlock()
	})
	return r.Clip.Close()
}
