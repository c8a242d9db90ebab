package transcribe

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// DefaultMaxQueuedPerRoom bounds one room's waiting committed utterances. A live stream
// has at most one committed utterance in the engine at a time (its pipeline queues the
// rest, with back-pressure), so the bound only bites when several streams share a room
// name or a caller misbehaves.
const DefaultMaxQueuedPerRoom = 8

// maxRoomsKept bounds the per-room statistics kept for rooms with nothing waiting: each
// live stream gets its own name, so without a bound a long-running box would keep one
// entry per session forever.
const maxRoomsKept = 256

// ErrPreempted is returned when a step or idle-time decode was cancelled so that
// committed work waiting for a decoder could have it. The stream simply decodes again
// later, over more audio.
var ErrPreempted = errors.New("transcribe: decode preempted by committed work")

// ErrQueueFull is returned by Transcribe when the room already has
// MaxQueuedPerRoom committed utterances waiting.
var ErrQueueFull = errors.New("transcribe: room's decode queue is full")

type roomCtxKey struct{}

// WithRoom names the room (or stream) whose work ctx carries: the scheduler shares
// decoders fairly between rooms and reports lag per room.
func WithRoom(ctx context.Context, room string) context.Context {
	return context.WithValue(ctx, roomCtxKey{}, room)
}

// RoomOf is the room named on ctx by WithRoom, or "" when none is.
func RoomOf(ctx context.Context) string {
	r, _ := ctx.Value(roomCtxKey{}).(string)
	return r
}

// Scheduled describes one decode the scheduler ran, for metrics.
type Scheduled struct {
	Room         string
	Final        bool          // committed (true) or a step
	Wait         time.Duration // time queued for a decoder (the room's scheduling lag)
	Decode       time.Duration
	AudioSeconds float64
	Err          error
}

// RoomStats is one room's scheduling figures since it was first seen.
type RoomStats struct {
	Room    string `json:"room"`
	Waiting int    `json:"waiting"` // committed utterances queued now
	Served  int    `json:"served"`  // committed utterances given a decoder
	Steps   int    `json:"steps"`   // step decodes given a decoder
	// StepsWaiting is the room's steps queued now (a stream has at most one decode
	// outstanding, so this is 0 or 1 per stream).
	StepsWaiting int `json:"steps_waiting"`
	// Preempted counts step decodes of this room cancelled mid-decode because committed
	// work (of any room) was waiting for their decoder.
	Preempted int `json:"preempted"`
	// MaxStepWait is the longest a step waited for a decoder: under load it grows, and so
	// does the audio each step covers.
	MaxStepWait time.Duration `json:"max_step_wait_ns"`
	Rejected    int           `json:"rejected"` // committed utterances refused (ErrQueueFull)
	LastWait    time.Duration `json:"last_wait_ns"`
	MaxWait     time.Duration `json:"max_wait_ns"`
	// MaxQueued is the longest the room's queue has been.
	MaxQueued int       `json:"max_queued"`
	lastSeen  time.Time // for evicting idle rooms
}

// Stats is a snapshot of the scheduler.
type Stats struct {
	Workers int         `json:"workers"`
	Free    int         `json:"free"`
	Waiting int         `json:"waiting"`
	Rooms   []RoomStats `json:"rooms"` // sorted by name
}

// Room returns the named room's figures (zero when unknown).
func (s Stats) Room(name string) RoomStats {
	for _, r := range s.Rooms {
		if r.Room == name {
			return r
		}
	}
	return RoomStats{Room: name}
}

// request is one committed utterance, or one stream's step, waiting for a decoder.
type request struct {
	room   string
	queued time.Time
	ready  chan Decoder // buffered: the scheduler never blocks handing a decoder over
	// A step is lent its decoder (preemptible): ctx is the step's, and work and
	// preempted are set, under s.mu, when the decoder is handed over.
	step      bool
	ctx       context.Context
	work      context.Context
	preempted func() bool
}

// provHold is a decoder lent to a step or to idle-time work, which committed work may
// take back.
type provHold struct {
	room      string
	since     time.Time
	cancel    context.CancelFunc
	preempted bool
	lowest    bool // idle-time work (WhenIdle): below provisional text, taken back first
}

type roomState struct {
	RoomStats
	queue []*request
	steps []*request
}

// scheduler hands decoders to rooms: committed work before steps, rooms served
// round-robin when several wait, each room's queue bounded.
type scheduler struct {
	mu        sync.Mutex
	size      int
	maxQueue  int
	free      []Decoder
	rooms     map[string]*roomState
	ring      []string              // rooms with waiting committed requests, in the order they will be served
	stepRing  []string              // rooms with waiting steps, likewise
	waiting   int                   // committed requests waiting
	stepsWait int                   // steps waiting
	prov      map[Decoder]*provHold // decoders running provisional or idle-time work
	lastLive  time.Time             // the last time live work took or gave back a decoder
	idle      chan struct{}         // closed when every decoder is free and nothing waits
}

