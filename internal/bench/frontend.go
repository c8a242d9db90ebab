package bench

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"scribe/internal/config"
	"scribe/internal/domain"
	"scribe/internal/dsp"
	"scribe/internal/vad"
	"scribe/internal/whisper"
)

// FrontEndReport is the clean-up + Silero VAD cost of one room, without decoding.
type FrontEndReport struct {
	Recording    string  `json:"recording"`
	AudioSeconds float64 `json:"audio_seconds"`
	Channels     int     `json:"channels"`
	// XRT is seconds of audio processed per wall second on one goroutine (above 1 keeps
	// up with a live room; the number of rooms one core can clean and segment).
	XRT         float64 `json:"xrt"`
	Rooms       int     `json:"rooms_for_memory"`
	RSSBeforeMB float64 `json:"rss_before_mb"`
	RSSAfterMB  float64 `json:"rss_after_mb"`
	// MBPerRoom is the resident memory each extra room's front end (a Silero state and
	// a clean-up chain per channel) adds.
	MBPerRoom float64 `json:"mb_per_room"`
}

// RunFrontEnd times the clean-up chain and the Silero VAD over rec, then holds rooms
// front ends at once and measures the memory they add.
func RunFrontEnd(cfg config.Config, rec Recording, rooms int) (*FrontEndReport, error) {
	if len(rec.Channels) == 0 {
		return nil, errors.New("bench frontend: no audio")
	}
	if rooms < 1 {
		return nil, fmt.Errorf("bench frontend: rooms %d must be at least 1", rooms)
	}
	dcfg := dsp.DefaultConfig()
	dcfg.HighPass, dcfg.NoiseSuppression, dcfg.AGC = cfg.Audio.HighPass, cfg.Audio.NoiseSuppression, cfg.Audio.AGC
	rep := &FrontEndReport{Recording: rec.Name, AudioSeconds: rec.Seconds(), Channels: len(rec.Channels), Rooms: rooms}

	frontEnd := func(v *whisper.VAD) error {
		var cleaned [][]float32
		for _, ch := range rec.Channels {
			cleaned = append(cleaned, dsp.NewChain(dcfg).Process(ch))
		}
		_, err := vad.Speech(vad.DefaultConfig(), v, domain.MixDown(cleaned))
		return err
	}
	v, err := whisper.LoadVAD(cfg.Models.VAD, 1)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = frontEnd(v)
	v.Close()
	if err != nil {
		return nil, fmt.Errorf("bench frontend: %w", err)
	}
	rep.XRT = rep.AudioSeconds / time.Since(start).Seconds()

	// Return garbage to the OS before each reading, so the difference is what the held
	// front ends keep, not what the timing run left for the collector.
	debug.FreeOSMemory()
	rep.RSSBeforeMB, _ = RSSMB()
	var held []*whisper.VAD
	var chains []*dsp.Chain
	defer func() {
		for _, v := range held {
			v.Close()
		}
	}()
	for range rooms {
		v, err := whisper.LoadVAD(cfg.Models.VAD, 1)
		if err != nil {
			return nil, err
		}
		held = append(held, v)
		for _, ch := range rec.Channels {
			c := dsp.NewChain(dcfg)
			c.Process(ch[:min(len(ch), 5*domain.SampleRate)]) // warm its buffers
			chains = append(chains, c)
		}
		// Silero scores whole 512-sample windows.
		if _, err := v.Probs(rec.Channels[0][:min(len(rec.Channels[0]), 5*domain.SampleRate)/512*512]); err != nil {
			return nil, fmt.Errorf("bench frontend: %w", err)
		}
	}
	debug.FreeOSMemory()
	rep.RSSAfterMB, _ = RSSMB()
	rep.MBPerRoom = (rep.RSSAfterMB - rep.RSSBeforeMB) / float64(rooms)
	runtime.KeepAlive(chains)
	return rep, nil
}

// Chart shows throughput (xRT) and MB per room.
func (r *FrontEndReport) Chart() Chart {
	return Chart{Series: []string{"xRT", "MB per room"}, Groups: [][]float64{{r.XRT, r.MBPerRoom}}}
}
