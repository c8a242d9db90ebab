package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"scribe/internal/app"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/source"
	"scribe/internal/transcribe"
)

// LiveOptions replay recordings into rooms through the real pipeline (clean-up, Silero
// VAD, the shared decoder scheduler, provisional text on), at real-time pace.
type LiveOptions struct {
	Rooms      int
	Seconds    float64 // per room; 0 = the whole recording
	Pace       float64 // 1 = real time (the benchmark); tests use faster
	Recordings []Recording
}

// RoomDelays is one room's delays from the end of each utterance's speech (ground
// truth) to the moment its committed text was emitted by the pipeline.
type RoomDelays struct {
	Room       string  `json:"room"`
	Recording  string  `json:"recording"`
	Utterances int     `json:"utterances"`
	Missed     int     `json:"missed"` // truth utterances no committed segment overlapped
	Delay      Summary `json:"delay_s"`
	MaxWaitS   float64 `json:"scheduler_max_wait_s"`
	Dropped    int     `json:"provisional_dropped"`
}

// LiveReport is one live run.
type LiveReport struct {
	Rooms       int          `json:"rooms"`
	Seconds     float64      `json:"seconds"`
	Path        string       `json:"path"` // what the delay is measured through
	PerRoom     []RoomDelays `json:"per_room"`
	Overall     Summary      `json:"overall_delay_s"`
	WorstP95    float64      `json:"worst_room_p95_s"`
	CPUCores    float64      `json:"cpu_cores_used"` // CPU seconds / wall seconds
	RSSBaseMB   float64      `json:"rss_before_rooms_mb"`
	RSSPeakMB   float64      `json:"rss_peak_mb"`
	RSSPerRoom  float64      `json:"rss_per_room_mb"` // (peak − before) / rooms
	LoadAverage float64      `json:"load_average_1m"`
	WallS       float64      `json:"wall_s"`
}

// emitted is one committed segment and when the pipeline emitted it.
type emitted struct {
	seg domain.Segment
	at  time.Time
}

// RunLive replays opt.Rooms rooms at once and measures each utterance's delay.
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
	p, err := rt.NewPipeline(true, nil)
	if err != nil {
		return nil, err
	}
	rep := &LiveReport{Rooms: opt.Rooms, Seconds: opt.Seconds, LoadAverage: LoadAverage(),
		Path: "pipeline emit (clean-up, VAD, scheduler, decoder); not through the websocket server"}
	rep.RSSBaseMB, _ = RSSMB()
	cpu0, _ := CPUSeconds()
	start := time.Now()

	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	peak := rep.RSSBaseMB
	sampler.Add(1)
	go func() { // RSS sampler, owned by this call
		defer sampler.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
				if v, err := RSSMB(); err == nil {
					peak = max(peak, v)
				}
			}
		}
	}()

	type roomRun struct {
		name   string
		rec    Recording
		t0     time.Time
		events []emitted
		err    error
	}
	runs := make([]*roomRun, opt.Rooms)
	var wg sync.WaitGroup
	for i := range runs {
		base := opt.Recordings[i%len(opt.Recordings)]
		// Each room starts at a different point (7.3 s apart) of its consultation.
		rec := base.Excerpt(float64(i/len(opt.Recordings))*7.3, opt.Seconds)
		r := &roomRun{name: fmt.Sprintf("bench-room-%d", i+1), rec: rec}
		runs[i] = r
		src, err := source.NewClip(rec.Channels, 100*time.Millisecond, opt.Pace)
		if err != nil {
			stopSampling()
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.t0 = time.Now()
			r.err = p.Transcribe(transcribe.WithRoom(ctx, r.name), src, 0, func(ev domain.LiveEvent) {
				if ev.Kind == domain.EventCommitted {
					r.events = append(r.events, emitted{seg: ev.Segment, at: time.Now()})
				}
			})
		}()
	}
	wg.Wait()
	stopSampling()
	sampler.Wait()
	rep.WallS = time.Since(start).Seconds()
	cpu1, _ := CPUSeconds()
	rep.CPUCores = (cpu1 - cpu0) / rep.WallS
	rep.RSSPeakMB = peak
	rep.RSSPerRoom = (peak - rep.RSSBaseMB) / float64(opt.Rooms)

	stats := rt.Engine.Stats()
	var all []float64
	for _, r := range runs {
		if r.err != nil {
			return nil, fmt.Errorf("bench live: %s: %w", r.name, r.err)
		}
		delays, missed := Delays(r.rec.Truth, r.events, r.t0, opt.Pace)
		rs := stats.Room(r.name)
		rd := RoomDelays{Room: r.name, Recording: r.rec.Name, Utterances: len(r.rec.Truth), Missed: missed,
			Delay: Summarise(delays), MaxWaitS: rs.MaxWait.Seconds(), Dropped: rs.Dropped}
		rep.PerRoom = append(rep.PerRoom, rd)
		rep.WorstP95 = max(rep.WorstP95, rd.Delay.P95)
		all = append(all, delays...)
	}
	rep.Overall = Summarise(all)
	return rep, nil
}

