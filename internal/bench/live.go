package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"scribe/internal/app"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/pipeline"
	"scribe/internal/server"
	"scribe/internal/source"
	"scribe/internal/store"
	"scribe/internal/transcribe"
)

// LiveOptions replay recordings into rooms of a real consultation server (internal/server
// on the real pipeline: clean-up, Silero VAD, the shared decoder scheduler, provisional
// text on), at real-time pace, with one websocket client per session.
type LiveOptions struct {
	Rooms      int
	Seconds    float64 // per room; 0 = the whole recording
	Pace       float64 // 1 = real time (the benchmark); tests use faster
	Recordings []Recording
	// Logger receives the server's log; nil keeps only its errors (on stderr).
	Logger *slog.Logger
}

// UtteranceDelay is one slow utterance, with what the pipeline saw of it (for finding the
// cause of outliers).
type UtteranceDelay struct {
	EndS       float64 `json:"truth_end_s"`         // on the recording's timeline
	DelayS     float64 `json:"delay_s"`             // speech end → committed text at the websocket client
	PipelineS  float64 `json:"pipeline_delay_s"`    // speech end → the pipeline's emit
	UtterS     float64 `json:"vad_utterance_s"`     // length of the decoded VAD utterance(s) covering it
	DecodeS    float64 `json:"decode_s"`            // decoder time of that utterance
	HeardLagS  float64 `json:"segmenter_to_emit_s"` // utterance released by the VAD → text emitted
	QueuedThen int     `json:"queued_behind"`       // the room's finished utterances waiting then
}

// RoomDelays is one room's delays from the end of each utterance's speech (ground
// truth, the wall clock at which the replay reached it) to the moment a websocket client
// received its committed text.
type RoomDelays struct {
	Room       string  `json:"room"`
	Recording  string  `json:"recording"`
	Utterances int     `json:"utterances"`
	Missed     int     `json:"missed"` // truth utterances no committed segment overlapped
	Delay      Summary `json:"delay_s"`
	// PipelineDelay is the same measured at the pipeline's emit (before the store and the
	// websocket): the old figure, kept because it is free and shows the server's share.
	PipelineDelay Summary `json:"pipeline_emit_delay_s"`
	// RunDelay is measured from the end of each stretch of continuous speech instead
	// (truth utterances, either speaker, closer than the VAD's min_silence pause are one
	// stretch): text is committed per VAD utterance, which cannot end while someone is
	// still talking, so an utterance overlapped or closely followed by another waits for
	// the whole stretch. The difference from Delay is that segmentation share.
	RunDelay    Summary          `json:"speech_run_delay_s"`
	Slowest     []UtteranceDelay `json:"slowest"`
	MaxWaitS    float64          `json:"scheduler_max_wait_s"`
	Dropped     int              `json:"provisional_dropped"`
	Preempted   int              `json:"provisional_preempted"`
	Provisional int              `json:"provisional_received"`
}

// LiveReport is one live run.
type LiveReport struct {
	Rooms       int          `json:"rooms"`
	Seconds     float64      `json:"seconds"`
	Pace        float64      `json:"pace"`
	Path        string       `json:"path"` // what the delay is measured through
	Workers     int          `json:"decoders"`
	PerRoom     []RoomDelays `json:"per_room"`
	Overall     Summary      `json:"overall_delay_s"`
	OverallRun  Summary      `json:"overall_speech_run_delay_s"`
	OverallPipe Summary      `json:"overall_pipeline_emit_delay_s"`
	WorstP95    float64      `json:"worst_room_p95_s"`
	WorstRunP95 float64      `json:"worst_room_speech_run_p95_s"`
	// ReplayAudioMB is the bench's own copy of the audio it replays (a microphone would
	// not hold it): part of the RSS figures, not of a room's cost.
	ReplayAudioMB float64 `json:"replay_audio_mb"`
	CPUCores      float64 `json:"cpu_cores_used"` // process CPU seconds / wall seconds
	RSSBaseMB     float64 `json:"rss_before_rooms_mb"`
	RSSPeakMB     float64 `json:"rss_peak_mb"`
	RSSSteadyMB   float64 `json:"rss_steady_mb"`   // median RSS over the second half of the replay
	RSSPerRoom    float64 `json:"rss_per_room_mb"` // (peak − before) / rooms; see bench rooms-memory
	LoadAverage   float64 `json:"load_average_1m"`
	LoadAverageAt float64 `json:"load_average_1m_end"`
	WallS         float64 `json:"wall_s"`
}

// emitted is one committed segment and when it arrived.
type emitted struct {
	seg domain.Segment
	at  time.Time
}

