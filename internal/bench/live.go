package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"scribe/internal/app"
	"scribe/internal/audio"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/pipeline"
	"scribe/internal/server"
	"scribe/internal/source"
	"scribe/internal/store"
	"scribe/internal/textdiff"
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

// UtteranceDelay is one slow utterance, with what the pipeline did meanwhile (for finding
// the cause of outliers).
type UtteranceDelay struct {
	EndS      float64 `json:"truth_end_s"`      // on the recording's timeline
	DelayS    float64 `json:"delay_s"`          // speech end → committed text at the websocket client
	PipelineS float64 `json:"pipeline_delay_s"` // speech end → the pipeline's emit
	// The decode whose result committed it: how much audio it decoded, how long it took,
	// how long the stream's line had been closed by then (0 when committed mid-line).
	AudioS  float64 `json:"decoded_audio_s"`
	DecodeS float64 `json:"decode_s"`
	ClosedS float64 `json:"line_closed_for_s"`
	Final   bool    `json:"close_decode"` // a close (committed work), not a step
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
	RunDelay Summary `json:"speech_run_delay_s"`
	// TextLag samples, every 0.1 s while someone speaks, how far the newest text shown
	// (committed or provisional) is behind the audio heard.
	TextLag Summary          `json:"text_lag_s"`
	Slowest []UtteranceDelay `json:"slowest"`
	// Where the time goes: decodes of this room's stream, steps and closes, their decode
	// times and the audio each covered; how far apart steps started on the stream's
	// timeline (they grow under load); the longest a step or close waited for a decoder.
	Steps        int     `json:"steps"`
	Closes       int     `json:"closes"`
	StepAudio    Summary `json:"step_decoded_audio_s"`
	StepDecode   Summary `json:"step_decode_s"`
	StepSpacing  Summary `json:"step_spacing_s"`
	MaxStepWaitS float64 `json:"scheduler_max_step_wait_s"`
	MaxWaitS     float64 `json:"scheduler_max_close_wait_s"`
	Preempted    int     `json:"steps_preempted"`
	Provisional  int     `json:"provisional_received"`
	// Words: the live transcript (as the review page ends up with it) and `scribe
	// transcribe` of the same audio and model, against the ground truth; the ratio is the
	// issue's figure (≤ 1.05).
	LiveWER  float64 `json:"live_wer"`
	FileWER  float64 `json:"file_wer"`
	WERRatio float64 `json:"live_vs_file_wer"`
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
	OverallLag  Summary      `json:"overall_text_lag_s"`
	// EncoderS is one encoder pass over a full window on this machine (measured apart,
	// before the rooms start): every decode pays it, whatever it decodes.
	EncoderS float64 `json:"encoder_s"`
	Policy   string  `json:"commit_policy"`
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
	pipe  []emitted // committed pieces at the pipeline's emit
	obs   []pipeline.Observation
	obsAt []time.Time
	ws    []emitted // committed segments received by the websocket client (a line as it grows)
	provs []emitted // provisional text received by the websocket client
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
		r.mu.Lock()
		r.obs = append(r.obs, o)
		r.obsAt = append(r.obsAt, time.Now())
		r.mu.Unlock()
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
	enc, err := encoderSeconds(rt)
	if err != nil {
		return nil, err
	}
	rep := &LiveReport{Rooms: opt.Rooms, Seconds: opt.Seconds, Pace: opt.Pace, LoadAverage: LoadAverage(), Workers: rt.Engine.Workers(),
		EncoderS: enc, Policy: string(app.StreamConfig(rt.Config).Policy),
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
	var all, allPipe, allRun, allLag []float64
	fileWER := map[string]float64{} // per excerpt
	for _, r := range runs {
		if r.err != nil {
			return nil, fmt.Errorf("bench live: %s: %w", r.name, r.err)
		}
		spoken := func(sec float64) time.Time { return r.t0.Add(time.Duration(sec / opt.Pace * float64(time.Second))) }
		delays, missed := Delays(r.rec.Truth, r.ws, spoken)
		pipe, _ := Delays(r.rec.Truth, r.pipe, spoken)
		runDelays, _ := Delays(SpeechRuns(r.rec.Truth, rt.Config.Audio.MinSilence), r.ws, spoken)
		lag := TextLag(r.rec.Truth, append(append([]emitted(nil), r.ws...), r.provs...), spoken)
		rs := stats.Room(r.name)
		rd := RoomDelays{Room: r.name, Recording: r.rec.Name, Utterances: len(r.rec.Truth), Missed: missed,
			Delay: Summarise(delays), PipelineDelay: Summarise(pipe), RunDelay: Summarise(runDelays), TextLag: Summarise(lag),
			MaxWaitS: rs.MaxWait.Seconds(), MaxStepWaitS: rs.MaxStepWait.Seconds(), Preempted: rs.Preempted,
			Provisional: len(r.provs), Slowest: r.slowest(spoken, 5)}
		r.decodes(&rd)
		ref := r.rec.Text()
		rd.LiveWER = textdiff.WER(ref, finalText(r.ws)).WER
		key := fmt.Sprintf("%s@%.1f", r.rec.Name, r.rec.Offset)
		if _, ok := fileWER[key]; !ok {
			tr, err := rt.TranscribeClip(ctx, &audio.Clip{Rate: domain.SampleRate, Channels: r.rec.Channels})
			if err != nil {
				return nil, fmt.Errorf("bench live: file transcription: %w", err)
			}
			fileWER[key] = textdiff.WER(ref, domain.Text(tr.Segments)).WER
		}
		rd.FileWER = fileWER[key]
		if rd.FileWER > 0 {
			rd.WERRatio = rd.LiveWER / rd.FileWER
		}
		rep.PerRoom = append(rep.PerRoom, rd)
		rep.WorstP95 = max(rep.WorstP95, rd.Delay.P95)
		rep.WorstRunP95 = max(rep.WorstRunP95, rd.RunDelay.P95)
		all = append(all, delays...)
		allPipe = append(allPipe, pipe...)
		allRun = append(allRun, runDelays...)
		allLag = append(allLag, lag...)
	}
	rep.Overall = Summarise(all)
	rep.OverallRun = Summarise(allRun)
	rep.OverallPipe = Summarise(allPipe)
	rep.OverallLag = Summarise(allLag)
	return rep, nil
}

// encoderSeconds is the median of three encoder passes over a full window of the
// runtime's model, on a decoder state of its own, with the runtime's threads per decode.
func encoderSeconds(rt *app.Runtime) (float64, error) {
	st, err := rt.Model.NewState()
	if err != nil {
		return 0, err
	}
	defer st.Close()
	_, threads := rt.Config.Parallelism()
	x := make([]float32, 30*domain.SampleRate)
	var runs []float64
	for range 3 {
		d, err := st.EncodeTime(x, threads)
		if err != nil {
			return 0, fmt.Errorf("bench live: encoder: %w", err)
		}
		runs = append(runs, d.Seconds())
	}
	return Summarise(runs).P50, nil
}

// decodes fills in the room's decode figures from the pipeline's observations.
func (r *roomRun) decodes(rd *RoomDelays) {
	var audio, took, spacing []float64
	last := -1.0
	for _, o := range r.obs {
		switch {
		case o.Close:
			rd.Closes++
		case o.Decode > 0:
			rd.Steps++
			audio = append(audio, o.AudioSeconds)
			took = append(took, o.Decode.Seconds())
			if last >= 0 {
				spacing = append(spacing, o.Interval.End-last)
			}
			last = o.Interval.End
		}
	}
	rd.StepAudio, rd.StepDecode, rd.StepSpacing = Summarise(audio), Summarise(took), Summarise(spacing)
}

// slowest lists the n truth utterances with the longest websocket delay, with the decode
// that committed each.
func (r *roomRun) slowest(spoken func(float64) time.Time, n int) []UtteranceDelay {
	var out []UtteranceDelay
	for _, u := range r.rec.Truth {
		at, ok := covered(u, r.ws)
		if !ok {
			continue
		}
		d := UtteranceDelay{EndS: u.End, DelayS: at.Sub(spoken(u.End)).Seconds()}
		if p, ok := covered(u, r.pipe); ok {
			d.PipelineS = p.Sub(spoken(u.End)).Seconds()
			// The decode that produced it: the last one observed before its emit.
			for i, o := range r.obs {
				if r.obsAt[i].After(p) {
					break
				}
				switch {
				case o.Decode > 0:
					d.AudioS, d.DecodeS, d.Final = o.AudioSeconds, o.Decode.Seconds(), o.Close
				case o.Final:
					d.ClosedS = o.Lag.Seconds()
				}
			}
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DelayS > out[j].DelayS })
	return out[:min(n, len(out))]
}

// coverSlack: a committed line covers an utterance once it reaches this close to the
// utterance's end (the decoder's alignment of the last word may fall a little short).
const coverSlack = 0.25

// covered is when committed text first reached the end of utterance u: the first event
// whose segment overlaps u and ends at or after its end.
func covered(u corpus.TruthUtterance, events []emitted) (time.Time, bool) {
	var first time.Time
	for _, ev := range events {
		if ev.seg.Start < u.End && ev.seg.End >= u.End-coverSlack && (first.IsZero() || ev.at.Before(first)) {
			first = ev.at
		}
	}
	return first, !first.IsZero()
}

// finalText is the transcript the websocket client ends up with: each segment's last
// version, in the order segments first arrived.
func finalText(events []emitted) string {
	var order []string
	last := map[string]string{}
	for _, ev := range events {
		if _, ok := last[ev.seg.ID]; !ok {
			order = append(order, ev.seg.ID)
		}
		last[ev.seg.ID] = ev.seg.Text
	}
	var parts []string
	for _, id := range order {
		if t := last[id]; t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, " ")
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

// Delays measures, for each truth utterance, the time from the moment the replay reached
// the end of its speech (spoken(end), the wall clock) to the moment committed text first
// reached that end (see covered). Utterances never covered are missed.
func Delays(truth []corpus.TruthUtterance, events []emitted, spoken func(sec float64) time.Time) (delays []float64, missed int) {
	for _, u := range truth {
		at, ok := covered(u, events)
		if !ok {
			missed++
			continue
		}
		delays = append(delays, at.Sub(spoken(u.End)).Seconds())
	}
	return delays, missed
}

// TextLag samples, every 0.1 s of recording inside each truth utterance (after its first
// half second), how far behind the audio heard the newest text shown (any event that had
// arrived by then, committed or provisional) ends: 0 when the text has caught up.
func TextLag(truth []corpus.TruthUtterance, events []emitted, spoken func(sec float64) time.Time) []float64 {
	sorted := append([]emitted(nil), events...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].at.Before(sorted[j].at) })
	var out []float64
	for _, u := range truth {
		for t := u.Start + 0.5; t < u.End; t += 0.1 {
			w := spoken(t)
			shown := 0.0
			for _, ev := range sorted {
				if ev.at.After(w) {
					break
				}
				if ev.seg.Text != "" {
					shown = max(shown, ev.seg.End)
				}
			}
			out = append(out, max(0, t-shown))
		}
	}
	return out
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
