package app

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"scribe/internal/domain"
	"scribe/internal/transcribe"
	"scribe/internal/whisper"
)

// The scheduler on real libwhisper with the weightless test model: one decoder state,
// occupied by a long "blocker" decode while the test queues work behind it; cancelling
// the blocker (a session stopping) aborts libwhisper mid-decode and releases the queue.

// realEngine is an engine over one real whisper state of the tiny test model.
func realEngine(t *testing.T, maxQueued int, observe func(transcribe.Scheduled)) *transcribe.Engine {
	t.Helper()
	cfg := testConfig(t)
	model, err := whisper.LoadModel(cfg.Models.Whisper)
	if err != nil {
		t.Fatal(err)
	}
	st, err := model.NewState()
	if err != nil {
		model.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		model.Close()
	})
	tcfg := transcribe.DefaultConfig()
	tcfg.Threads = 2
	tcfg.TemperatureInc = 0
	tcfg.ModelAudioCtx = model.Info().AudioCtx
	tcfg.MaxQueuedPerRoom = maxQueued
	tcfg.Observe = observe
	e, err := transcribe.NewEngine(tcfg, []transcribe.Decoder{st})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// noiseUtterance is seconds of quiet noise (the test model decodes no words from anything).
func noiseUtterance(seq int, seconds float64) domain.Utterance {
	r := rand.New(rand.NewPCG(uint64(seq), 7))
	x := make([]float32, int(seconds*domain.SampleRate))
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.01)
	}
	return domain.Utterance{Seq: seq, Interval: domain.Interval{Start: 0, End: seconds}, Channels: [][]float32{x}, Final: true}
}

// startBlocker occupies the only decoder with a full-window decode that only ends when
// cancelled (it is re-submitted until then), and returns its cancel and result.
func startBlocker(t *testing.T, e *transcribe.Engine) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(transcribe.WithRoom(context.Background(), "blocker"))
	out := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		once := sync.OnceFunc(func() { close(started) })
		for {
			// The first decode is taken before anything else is queued; later ones
			// would queue behind the test's work, so the blocker stops when cancelled.
			done := make(chan error, 1)
			go func() {
				_, _, err := e.Transcribe(ctx, noiseUtterance(0, 29))
				done <- err
			}()
			for e.Stats().Free != 0 && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			once()
			err := <-done
			if err != nil || ctx.Err() != nil {
				out <- err
				return
			}
		}
	}()
	<-started
	return cancel, out
}

func waitQueued(t *testing.T, e *transcribe.Engine, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.Stats().Waiting < n {
		if time.Now().After(deadline) {
			t.Fatalf("queue never reached %d: %+v", n, e.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSchedulerFairAcrossRoomsRealWhisper(t *testing.T) {
	var mu sync.Mutex
	var order []string
	e := realEngine(t, 8, func(s transcribe.Scheduled) {
		if s.Room != "blocker" {
			mu.Lock()
			order = append(order, s.Room)
			mu.Unlock()
		}
	})
	cancelBlocker, blocked := startBlocker(t, e)
	// Three rooms submit bursts of three; room a's whole burst is queued first.
	var wg sync.WaitGroup
	rooms := []string{"a", "a", "a", "b", "b", "b", "c", "c", "c"}
	for i, room := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := e.Transcribe(transcribe.WithRoom(context.Background(), room), noiseUtterance(i+1, 1.5)); err != nil {
				t.Errorf("room %s: %v", room, err)
			}
		}()
		waitQueued(t, e, i+1)
	}
	cancelBlocker()
	if err := <-blocked; !errors.Is(err, context.Canceled) {
		t.Errorf("blocker: %v, want a cancellation", err)
	}
	wg.Wait()
	want := []string{"a", "b", "c", "a", "b", "c", "a", "b", "c"}
	if len(order) != len(want) {
		t.Fatalf("served %v", order)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("served %v, want round-robin %v", order, want)
		}
	}
	st := e.Stats()
	for _, r := range []string{"a", "b", "c"} {
		rs := st.Room(r)
		if rs.Served != 3 || rs.Waiting != 0 || rs.MaxWait <= 0 {
			t.Errorf("room %s: %+v", r, rs)
		}
		t.Logf("room %s: max wait %v", r, rs.MaxWait)
	}
	if st.Free != 1 {
		t.Errorf("decoder not returned: %+v", st)
	}
}

func TestSchedulerBoundsQueuesRealWhisper(t *testing.T) {
	const bound = 4
	e := realEngine(t, bound, nil)
	cancelBlocker, blocked := startBlocker(t, e)
	// A flood of committed work from one room is held to the bound; the rest is refused.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var served, refused int
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := e.Transcribe(transcribe.WithRoom(context.Background(), "flood"), noiseUtterance(i, 1))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				served++
			case errors.Is(err, transcribe.ErrQueueFull):
				refused++
			default:
				t.Errorf("flood %d: %v", i, err)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st := e.Stats().Room("flood"); st.Waiting+st.Rejected == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flood never settled: %+v", e.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if st := e.Stats(); st.Waiting != bound || st.Room("flood").MaxQueued != bound {
		t.Errorf("queue past its bound: %+v", st)
	}
	cancelBlocker()
	<-blocked
	wg.Wait()
	if served != bound || refused != 20-bound {
		t.Errorf("served %d, refused %d; want %d and %d", served, refused, bound, 20-bound)
	}
	if st := e.Stats(); st.Free != 1 || st.Waiting != 0 {
		t.Errorf("after the flood: %+v", st)
	}
}

func TestSchedulerCancelOnStopRealWhisper(t *testing.T) {
	e := realEngine(t, 8, nil)
	cancelBlocker, blocked := startBlocker(t, e)
	// A stopped session's queued utterance leaves the queue at once.
	ctx, stop := context.WithCancel(transcribe.WithRoom(context.Background(), "stopped"))
	waited := make(chan error, 1)
	go func() {
		_, _, err := e.Transcribe(ctx, noiseUtterance(1, 2))
		waited <- err
	}()
	waitQueued(t, e, 1)
	stop()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Errorf("queued utterance of a stopped session: %v", err)
	}
	if st := e.Stats(); st.Waiting != 0 || st.Room("stopped").Waiting != 0 {
		t.Errorf("cancelled request still queued: %+v", st)
	}
	// The decoding session stops: libwhisper aborts mid-decode and frees the decoder.
	began := time.Now()
	cancelBlocker()
	err := <-blocked
	t.Logf("decode aborted %v after cancel", time.Since(began))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, whisper.ErrAborted) {
		t.Errorf("cancelled decode returned %v, want whisper.ErrAborted wrapping context.Canceled", err)
	}
	if st := e.Stats(); st.Free != 1 {
		t.Errorf("decoder not freed after cancel: %+v", st)
	}
	// And the freed decoder serves the next room.
	if _, _, err := e.Transcribe(transcribe.WithRoom(context.Background(), "next"), noiseUtterance(2, 1)); err != nil {
		t.Fatal(err)
	}
}