// roomRun is one room's replay: what the source, the pipeline and the websocket client saw.
type roomRun struct {
	name string
	rec  Recording

	mu    sync.Mutex
	t0    time.Time // the replay's first read: sample s is reached at t0 + s/pace
	pipe  []emitted // committed segments at the pipeline's emit
	obs   []pipeline.Observation
	obsAt []time.Time
	ws    []emitted // committed segments received by the websocket client
	prov  int
	err   error
}

// benchTranscriber is the server's Transcriber: a real pipeline per run, named for the
// scheduler by the room, tapping committed events for the pipeline-level figure.
type benchTranscriber struct {
	rt    *app.Runtime
	rooms map[string]*roomRun
}

func (b benchTranscriber) Transcribe(ctx context.Context, src domain.AudioSource, offset float64, emit func(domain.LiveEvent)) error {
	room := server.RoomName(ctx)
	r := b.rooms[room]
	if r == nil {
		return fmt.Errorf("bench: unknown room %q", room)
	}
	p, err := b.rt.NewPipeline(true, func(o pipeline.Observation) {
		if o.Final {
			r.mu.Lock()
			r.obs = append(r.obs, o)
			r.obsAt = append(r.obsAt, time.Now())
			r.mu.Unlock()
		}
	})
	if err != nil {
		return err
	}
	return p.Transcribe(transcribe.WithRoom(ctx, room), src, offset, func(ev domain.LiveEvent) {
		if ev.Kind == domain.EventCommitted {
			r.mu.Lock()
			r.pipe = append(r.pipe, emitted{seg: ev.Segment, at: time.Now()})
			r.mu.Unlock()
		}
		emit(ev)
	})
}

// timedSource notes when the replay started (the clip paces itself from its first read).
type timedSource struct {
	domain.AudioSource
	r    *roomRun
	once sync.Once
}

func (t *timedSource) Read(ctx context.Context) ([][]float32, error) {
	t.once.Do(func() {
		t.r.mu.Lock()
		t.r.t0 = time.Now()
		t.r.mu.Unlock()
	})
	return t.AudioSource.Read(ctx)
}

