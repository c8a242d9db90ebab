package transcribe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"scribe/internal/domain"
)

// gateDecoder blocks each decode until the test lets it finish, so the order in which
// the scheduler serves rooms can be read exactly. (The real-libwhisper scheduler tests
// are in internal/app; this one pins the order without timing.)
type gateDecoder struct {
	started chan string
	finish  chan struct{}
}

func (g *gateDecoder) Decode(ctx context.Context, _ []float32, _ domain.DecodeOptions) ([]domain.DecodedSegment, error) {
	g.started <- RoomOf(ctx)
	select {
	case <-g.finish:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// step runs one step decode of room's stream (one second of audio).
func step(e *Engine, room string) ([]domain.DecodedSegment, time.Duration, error) {
	return e.Hypothesis(WithRoom(context.Background(), room), false, func() ([]float32, string) {
		return utter(1, 1).Mono(), ""
	})
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition never reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func waitForQueue(t *testing.T, e *Engine, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().Waiting != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue never reached %d (stats %+v)", n, e.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSchedulerRoundRobinsRoomsAndBoundsQueues(t *testing.T) {
	g := &gateDecoder{started: make(chan string, 32), finish: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.MaxQueuedPerRoom = 3
	e, err := NewEngine(cfg, []Decoder{g})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	submit := func(room string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := e.Transcribe(WithRoom(context.Background(), room), utter(1, 1)); err != nil {
				t.Errorf("%s: %v", room, err)
			}
		}()
	}
	submit("blocker")
	if r := <-g.started; r != "blocker" {
		t.Fatalf("first decode for %q", r)
	}
	// Room a queues its whole burst before b and c: FIFO would serve a, a, a first.
	for i, room := range []string{"a", "a", "a", "b", "b", "b", "c", "c", "c"} {
		submit(room)
		waitForQueue(t, e, i+1)
	}
	if _, _, err := e.Transcribe(WithRoom(context.Background(), "a"), utter(1, 1)); !errors.Is(err, ErrQueueFull) {
		t.Errorf("a fourth queued utterance of room a: %v, want ErrQueueFull", err)
	}
	// A step of room d waits behind every committed utterance.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, _, err := step(e, "d"); err != nil {
			t.Errorf("step: %v", err)
		}
	}()
	waitFor(t, func() bool { return e.sched.stats().Waiting == 9 && e.sched.stepsWaiting() == 1 })
	var order []string
	for range 10 {
		g.finish <- struct{}{}
		order = append(order, <-g.started)
	}
	g.finish <- struct{}{}
	wg.Wait()
	want := []string{"a", "b", "c", "a", "b", "c", "a", "b", "c", "d"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("served %v, want %v", order, want)
		}
	}
	st := e.Stats()
	if st.Free != 1 || st.Waiting != 0 {
		t.Errorf("after the burst: %+v", st)
	}
	if a := st.Room("a"); a.Served != 3 || a.Rejected != 1 || a.MaxQueued != 3 || a.MaxWait <= 0 {
		t.Errorf("room a stats %+v", a)
	}
	if d := st.Room("d"); d.Steps != 1 || d.MaxStepWait <= 0 {
		t.Errorf("room d stats %+v", d)
	}
}

func TestSchedulerCancelledWaiterLeavesQueue(t *testing.T) {
	g := &gateDecoder{started: make(chan string, 4), finish: make(chan struct{})}
	e, err := NewEngine(DefaultConfig(), []Decoder{g})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := e.Transcribe(WithRoom(context.Background(), "busy"), utter(1, 1))
		done <- err
	}()
	<-g.started
	ctx, cancel := context.WithCancel(WithRoom(context.Background(), "stopped"))
	waited := make(chan error, 1)
	go func() {
		_, _, err := e.Transcribe(ctx, utter(1, 1))
		waited <- err
	}()
	waitForQueue(t, e, 1)
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter returned %v", err)
	}
	if st := e.Stats(); st.Waiting != 0 || len(st.Rooms) != 2 || st.Room("stopped").Waiting != 0 {
		t.Errorf("after cancel: %+v", st)
	}
	g.finish <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Free != 1 {
		t.Errorf("decoder not returned: %+v", st)
	}
}

