package gpio

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"
)

const ms = int64(time.Millisecond)

type edgeAt struct {
	t     int64 // milliseconds
	level bool
}

// The debouncer counts a level only after it held for the whole period: contact bounce,
// a spike, and a button held down at start are not presses; a lost edge is tolerated.
func TestDebouncer(t *testing.T) {
	const H, L = true, false
	cases := []struct {
		name    string
		initial bool
		edges   []edgeAt
		settle  int64 // ms; then settle at this time
		presses []int64
	}{
		{"clean press and release", L, []edgeAt{{0, H}, {150, L}}, 400, []int64{150}},
		{"press held, confirmed by the quiet period", L, []edgeAt{{0, H}}, 30, []int64{30}},
		{"press not yet held long enough", L, []edgeAt{{0, H}}, 29, nil},
		{"bouncy press and bouncy release", L, []edgeAt{{0, H}, {2, L}, {3, H}, {5, L}, {6, H}, {200, L}, {201, H}, {203, L}}, 500, []int64{200}},
		{"a 1 ms spike", L, []edgeAt{{0, H}, {1, L}}, 500, nil},
		{"bounce longer than the spike, shorter than the period", L, []edgeAt{{0, H}, {10, L}, {20, H}, {29, L}}, 500, nil},
		{"two presses", L, []edgeAt{{0, H}, {100, L}, {300, H}, {400, L}}, 600, []int64{100, 400}},
		{"held at start: a press only after release", H, []edgeAt{{100, L}, {300, H}}, 600, []int64{600}},
		{"release while held at start is not a press", H, []edgeAt{{100, L}}, 600, nil},
		{"lost falling edge between two risings", L, []edgeAt{{0, H}, {10, H}}, 35, []int64{35}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &debouncer{period: 30 * ms, stable: c.initial}
			var got []int64
			for _, e := range c.edges {
				if d.edge(e.t*ms, e.level) {
					got = append(got, e.t)
				}
			}
			if d.settle(c.settle * ms) {
				got = append(got, c.settle)
			}
			if len(got) != len(c.presses) {
				t.Fatalf("presses confirmed at %v ms, want %v", got, c.presses)
			}
			for i := range got {
				if got[i] != c.presses[i] {
					t.Fatalf("presses confirmed at %v ms, want %v", got, c.presses)
				}
			}
		})
	}
}

// eventBytes lays out a struct gpio_v2_line_event exactly as the kernel writes it (the
// layout TestUAPIMatchesKernelHeader checks), independent of decodeEvent.
func eventBytes(ts int64, id uint32, seq uint32) []byte {
	ev := lineEvent{TimestampNs: uint64(ts), ID: id, Offset: 27, Seqno: seq, LineSeqno: seq}
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&ev)), unsafe.Sizeof(ev))...)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// readEvents decodes real gpio_v2_line_event records from a file descriptor, including
// one split across two writes (a pipe may do that; the kernel never does), skips an
// unknown event id, debounces, and ends with a clear error when the line goes away.
func TestReadEventsDecodesKernelEvents(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	base := monotonicNow() - int64(10*time.Second)
	var stream []byte
	seq := uint32(0)
	add := func(tms int64, id uint32) {
		seq++
		stream = append(stream, eventBytes(base+tms*ms, id, seq)...)
	}
	// A bouncy press held 200 ms, a bouncy release, a 1 ms spike, an event kind this
	// code does not know, then a clean press held 100 ms and released.
	for _, e := range []struct {
		t  int64
		id uint32
	}{{0, 1}, {2, 2}, {3, 1}, {5, 2}, {6, 1}, {200, 2}, {201, 1}, {203, 2}, {400, 1}, {401, 2}, {500, 9}, {600, 1}, {700, 2}} {
		add(e.t, e.id)
	}
	go func() {
		w.Write(stream[:eventSize+20])
		w.Write(stream[eventSize+20:])
		w.Close()
	}()
	var presses int
	d := &debouncer{period: 30 * ms}
	err = readEvents(context.Background(), r, d, func() { presses++ })
	if err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("end of the event stream: %v, want an error saying the line was released", err)
	}
	if presses != 2 {
		t.Errorf("%d presses, want 2 (one per held press; bounce and the spike ignored)", presses)
	}
	if d.stable || (d.pending && d.level) {
		t.Errorf("debouncer state %+v: want released after the last release", *d)
	}
}

// A press with no edge after it is confirmed once the line has been quiet for the
// period (the read deadline path), arrives on the channel, and stop closes the channel.
func TestWatchFileConfirmsAfterQuietPeriodAndStops(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ch, stop := watchFile(context.Background(), r, false, DebouncePeriod, quietLog())
	now := monotonicNow()
	w.Write(append(eventBytes(now, 1, 1), append(eventBytes(now+ms, 2, 2), eventBytes(now+2*ms, 1, 3)...)...))
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatal("channel closed instead of delivering the press")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no press after the quiet period")
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, ok := <-ch; ok {
		t.Error("a second press arrived; the bounce made two")
	}
	if err := stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

// Cancelling the context stops the watcher and closes the channel, with no error.
func TestWatchFileStopsOnContextCancel(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch, stop := watchFile(ctx, r, false, DebouncePeriod, quietLog())
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a press from nowhere")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not stop when its context was cancelled")
	}
	if err := stop(); err != nil {
		t.Errorf("stop after cancel: %v", err)
	}
}