// RunLive starts a consultation server on a loopback port with a temporary data
// directory, replays opt.Rooms rooms at once into it, watches each session over its
// websocket as the review page does, and measures each utterance's delay.
func RunLive(ctx context.Context, rt *app.Runtime, opt LiveOptions) (*LiveReport, error) {
	if opt.Rooms < 1 {
		return nil, fmt.Errorf("bench live: rooms %d must be at least 1", opt.Rooms)
	}
	if len(opt.Recordings) == 0 {
		return nil, errors.New("bench live: no recordings")
	}
	if opt.Pace <= 0 {
		opt.Pace = 1
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	rep := &LiveReport{Rooms: opt.Rooms, Seconds: opt.Seconds, Pace: opt.Pace, LoadAverage: LoadAverage(), Workers: rt.Engine.Workers(),
		Path: "replay → real server (store, hub) → websocket client; pipeline_emit figures are before the store and websocket"}

	runs := make([]*roomRun, opt.Rooms)
	byName := map[string]*roomRun{}
	for i := range runs {
		base := opt.Recordings[i%len(opt.Recordings)]
		// Each room starts at a different point (7.3 s apart) of its consultation.
		rec := base.Excerpt(float64(i/len(opt.Recordings))*7.3, opt.Seconds)
		r := &roomRun{name: fmt.Sprintf("bench-room-%d", i+1), rec: rec}
		for _, ch := range rec.Channels {
			rep.ReplayAudioMB += float64(4*len(ch)) / (1 << 20)
		}
		runs[i] = r
		byName[r.name] = r
	}

	dir, err := os.MkdirTemp("", "scribe-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench live: %w", err)
	}
	defer os.RemoveAll(dir) // the transcripts (encrypted) and the self-signed certificate
	open := func(_ context.Context, room store.Room) (domain.AudioSource, error) {
		r := byName[room.Name]
		if r == nil {
			return nil, fmt.Errorf("bench: no recording for room %q", room.Name)
		}
		clip, err := source.NewClip(r.rec.Channels, 100*time.Millisecond, opt.Pace)
		if err != nil {
			return nil, err
		}
		return &timedSource{AudioSource: clip, r: r}, nil
	}
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", DataDir: dir, ShutdownTimeout: 30 * time.Second},
		server.Deps{Transcriber: benchTranscriber{rt: rt, rooms: byName}, Logger: opt.Logger, Stdout: io.Discard,
			Sources: map[string]server.SourceFactory{store.SourceWAV: open}})
	if err != nil {
		return nil, err
	}
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(srvCtx) }() // owned here: stopped by stopServer below
	defer func() {
		stopServer()
		<-srvDone
	}()
	select {
	case <-srv.Ready():
	case err := <-srvDone:
		srvDone <- err
		return nil, fmt.Errorf("bench live: server: %w", err)
	}
	cl, err := newBenchClient(ctx, srv, runs)
	if err != nil {
		return nil, err
	}

	rep.RSSBaseMB, _ = RSSMB()
	cpu0, _ := CPUSeconds()
	start := time.Now()
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	var samples []float64
	var sampleTimes []time.Time
	sampler.Add(1)
	go func() { // RSS sampler, owned by this call
		defer sampler.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case now := <-t.C:
				if v, err := RSSMB(); err == nil {
					samples = append(samples, v)
					sampleTimes = append(sampleTimes, now)
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.err = cl.watch(ctx, r)
		}()
	}
	wg.Wait()
	stopSampling()
	sampler.Wait()
	rep.WallS = time.Since(start).Seconds()
	cpu1, _ := CPUSeconds()
	rep.CPUCores = (cpu1 - cpu0) / rep.WallS
	rep.LoadAverageAt = LoadAverage()
	rep.RSSPeakMB = rep.RSSBaseMB
	var steady []float64
	half := start.Add(time.Duration(float64(time.Second) * rep.WallS / 2))
	for i, v := range samples {
		rep.RSSPeakMB = max(rep.RSSPeakMB, v)
		if sampleTimes[i].After(half) {
			steady = append(steady, v)
		}
	}
	rep.RSSSteadyMB = Summarise(steady).P50
	rep.RSSPerRoom = (rep.RSSPeakMB - rep.RSSBaseMB) / float64(opt.Rooms)

	stats := rt.Engine.Stats()
	var all, allPipe, allRun []float64
	for _, r := range runs {
		if r.err != nil {
			return nil, fmt.Errorf("bench live: %s: %w", r.name, r.err)
		}
		spoken := func(sec float64) time.Time { return r.t0.Add(time.Duration(sec / opt.Pace * float64(time.Second))) }
		delays, missed := Delays(r.rec.Truth, r.ws, spoken)
		pipe, _ := Delays(r.rec.Truth, r.pipe, spoken)
		runDelays, _ := Delays(SpeechRuns(r.rec.Truth, rt.Config.Audio.MinSilence), r.ws, spoken)
		rs := stats.Room(r.name)
		rd := RoomDelays{Room: r.name, Recording: r.rec.Name, Utterances: len(r.rec.Truth), Missed: missed,
			Delay: Summarise(delays), PipelineDelay: Summarise(pipe), RunDelay: Summarise(runDelays), MaxWaitS: rs.MaxWait.Seconds(),
			Dropped: rs.Dropped, Preempted: rs.Preempted, Provisional: r.prov, Slowest: r.slowest(spoken, 5)}
		rep.PerRoom = append(rep.PerRoom, rd)
		rep.WorstP95 = max(rep.WorstP95, rd.Delay.P95)
		rep.WorstRunP95 = max(rep.WorstRunP95, rd.RunDelay.P95)
		all = append(all, delays...)
		allPipe = append(allPipe, pipe...)
		allRun = append(allRun, runDelays...)
	}
	rep.Overall = Summarise(all)
	rep.OverallRun = Summarise(allRun)
	rep.OverallPipe = Summarise(allPipe)
	return rep, nil
}

// slowest lists the n truth utterances with the longest websocket delay, with the
// decode of the VAD utterance that completed each.
func (r *roomRun) slowest(spoken func(float64) time.Time, n int) []UtteranceDelay {
	var out []UtteranceDelay
	for _, u := range r.rec.Truth {
		last, ok := lastCovering(u, r.ws)
		if !ok {
			continue
		}
		d := UtteranceDelay{EndS: u.End, DelayS: last.Sub(spoken(u.End)).Seconds()}
		if p, ok := lastCovering(u, r.pipe); ok {
			d.PipelineS = p.Sub(spoken(u.End)).Seconds()
		}
		var latest time.Time
		for i, o := range r.obs {
			if o.Interval.Start < u.End && o.Interval.End > u.Start && r.obsAt[i].After(latest) {
				latest = r.obsAt[i]
				d.UtterS, d.DecodeS, d.HeardLagS, d.QueuedThen = o.AudioSeconds, o.Decode.Seconds(), o.Lag.Seconds(), o.Queued
			}
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DelayS > out[j].DelayS })
	return out[:min(n, len(out))]
}

func lastCovering(u corpus.TruthUtterance, events []emitted) (time.Time, bool) {
	var last time.Time
	for _, ev := range events {
		if ev.seg.Start < u.End && ev.seg.End > u.Start && ev.at.After(last) {
			last = ev.at
		}
	}
	return last, !last.IsZero()
}

