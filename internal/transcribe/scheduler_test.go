package transcribe

import (
	"context"
	"errors"
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
	if _, _, err := e.TryTranscribe(WithRoom(context.Background(), "d"), utter(1, 1)); !errors.Is(err, ErrBusy) {
		t.Errorf("provisional work while committed waits: %v, want ErrBusy", err)
	}
	var order []string
	for range 9 {
		g.finish <- struct{}{}
		order = append(order, <-g.started)
	}
	g.finish <- struct{}{}
	wg.Wait()
	want := []string{"a", "b", "c", "a", "b", "c", "a", "b", "c"}
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
	if d := st.Room("d"); d.Dropped != 1 {
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

// A provisional decode holding the only decoder is cancelled as soon as committed work of
// another room has to wait, and the decoder goes to the committed work.
func TestSchedulerCommittedWorkPreemptsProvisional(t *testing.T) {
	g := &gateDecoder{started: make(chan string, 4), finish: make(chan struct{})}
	e, err := NewEngine(DefaultConfig(), []Decoder{g})
	if err != nil {
		t.Fatal(err)
	}
	prov := make(chan error, 1)
	go func() {
		_, _, err := e.TryTranscribe(WithRoom(context.Background(), "talking"), utter(8, 1))
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
	// The gate decoder only returns early when its context is cancelled: the provisional
	// decode ends only if the scheduler preempts it.
	if err := <-prov; !errors.Is(err, ErrPreempted) || !errors.Is(err, ErrBusy) {
		t.Fatalf("preempted provisional decode returned %v, want ErrPreempted (an ErrBusy)", err)
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
	// With a free decoder, provisional work runs to the end and is not preempted.
	go func() {
		_, _, err := e.TryTranscribe(WithRoom(context.Background(), "talking"), utter(2, 1))
		prov <- err
	}()
	<-g.started
	g.finish <- struct{}{}
	if err := <-prov; err != nil {
		t.Errorf("undisturbed provisional decode: %v", err)
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
	// So does provisional text: the snapshot that finds the machine taken is dropped,
	// and the idle-time work is stopped for the next one.
	go func() {
		idle <- e.WhenIdle(context.Background(), time.Nanosecond, func(ctx context.Context) error {
			idleRan <- true
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-idleRan
	if _, _, err := e.TryTranscribe(WithRoom(context.Background(), "c"), utter(1, 1)); !errors.Is(err, ErrBusy) {
		t.Errorf("provisional work while idle-time work holds the decoder: %v, want ErrBusy", err)
	}
	if err := <-idle; !errors.Is(err, ErrPreempted) {
		t.Fatalf("idle-time work returned %v after provisional work arrived, want ErrPreempted", err)
	}
	if st := e.Stats(); st.Free != 1 || st.Waiting != 0 {
		t.Errorf("stats %+v", st)
	}
}