// A step decode holding the only decoder is cancelled as soon as committed work of
// another room has to wait, and the decoder goes to the committed work.
func TestSchedulerCommittedWorkPreemptsSteps(t *testing.T) {
	g := &gateDecoder{started: make(chan string, 4), finish: make(chan struct{})}
	e, err := NewEngine(DefaultConfig(), []Decoder{g})
	if err != nil {
		t.Fatal(err)
	}
	prov := make(chan error, 1)
	go func() {
		_, _, err := step(e, "talking")
		prov <- err
	}()
	if r := <-g.started; r != "talking" {
		t.Fatalf("first decode for %q", r)
	}
	committed := make(chan error, 1)
	go func() {
		_, _, err := e.Transcribe(WithRoom(context.Background(), "finished"), utter(1, 1))
		committed <- err
	}()
	// The gate decoder only returns early when its context is cancelled: the step ends
	// only if the scheduler preempts it.
	if err := <-prov; !errors.Is(err, ErrPreempted) {
		t.Fatalf("preempted step returned %v, want ErrPreempted", err)
	}
	if r := <-g.started; r != "finished" {
		t.Fatalf("decoder went to %q, want the committed work", r)
	}
	g.finish <- struct{}{}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	if st.Room("talking").Preempted != 1 || st.Room("finished").Preempted != 0 || st.Free != 1 {
		t.Errorf("stats after preemption: %+v", st)
	}
	// With a free decoder, a step runs to the end and is not preempted.
	go func() {
		_, _, err := step(e, "talking")
		prov <- err
	}()
	<-g.started
	g.finish <- struct{}{}
	if err := <-prov; err != nil {
		t.Errorf("undisturbed step: %v", err)
	}
}

// Steps of several rooms waiting for the one decoder are served round-robin, one room
// at a time, and a step whose stream stops while it waits leaves the queue.
func TestSchedulerStepsRoundRobinAndCancel(t *testing.T) {
	g := &gateDecoder{started: make(chan string, 8), finish: make(chan struct{})}
	e, err := NewEngine(DefaultConfig(), []Decoder{g})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	run := func(room string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := step(e, room); err != nil {
				t.Errorf("%s: %v", room, err)
			}
		}()
	}
	run("a")
	<-g.started
	for i, room := range []string{"a", "a", "b", "c"} {
		run(room)
		waitFor(t, func() bool { return e.sched.stepsWaiting() == i+1 })
	}
	ctx, cancel := context.WithCancel(WithRoom(context.Background(), "gone"))
	gone := make(chan error, 1)
	go func() {
		_, _, err := e.Hypothesis(ctx, false, func() ([]float32, string) { return utter(1, 1).Mono(), "" })
		gone <- err
	}()
	waitFor(t, func() bool { return e.sched.stepsWaiting() == 5 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled step: %v", err)
	}
	var order []string
	for range 4 {
		g.finish <- struct{}{}
		order = append(order, <-g.started)
	}
	g.finish <- struct{}{}
	wg.Wait()
	if want := []string{"a", "b", "c", "a"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("steps served %v, want %v", order, want)
	}
	if st := e.Stats(); st.Free != 1 || e.sched.stepsWaiting() != 0 {
		t.Errorf("after the steps: %+v", st)
	}
}

// Idle-time work (the second pass) runs only once live work is done, and gives the
// machine back to committed and to provisional work at once.
func TestSchedulerIdleWorkHasLowestPriority(t *testing.T) {
	g := &gateDecoder{started: make(chan string, 4), finish: make(chan struct{})}
	e, err := NewEngine(DefaultConfig(), []Decoder{g})
	if err != nil {
		t.Fatal(err)
	}
	live := make(chan error, 1)
	go func() {
		_, _, err := e.Transcribe(WithRoom(context.Background(), "a"), utter(1, 1))
		live <- err
	}()
	<-g.started
	var liveDone sync.Mutex // held while the live decode runs
	liveDone.Lock()
	idleRan := make(chan bool, 1)
	idle := make(chan error, 1)
	go func() {
		idle <- e.WhenIdle(context.Background(), time.Nanosecond, func(ctx context.Context) error {
			idleRan <- liveDone.TryLock() // false if live work were still running
			<-ctx.Done()                  // runs until taken back
			return ctx.Err()
		})
	}()
	liveDone.Unlock()
	g.finish <- struct{}{}
	if err := <-live; err != nil {
		t.Fatal(err)
	}
	if ok := <-idleRan; !ok {
		t.Fatal("idle-time work ran while a live decode was running")
	}
	// A committed utterance takes the machine back.
	go func() {
		_, _, err := e.Transcribe(WithRoom(context.Background(), "b"), utter(1, 1))
		live <- err
	}()
	if err := <-idle; !errors.Is(err, ErrPreempted) {
		t.Fatalf("idle-time work returned %v, want ErrPreempted", err)
	}
	<-g.started
	g.finish <- struct{}{}
	if err := <-live; err != nil {
		t.Fatal(err)
	}
	// So does a step: it takes the machine back and runs.
	go func() {
		idle <- e.WhenIdle(context.Background(), time.Nanosecond, func(ctx context.Context) error {
			idleRan <- true
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-idleRan
	stepped := make(chan error, 1)
	go func() {
		_, _, err := step(e, "c")
		stepped <- err
	}()
	if err := <-idle; !errors.Is(err, ErrPreempted) {
		t.Fatalf("idle-time work returned %v after a step arrived, want ErrPreempted", err)
	}
	<-g.started
	g.finish <- struct{}{}
	if err := <-stepped; err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Free != 1 || st.Waiting != 0 {
		t.Errorf("stats %+v", st)
	}
}
