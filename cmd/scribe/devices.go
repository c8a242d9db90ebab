package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"scribe/internal/app"
	"scribe/internal/capture"
	"scribe/internal/domain"
)

func init() {
	register("devices", "list audio input devices (PortAudio)", cmdDevices)
	register("listen", "live transcript of a microphone to stdout until Ctrl-C", cmdListen)
}

func cmdDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices", stderr)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	devs, err := capture.Devices()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-5s %-8s %-9s %-10s %s\n", "INDEX", "DEFAULT", "CHANNELS", "RATE", "NAME")
	for _, d := range devs {
		def := ""
		if d.Default {
			def = "yes"
		}
		fmt.Fprintf(stdout, "%-5d %-8s %-9d %-10.0f %s (%s)\n", d.Index, def, d.Channels, d.DefaultRate, d.Name, d.HostAPI)
	}
	return nil
}

func cmdListen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("listen", stderr)
	var mf modelFlags
	mf.add(fs)
	device := fs.Int("device", -1, "input device index (see scribe devices; -1 = default)")
	channels := fs.Int("channels", 0, "channels to capture: 1; 2 for a clinician mic (left) + patient mic (right); an array's capsules (0 = as audio.microphones in the configuration says, else 1)")
	rate := fs.Float64("rate", 0, "capture sample rate in Hz (0 = the device's default; audio is resampled to 16 kHz)")
	seconds := fs.Float64("seconds", 0, "stop after this many seconds (0 = until Ctrl-C)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := mf.load()
	if err != nil {
		return err
	}
	if *channels == 0 {
		*channels = max(1, cfg.Audio.Microphones.Channels())
	}
	rt, err := app.Load(cfg, app.Options{Provisional: true})
	if err != nil {
		return err
	}
	defer rt.Close()
	src, err := capture.Open(capture.Options{Device: *device, Channels: *channels, Rate: *rate})
	if err != nil {
		return err
	}
	defer src.Close()
	if *seconds > 0 {
		t := time.AfterFunc(time.Duration(*seconds*float64(time.Second)), func() { src.Close() })
		defer t.Stop()
	}
	// Ctrl-C stops capture; what was heard is still committed before exit.
	stop := context.AfterFunc(ctx, func() { src.Close() })
	defer stop()
	fmt.Fprintln(stderr, "● RECORDING — press Ctrl-C to stop")
	tty := isTerminal(stdout)
	// A line is printed once complete; on a terminal, the words committed so far and the
	// provisional rest show on the line in progress.
	var lineSoFar []domain.Segment
	err = rt.Pipeline.Transcribe(context.WithoutCancel(ctx), src, 0, func(ev domain.LiveEvent) {
		so := ""
		if len(lineSoFar) > 0 {
			so = lineSoFar[0].Text + " "
		}
		switch {
		case ev.Kind == domain.EventProvisional && tty:
			fmt.Fprintf(stdout, "\r\033[K… %s", strings.TrimSpace(so+ev.Segment.Text))
		case ev.Kind == domain.EventCommitted:
			lineSoFar = domain.AddCommitted(lineSoFar, ev)
			if ev.Audio == nil {
				if tty {
					fmt.Fprintf(stdout, "\r\033[K… %s", lineSoFar[0].Text)
				}
				return
			}
			l := lineSoFar[0]
			lineSoFar = nil
			if tty {
				fmt.Fprint(stdout, "\r\033[K")
			}
			fmt.Fprintf(stdout, "[%s] %s: %s\n", clock(l.Start, ".")[:8], l.Speaker, cueText(l))
		}
	})
	fmt.Fprintln(stderr, "■ stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