func newScheduler(decoders []Decoder, maxQueue int) *scheduler {
	return &scheduler{
		size:     len(decoders),
		maxQueue: maxQueue,
		free:     append([]Decoder(nil), decoders...),
		rooms:    map[string]*roomState{},
		prov:     map[Decoder]*provHold{},
	}
}

// room returns the room's state, creating it (and evicting idle rooms past the bound).
func (s *scheduler) room(name string) *roomState {
	rs, ok := s.rooms[name]
	if !ok {
		if len(s.rooms) >= maxRoomsKept {
			s.evictIdle()
		}
		rs = &roomState{RoomStats: RoomStats{Room: name}}
		s.rooms[name] = rs
	}
	rs.lastSeen = time.Now()
	return rs
}

// evictIdle drops the least recently seen half of the rooms with nothing waiting.
func (s *scheduler) evictIdle() {
	var idle []*roomState
	for _, rs := range s.rooms {
		if len(rs.queue) == 0 && len(rs.steps) == 0 {
			idle = append(idle, rs)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastSeen.Before(idle[j].lastSeen) })
	for _, rs := range idle[:len(idle)/2+len(idle)%2] {
		delete(s.rooms, rs.Room)
	}
}

// acquire waits for a decoder for a committed utterance of room.
func (s *scheduler) acquire(ctx context.Context, room string) (Decoder, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	rs := s.room(room)
	s.lastLive = time.Now()
	if len(s.free) > 0 && s.waiting == 0 {
		s.preemptLowestLocked()
		d := s.popFree()
		rs.Served++
		rs.LastWait = 0
		s.mu.Unlock()
		return d, 0, nil
	}
	if len(rs.queue) >= s.maxQueue {
		rs.Rejected++
		s.mu.Unlock()
		return nil, 0, fmt.Errorf("room %q: %d waiting: %w", room, len(rs.queue), ErrQueueFull)
	}
	req := &request{room: room, queued: time.Now(), ready: make(chan Decoder, 1)}
	if len(rs.queue) == 0 {
		s.ring = append(s.ring, room)
	}
	rs.queue = append(rs.queue, req)
	rs.Waiting = len(rs.queue)
	rs.MaxQueued = max(rs.MaxQueued, len(rs.queue))
	s.waiting++
	s.preemptLocked()
	s.mu.Unlock()
	return s.await(ctx, req)
}

// await waits for the decoder handed to queued request req, or for ctx to end, when req
// leaves the queue (a decoder handed over just as ctx ended is passed on).
func (s *scheduler) await(ctx context.Context, req *request) (Decoder, time.Duration, error) {
	select {
	case d := <-req.ready:
		return d, time.Since(req.queued), nil
	case <-ctx.Done():
		s.mu.Lock()
		removed := s.remove(req)
		s.mu.Unlock()
		if !removed {
			s.release(<-req.ready)
		}
		return nil, 0, ctx.Err()
	}
}

// preemptLocked takes a decoder back from provisional work for each committed request
// that waits beyond those already being taken back: provisional text is a courtesy, and a
// long provisional decode must not hold up a room's committed text (or another room's).
// The oldest provisional decode goes first. s.mu is held.
func (s *scheduler) preemptLocked() {
	pending := 0
	var oldest *provHold
	for _, h := range s.prov {
		switch {
		case h.preempted:
			pending++
		case oldest == nil, h.lowest && !oldest.lowest, h.lowest == oldest.lowest && h.since.Before(oldest.since):
			oldest = h
		}
	}
	if oldest == nil || pending >= s.waiting {
		return
	}
	oldest.preempted = true
	if rs := s.rooms[oldest.room]; rs != nil {
		rs.Preempted++
	}
	oldest.cancel()
}

// acquireStep waits for a decoder for one step of room's stream, after every committed
// request and, round-robin, the other rooms' steps. The decoder is lent: the step must run
// under the returned context, which is cancelled if committed work comes to need the
// decoder; preempted then says whether that happened.
func (s *scheduler) acquireStep(ctx context.Context, room string) (d Decoder, work context.Context, preempted func() bool, wait time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, 0, err
	}
	s.mu.Lock()
	rs := s.room(room)
	s.lastLive = time.Now()
	// Steps outrank idle-time work: take the machine back from it.
	s.preemptLowestLocked()
	if len(s.free) > 0 && s.waiting == 0 && s.stepsWait == 0 {
		rs.Steps++
		d, work, preempted = s.lendLocked(ctx, &provHold{room: room})
		s.mu.Unlock()
		return d, work, preempted, 0, nil
	}
	req := &request{room: room, queued: time.Now(), ready: make(chan Decoder, 1), step: true, ctx: ctx}
	if len(rs.steps) == 0 {
		s.stepRing = append(s.stepRing, room)
	}
	rs.steps = append(rs.steps, req)
	rs.StepsWaiting = len(rs.steps)
	s.stepsWait++
	s.mu.Unlock()

	if d, wait, err = s.await(ctx, req); err != nil {
		return nil, nil, nil, 0, err
	}
	s.mu.Lock()
	work, preempted = req.work, req.preempted
	s.mu.Unlock()
	return d, work, preempted, wait, nil
}