// SpeechRuns merges truth utterances (of any speaker) that overlap or are separated by
// less than gap seconds into stretches of continuous speech.
func SpeechRuns(truth []corpus.TruthUtterance, gap float64) []corpus.TruthUtterance {
	us := append([]corpus.TruthUtterance(nil), truth...)
	sort.Slice(us, func(i, j int) bool { return us[i].Start < us[j].Start })
	var out []corpus.TruthUtterance
	for _, u := range us {
		if n := len(out); n > 0 && u.Start < out[n-1].End+gap {
			out[n-1].End = max(out[n-1].End, u.End)
			continue
		}
		out = append(out, corpus.TruthUtterance{Speaker: u.Speaker, Start: u.Start, End: u.End})
	}
	return out
}

// Delays matches truth utterances to committed segments on the recording's timeline: an
// utterance's text is complete when every segment overlapping it has arrived, so its
// delay is the last such arrival minus spoken(its end), the wall clock at which the
// replay reached the end of its speech. Utterances no segment overlaps are missed.
func Delays(truth []corpus.TruthUtterance, events []emitted, spoken func(sec float64) time.Time) (delays []float64, missed int) {
	for _, u := range truth {
		last, ok := lastCovering(u, events)
		if !ok {
			missed++
			continue
		}
		delays = append(delays, last.Sub(spoken(u.End)).Seconds())
	}
	return delays, missed
}

// Chart shows p50 and p95 delay per room against limit (the goal).
func (r *LiveReport) Chart(limit float64) Chart {
	c := Chart{Series: []string{"p50", "p95", "max"}, Limit: limit, Step: 0.5}
	for _, rd := range r.PerRoom {
		c.Groups = append(c.Groups, []float64{rd.Delay.P50, rd.Delay.P95, rd.Delay.Max})
	}
	return c
}

// CapacityStep is one live run of the capacity search.
type CapacityStep struct {
	Rooms       int     `json:"rooms"`
	WorstP95    float64 `json:"worst_room_p95_s"`
	WorstRunP95 float64 `json:"worst_room_speech_run_p95_s"`
	Overall     Summary `json:"overall_delay_s"`
	RSSPeakMB   float64 `json:"rss_peak_mb"`
	RSSPerRoom  float64 `json:"rss_per_room_mb"`
	CPUCores    float64 `json:"cpu_cores_used"`
	Within      bool    `json:"within_bound"`
	WithinRuns  bool    `json:"within_bound_speech_runs"`
}

// CapacityReport is the largest number of rooms whose worst p95 delay stays within Bound:
// per utterance, as the goal is stated, and per stretch of continuous speech (without
// the wait for overlapping or closely following speech, which no scheduler can remove).
type CapacityReport struct {
	BoundS       float64        `json:"bound_s"`
	Seconds      float64        `json:"seconds_per_run"`
	Steps        []CapacityStep `json:"steps"`
	MaxRooms     int            `json:"max_rooms_within_bound"`
	MaxRoomsRuns int            `json:"max_rooms_within_bound_speech_runs"`
	Note         string         `json:"note,omitempty"`
}

// RunCapacity runs live with 1, 2, … rooms until the worst room's p95 exceeds bound by
// both measures (or maxRooms is reached).
func RunCapacity(ctx context.Context, rt *app.Runtime, opt LiveOptions, bound float64, maxRooms int) (*CapacityReport, error) {
	if bound <= 0 {
		return nil, fmt.Errorf("bench capacity: bound %g s must be positive", bound)
	}
	rep := &CapacityReport{BoundS: bound, Seconds: opt.Seconds}
	for n := 1; n <= maxRooms; n++ {
		opt.Rooms = n
		lr, err := RunLive(ctx, rt, opt)
		if err != nil {
			return nil, err
		}
		step := CapacityStep{Rooms: n, WorstP95: lr.WorstP95, WorstRunP95: lr.WorstRunP95, Overall: lr.Overall, RSSPeakMB: lr.RSSPeakMB,
			RSSPerRoom: lr.RSSPerRoom, CPUCores: lr.CPUCores, Within: lr.WorstP95 <= bound, WithinRuns: lr.WorstRunP95 <= bound}
		rep.Steps = append(rep.Steps, step)
		if step.Within && rep.MaxRooms == n-1 {
			rep.MaxRooms = n
		}
		if step.WithinRuns && rep.MaxRoomsRuns == n-1 {
			rep.MaxRoomsRuns = n
		}
		if !step.Within && !step.WithinRuns {
			return rep, nil
		}
	}
	rep.Note = fmt.Sprintf("stopped at --max-rooms %d without exceeding the bound", maxRooms)
	return rep, nil
}

// Chart shows the worst p95 (per utterance, per speech stretch) at each room count
// against the bound.
func (r *CapacityReport) Chart() Chart {
	c := Chart{Series: []string{"worst p95", "worst speech-run p95", "overall p50"}, Limit: r.BoundS, Step: 0.5}
	for _, s := range r.Steps {
		c.Groups = append(c.Groups, []float64{s.WorstP95, s.WorstRunP95, s.Overall.P50})
	}
	return c
}
