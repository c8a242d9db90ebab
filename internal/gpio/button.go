package gpio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DebouncePeriod is how long the button must hold a new level before it counts. Contacts
// of ordinary push-buttons bounce for 1–10 ms; 30 ms rejects that and short electrical
// spikes on a long cable, and is still far below what a person notices.
const DebouncePeriod = 30 * time.Millisecond

// debouncer turns raw edges into presses. A new level counts only once it has held for
// the period without another edge, so a bounce or a spike never toggles a recording.
// Times are the kernel's event timestamps (CLOCK_MONOTONIC nanoseconds): judging bounce
// by when the edges happened, not by when they were read, keeps a slow reader right.
type debouncer struct {
	period  int64
	stable  bool // the accepted level: true = active (pressed)
	pending bool // a different level has been seen and is waiting out the period
	level   bool
	since   int64
}

// edge records an edge to level at ts and reports whether a press was confirmed: a
// pending level that held for the whole period before this edge.
func (d *debouncer) edge(ts int64, level bool) (pressed bool) {
	if d.pending && ts < d.since {
		return false // out of order; cannot happen with one line's events
	}
	pressed = d.settle(ts)
	switch {
	case level == d.stable:
		d.pending = false // bounced back before the period ended
	case d.pending && level == d.level:
		// The opposite edge between them was lost (the kernel's event buffer
		// overflowed): the level has been held since the first one.
	default:
		d.pending, d.level, d.since = true, level, ts
	}
	return pressed
}

// settle accepts the pending level if it has held until now, and reports a press when
// that level is "active".
func (d *debouncer) settle(now int64) bool {
	if !d.pending || now-d.since < d.period {
		return false
	}
	d.pending = false
	d.stable = d.level
	return d.stable
}

// deadline is when the pending level will have held for the period.
func (d *debouncer) deadline() (int64, bool) { return d.since + d.period, d.pending }

func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for CLOCK_MONOTONIC
	return ts.Nano()
}

// decodeEvent reads one struct gpio_v2_line_event (native byte order: the kernel's).
func decodeEvent(b []byte) lineEvent {
	ne := binary.NativeEndian
	return lineEvent{
		TimestampNs: ne.Uint64(b[0:]),
		ID:          ne.Uint32(b[8:]),
		Offset:      ne.Uint32(b[12:]),
		Seqno:       ne.Uint32(b[16:]),
		LineSeqno:   ne.Uint32(b[20:]),
	}
}

// WatchButton claims line on chip as an input with edge events and sends one value on
// the returned channel per debounced press. activeLow is the usual wiring (button to GND,
// the SoC's internal pull-up requested as a bias flag): pressed reads 0. With activeLow
// false the button goes to 3.3 V and the internal pull-down is used.
//
// A press waiting unread is not queued behind another: presses toggle a recording, and
// replaying a burst later would toggle it unpredictably. The watcher stops when ctx ends
// or stop is called; then the channel is closed. stop waits for it and returns the error
// that ended it early, if any (the line vanished, a read failed).
func WatchButton(ctx context.Context, chip string, line int, activeLow bool) (<-chan struct{}, func() error, error) {
	flags := flagInput | flagEdgeRising | flagEdgeFalling
	if activeLow {
		// With ACTIVE_LOW the kernel reports levels and edges as "active", so a press is a
		// rising edge either way.
		flags |= flagActiveLow | flagBiasPullUp
	} else {
		flags |= flagBiasPullDown
	}
	fd, info, err := requestLine(chip, line, flags, "button")
	if err != nil {
		return nil, nil, err
	}
	v := lineValues{Mask: 1}
	if err := ioctlPtr(uintptr(fd), ioctlGetLineValues, unsafe.Pointer(&v)); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("gpio: read %s line %d: %w", info.Name, line, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("gpio: %w", err)
	}
	// Non-blocking, so the runtime poller owns it: reads honour deadlines and Close.
	f := os.NewFile(uintptr(fd), fmt.Sprintf("%s line %d", info.Name, line))
	log := slog.Default().With("component", "gpio", "chip", info.Name, "line", line)
	ch, stop := watchFile(ctx, f, v.Bits&1 == 1, DebouncePeriod, log)
	return ch, stop, nil
}

// watchFile reads gpio_v2_line_event records from f (a line request, or a pipe in tests)
// and sends debounced presses. initial is the line's level at the start: a button held
// down while the agent starts is not a press until it is released and pressed again.
func watchFile(ctx context.Context, f *os.File, initial bool, period time.Duration, log *slog.Logger) (<-chan struct{}, func() error) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	var loopErr error
	unblock := context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		defer close(done)
		defer close(out)
		defer f.Close()
		loopErr = readEvents(ctx, f, &debouncer{period: int64(period), stable: initial}, func() {
			select {
			case out <- struct{}{}:
			default:
				log.Warn("button pressed again before the last press was handled; ignored")
			}
		})
	}()
	stop := func() error {
		cancel()
		unblock()
		<-done
		return loopErr
	}
	return out, stop
}

func readEvents(ctx context.Context, f *os.File, d *debouncer, press func()) error {
	buf := make([]byte, 16*eventSize) // the kernel returns whole events only
	var have int                      // a pipe may split one; keep the part read
	for {
		if dl, ok := d.deadline(); ok {
			f.SetReadDeadline(time.Now().Add(time.Duration(dl - monotonicNow())))
		} else {
			f.SetReadDeadline(time.Time{})
		}
		n, err := f.Read(buf[have:])
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if d.settle(monotonicNow()) {
				press()
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			return errors.New("gpio: the button's line was released")
		}
		if err != nil {
			return fmt.Errorf("gpio: read button events: %w", err)
		}
		have += n
		whole := have - have%eventSize
		for off := 0; off < whole; off += eventSize {
			ev := decodeEvent(buf[off : off+eventSize])
			var level bool
			switch ev.ID {
			case eventRisingEdge:
				level = true
			case eventFallingEdge:
				level = false
			default:
				continue // a future event kind
			}
			if d.edge(int64(ev.TimestampNs), level) {
				press()
			}
		}
		have = copy(buf, buf[whole:have])
	}
}
