package bench

import (
	"errors"
	"fmt"
)

// MemoryRun is one live run's memory, as measured by a separate process.
type MemoryRun struct {
	Rooms     int     `json:"rooms"`
	RSSBaseMB float64 `json:"rss_before_rooms_mb"` // model, decoder states, server, idle
	SteadyMB  float64 `json:"rss_steady_mb"`       // median over the second half of the replay
	PeakMB    float64 `json:"rss_peak_mb"`
	WorstP95  float64 `json:"worst_room_p95_s"`
	CPUCores  float64 `json:"cpu_cores_used"`
	ReplayMB  float64 `json:"replay_audio_mb"` // the bench's own copy of the audio it replays
}

// RoomsMemoryReport is the memory one more room costs: the same live benchmark with N−1
// and with N rooms, each in a fresh process (an earlier run's freed memory would otherwise
// stay in the process and hide the difference), plus the front end's share.
type RoomsMemoryReport struct {
	Rooms   int         `json:"rooms"`
	Seconds float64     `json:"seconds_per_run"`
	Runs    []MemoryRun `json:"runs"` // N−1 rooms, then N
	// PerExtraRoomMB is the difference in steady RSS between N and N−1 rooms; the peak
	// difference is also given (a peak is one sample, noisier).
	PerExtraRoomMB     float64 `json:"rss_per_extra_room_mb"`
	PerExtraRoomPeakMB float64 `json:"rss_peak_per_extra_room_mb"`
	// PerExtraRoomServedMB leaves out the extra replay buffer the bench itself holds.
	PerExtraRoomServedMB float64 `json:"rss_per_extra_room_without_replay_mb"`
	// FrontEnd is the clean-up + Silero VAD throughput of one room on one goroutine (xRT:
	// the rooms one core can clean and segment) and the memory each front end adds.
	FrontEnd *FrontEndReport `json:"frontend"`
	Note     string          `json:"note"`
}

// RoomsMemory measures the memory of the n-th room: run is called with n−1 and with n
// rooms and must run each in a fresh process (scribe bench live in a child process).
func RoomsMemory(n int, seconds float64, run func(rooms int) (*LiveReport, error), fe *FrontEndReport) (*RoomsMemoryReport, error) {
	if n < 2 {
		return nil, fmt.Errorf("bench rooms-memory: rooms %d must be at least 2 (it compares N−1 rooms with N)", n)
	}
	if run == nil {
		return nil, errors.New("bench rooms-memory: no runner")
	}
	rep := &RoomsMemoryReport{Rooms: n, Seconds: seconds, FrontEnd: fe,
		Note: "RSS of the whole process (model, decoder states, server, websocket clients); the decoder states are shared by all rooms, so a room adds its front end (clean-up chains, a Silero state), pipeline buffers and session state"}
	for _, k := range []int{n - 1, n} {
		lr, err := run(k)
		if err != nil {
			return nil, fmt.Errorf("bench rooms-memory: %d rooms: %w", k, err)
		}
		rep.Runs = append(rep.Runs, MemoryRun{Rooms: k, RSSBaseMB: lr.RSSBaseMB, SteadyMB: lr.RSSSteadyMB, PeakMB: lr.RSSPeakMB,
			WorstP95: lr.WorstP95, CPUCores: lr.CPUCores, ReplayMB: lr.ReplayAudioMB})
	}
	rep.PerExtraRoomMB = rep.Runs[1].SteadyMB - rep.Runs[0].SteadyMB
	rep.PerExtraRoomPeakMB = rep.Runs[1].PeakMB - rep.Runs[0].PeakMB
	rep.PerExtraRoomServedMB = rep.PerExtraRoomMB - (rep.Runs[1].ReplayMB - rep.Runs[0].ReplayMB)
	return rep, nil
}

// Chart shows steady and peak RSS with N−1 and N rooms, then the differences.
func (r *RoomsMemoryReport) Chart() Chart {
	c := Chart{Series: []string{"steady RSS MB", "peak RSS MB"}}
	for _, run := range r.Runs {
		c.Groups = append(c.Groups, []float64{run.SteadyMB, run.PeakMB})
	}
	c.Groups = append(c.Groups, []float64{max(r.PerExtraRoomMB, 0), max(r.PerExtraRoomPeakMB, 0)})
	return c
}