// Delays matches truth utterances to committed segments on the recording's timeline: an
// utterance's text is complete when every segment overlapping it has been emitted, so
// its delay is the last such emission minus the moment its speech ended in the replay
// (t0 + end/pace). Utterances no segment overlaps are counted as missed.
func Delays(truth []corpus.TruthUtterance, events []emitted, t0 time.Time, pace float64) (delays []float64, missed int) {
	if pace <= 0 {
		pace = 1
	}
	for _, u := range truth {
		var last time.Time
		for _, ev := range events {
			if ev.seg.Start < u.End && ev.seg.End > u.Start && ev.at.After(last) {
				last = ev.at
			}
		}
		if last.IsZero() {
			missed++
			continue
		}
		spoken := t0.Add(time.Duration(u.End / pace * float64(time.Second)))
		delays = append(delays, last.Sub(spoken).Seconds())
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
	Rooms      int     `json:"rooms"`
	WorstP95   float64 `json:"worst_room_p95_s"`
	Overall    Summary `json:"overall_delay_s"`
	RSSPeakMB  float64 `json:"rss_peak_mb"`
	RSSPerRoom float64 `json:"rss_per_room_mb"`
	CPUCores   float64 `json:"cpu_cores_used"`
	Within     bool    `json:"within_bound"`
}

// CapacityReport is the largest number of rooms whose worst p95 delay stays within Bound.
type CapacityReport struct {
	BoundS   float64        `json:"bound_s"`
	Seconds  float64        `json:"seconds_per_run"`
	Steps    []CapacityStep `json:"steps"`
	MaxRooms int            `json:"max_rooms_within_bound"`
	Note     string         `json:"note,omitempty"`
}

// RunCapacity runs live with 1, 2, … rooms until the worst room's p95 exceeds bound
// (or maxRooms is reached).
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
		step := CapacityStep{Rooms: n, WorstP95: lr.WorstP95, Overall: lr.Overall, RSSPeakMB: lr.RSSPeakMB,
			RSSPerRoom: lr.RSSPerRoom, CPUCores: lr.CPUCores, Within: lr.WorstP95 <= bound}
		rep.Steps = append(rep.Steps, step)
		if !step.Within {
			return rep, nil
		}
		rep.MaxRooms = n
	}
	rep.Note = fmt.Sprintf("stopped at --max-rooms %d without exceeding the bound", maxRooms)
	return rep, nil
}

// Chart shows the worst p95 at each room count against the bound.
func (r *CapacityReport) Chart() Chart {
	c := Chart{Series: []string{"worst p95", "overall p50"}, Limit: r.BoundS, Step: 0.5}
	for _, s := range r.Steps {
		c.Groups = append(c.Groups, []float64{s.WorstP95, s.Overall.P50})
	}
	return c
}