// lendLocked lends a free decoder to the provisional or idle-time work h describes:
// the work runs under the returned context, which preemption cancels, and preempted
// reports whether it was. s.mu is held.
func (s *scheduler) lendLocked(ctx context.Context, h *provHold) (Decoder, context.Context, func() bool) {
	d := s.popFree()
	work, preempted := s.lendTo(ctx, d, h)
	return d, work, preempted
}

// lendTo records d as lent to the work h describes. s.mu is held.
func (s *scheduler) lendTo(ctx context.Context, d Decoder, h *provHold) (context.Context, func() bool) {
	work, cancel := context.WithCancel(ctx)
	h.since, h.cancel = time.Now(), cancel
	s.prov[d] = h
	return work, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return h.preempted
	}
}

// preemptLowestLocked cancels idle-time work: it may use every core (a second-pass model
// has its own threads), so any live decode, even on another free decoder, takes the
// machine back from it. s.mu is held.
func (s *scheduler) preemptLowestLocked() {
	for _, h := range s.prov {
		if h.lowest && !h.preempted {
			h.preempted = true
			h.cancel()
		}
	}
}

// tryIdle lends a decoder to idle-time work if every decoder is free, nothing waits and
// no live work has run for quiet. Otherwise it returns a channel closed when all decoders
// are next free (nil if they are free now but not for long enough) and how long the quiet
// period still has to run.
func (s *scheduler) tryIdle(ctx context.Context, quiet time.Duration) (d Decoder, work context.Context, preempted func() bool, wait <-chan struct{}, retry time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) < s.size || s.waiting > 0 || s.stepsWait > 0 {
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		return nil, nil, nil, s.idle, 0
	}
	if since := time.Since(s.lastLive); since < quiet {
		return nil, nil, nil, nil, quiet - since
	}
	d, work, preempted = s.lendLocked(ctx, &provHold{room: "(idle)", lowest: true})
	return d, work, preempted, nil, 0
}

func (s *scheduler) popFree() Decoder {
	d := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return d
}

// release gives d to the next waiting room in round-robin order, or back to the pool.
func (s *scheduler) release(d Decoder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, lent := s.prov[d]
	if lent {
		h.cancel() // frees the lent work's context
		delete(s.prov, d)
	}
	if !lent || !h.lowest {
		s.lastLive = time.Now()
	}
	defer func() {
		if s.idle != nil && len(s.free) == s.size && s.waiting == 0 {
			close(s.idle)
			s.idle = nil
		}
	}()
	switch {
	case len(s.ring) > 0:
		rs, req := s.next(&s.ring, func(rs *roomState) *[]*request { return &rs.queue })
		rs.Waiting = len(rs.queue)
		s.waiting--
		wait := time.Since(req.queued)
		rs.Served++
		rs.LastWait = wait
		rs.MaxWait = max(rs.MaxWait, wait)
		req.ready <- d
	case len(s.stepRing) > 0:
		rs, req := s.next(&s.stepRing, func(rs *roomState) *[]*request { return &rs.steps })
		name := rs.Room
		rs.StepsWaiting = len(rs.steps)
		s.stepsWait--
		rs.Steps++
		rs.MaxStepWait = max(rs.MaxStepWait, time.Since(req.queued))
		req.work, req.preempted = s.lendTo(req.ctx, d, &provHold{room: name})
		req.ready <- d
	default:
		s.free = append(s.free, d)
	}
}

// next takes the first request of the first room in ring, moving the room to the back
// of the line if it has more waiting (other rooms go first).
func (s *scheduler) next(ring *[]string, queueOf func(*roomState) *[]*request) (*roomState, *request) {
	name := (*ring)[0]
	*ring = (*ring)[1:]
	rs := s.rooms[name]
	q := queueOf(rs)
	req := (*q)[0]
	*q = (*q)[1:]
	if len(*q) > 0 {
		*ring = append(*ring, name)
	}
	return rs, req
}

// remove takes a cancelled request out of its room's queue; false if it was already served.
func (s *scheduler) remove(req *request) bool {
	rs := s.rooms[req.room]
	if rs == nil {
		return false
	}
	queue, ring, count := &rs.queue, &s.ring, &s.waiting
	if req.step {
		queue, ring, count = &rs.steps, &s.stepRing, &s.stepsWait
	}
	for i, r := range *queue {
		if r != req {
			continue
		}
		*queue = append((*queue)[:i], (*queue)[i+1:]...)
		*count--
		rs.Waiting, rs.StepsWaiting = len(rs.queue), len(rs.steps)
		if len(*queue) == 0 {
			for j, n := range *ring {
				if n == req.room {
					*ring = append((*ring)[:j], (*ring)[j+1:]...)
					break
				}
			}
		}
		return true
	}
	return false
}

// stepsWaiting is the number of steps waiting for a decoder.
func (s *scheduler) stepsWaiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stepsWait
}

func (s *scheduler) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Workers: s.size, Free: len(s.free), Waiting: s.waiting}
	for _, rs := range s.rooms {
		st.Rooms = append(st.Rooms, rs.RoomStats)
	}
	sort.Slice(st.Rooms, func(i, j int) bool { return st.Rooms[i].Room < st.Rooms[j].Room })
	return st
}
