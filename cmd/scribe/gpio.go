package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"scribe/internal/gpio"
)

func init() {
	register("gpio", "check a room agent's recording LED and Start/Stop button wiring (gpio test)", cmdGPIO)
}

const gpioUsage = "scribe gpio test [--chip gpiochip0] [--led 17] [--button 27] [--active-high] [--seconds S]"

// cmdGPIO lets IT check the wiring before the agent uses it: the LED blinks and every
// debounced button press is printed, exactly as the agent will see it.
func cmdGPIO(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		return fmt.Errorf("%w: %s", errUsage, gpioUsage)
	}
	fs := newFlags("gpio test", stderr)
	chip := fs.String("chip", "gpiochip0", "GPIO chip (gpiochip0 on a Raspberry Pi 4 or 5 with a current kernel)")
	ledLine := fs.Int("led", -1, "line (BCM GPIO number) of the recording LED, e.g. 17; -1 = no LED")
	buttonLine := fs.Int("button", -1, "line (BCM GPIO number) of the Start/Stop button, e.g. 27; -1 = no button")
	activeHigh := fs.Bool("active-high", false, "the button connects the line to 3.3 V (internal pull-down) instead of to GND (internal pull-up)")
	seconds := fs.Float64("seconds", 0, "stop after this many seconds (0 = until Ctrl-C)")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *ledLine < 0 && *buttonLine < 0 {
		return fmt.Errorf("%w: give --led, --button or both: %s", errUsage, gpioUsage)
	}
	info, err := gpio.Info(*chip)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s [%s]: %d lines\n", info.Name, info.Label, info.Lines)
	if *seconds > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*seconds*float64(time.Second)))
		defer cancel()
	}

	var blink <-chan time.Time
	var led *gpio.LED
	if *ledLine >= 0 {
		if led, err = gpio.OpenLED(*chip, *ledLine); err != nil {
			return err
		}
		defer led.Close() // dark again on exit
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		blink = t.C
		fmt.Fprintf(stdout, "LED on line %d: blinking (0.5 s on, 0.5 s off)\n", *ledLine)
	}
	var presses <-chan struct{}
	if *buttonLine >= 0 {
		ch, stop, err := gpio.WatchButton(ctx, *chip, *buttonLine, !*activeHigh)
		if err != nil {
			return err
		}
		defer stop()
		presses = ch
		fmt.Fprintf(stdout, "button on line %d: press it\n", *buttonLine)
	}
	fmt.Fprintln(stdout, "Ctrl-C to stop")

	on, n := false, 0
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "stopped: %d button presses\n", n)
			if *buttonLine >= 0 && n == 0 {
				fmt.Fprintln(stdout, "no press was seen: check the button goes from the line's pin to GND (or to 3.3 V with --active-high) and that --button is the BCM GPIO number, not the header pin number")
			}
			return nil
		case <-blink:
			on = !on
			if err := led.SetRecording(on); err != nil {
				return err
			}
		case _, ok := <-presses:
			if !ok {
				// The watcher ended on its own: the line went away or a read failed.
				return fmt.Errorf("button watcher stopped")
			}
			n++
			fmt.Fprintf(stdout, "button pressed (%d)\n", n)
		}
	}
}
