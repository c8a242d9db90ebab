package app

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"scribe/internal/audio"
	"scribe/internal/corpus"
	"scribe/internal/domain"
	"scribe/internal/dsp"
	"scribe/internal/stream"
	"scribe/internal/textdiff"
	"scribe/internal/vad"
)

type simEvent struct {
	at float64 // virtual seconds
	ev domain.LiveEvent
}

type simResult struct {
	events  []simEvent
	decodes int
	wall    time.Duration
}

// lines merges committed pieces into lines.
func (r simResult) lines() []domain.Segment {
	var out []domain.Segment
	for _, e := range r.events {
		if e.ev.Kind != domain.EventCommitted {
			continue
		}
		if e.ev.Continues && len(out) > 0 {
			out[len(out)-1].Extend(e.ev.Segment)
			continue
		}
		out = append(out, e.ev.Segment)
	}
	return out
}

func (r simResult) text() string {
	var parts []string
	for _, s := range r.lines() {
		if s.Text != "" {
			parts = append(parts, s.Text)
		}
	}
	return strings.Join(parts, " ")
}

// delays: per reference end time, the virtual time from it to the first committed
// piece reaching past it (End ≥ end − slack).
func (r simResult) delays(ends []float64) []float64 {
	var out []float64
	for _, e := range ends {
		for _, ev := range r.events {
			if ev.ev.Kind == domain.EventCommitted && ev.ev.Segment.End >= e-0.15 && ev.ev.Segment.Text != "" {
				out = append(out, ev.at-e)
				break
			}
		}
	}
	return out
}

// simulate runs chans through clean-up, Silero and the stream policy in virtual time:
// audio arrives in 0.1 s chunks, each decode takes cost virtual seconds (audio keeps
// arriving meanwhile), and decodes run on the real engine.
func simulate(t testing.TB, rt *Runtime, chans [][]float32, scfg stream.Config, cost float64, provisional bool) simResult {
	t.Helper()
	cfg := rt.Config
	nch := len(chans)
	scorer, release, err := NewScorer(cfg.Models.VAD)()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	seg, err := vad.New(VADConfig(cfg), scorer, nch)
	if err != nil {
		t.Fatal(err)
	}
	var cleaners []*dsp.Chain
	for range nch {
		cleaners = append(cleaners, dsp.NewChain(DSPConfig(cfg)))
	}
	st, err := stream.New(scfg, nch)
	if err != nil {
		t.Fatal(err)
	}
	var res simResult
	start := time.Now()
	type inflight struct {
		job  stream.Job
		segs []domain.DecodedSegment
		done float64
	}
	var cur *inflight
	now := 0.0
	record := func(at float64, evs []domain.LiveEvent) {
		for _, e := range evs {
			res.events = append(res.events, simEvent{at: at, ev: e})
		}
	}
	startDecode := func() {
		k := st.Due()
		if k == stream.None || (k == stream.Step && !provisional) {
			return
		}
		var job stream.Job
		segs, _, err := rt.Engine.Hypothesis(context.Background(), k == stream.Close, func() ([]float32, string) {
			job = st.Job(k)
			return job.Samples, job.Context
		})
		if err != nil {
			t.Fatal(err)
		}
		res.decodes++
		if os.Getenv("SCRIBE_SIM_V") == "3" {
			var b strings.Builder
			for _, sg := range segs {
				for _, tk := range sg.Tokens {
					fmt.Fprintf(&b, "%s@%.2f", tk.Text, tk.At)
				}
			}
			t.Logf("  %6.2f decode %v %.2fs ctx %q: %s", now, k, job.Seconds(), job.Context, b.String())
		}
		cur = &inflight{job: job, segs: segs, done: now + cost}
	}
	finish := func() {
		if cur != nil && now >= cur.done-1e-9 {
			record(cur.done, st.Apply(cur.job, cur.segs))
			cur = nil
		}
	}
	const chunk = 1600
	n := len(chans[0])
	for i := 0; i < n; i += chunk {
		j := min(i+chunk, n)
		c := make([][]float32, nch)
		for k := range c {
			c[k] = cleaners[k].Process(append([]float32(nil), chans[k][i:j]...))
		}
		us, err := seg.Push(domain.MixDown(c), c)
		if err != nil {
			t.Fatal(err)
		}
		now = float64(j) / domain.SampleRate
		for _, u := range us {
			record(now, st.Push(u))
		}
		record(now, st.Advance(now))
		finish()
		if cur == nil {
			startDecode()
		}
	}
	us, err := seg.Flush()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		record(now, st.Push(u))
	}
	record(now, st.Advance(math.Inf(1)))
	for {
		if cur != nil {
			now = cur.done
			finish()
		}
		startDecode()
		if cur == nil {
			break
		}
	}
	res.wall = time.Since(start)
	return res
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

// TestSimPolicy compares commit policies on the real model in virtual time (simulate):
// jfk.wav and, with SCRIBE_SIM_CONSULT=name[,name] (testdata/audio without .wav), rendered
// consultations; it reports the live text's WER, the decodes and the delay from each
// phrase's end to committed text reaching it, with decodes taking SCRIBE_SIM_COST seconds.
// An experiment, not a check (README, "Choosing the commit policy"): it runs only with
// SCRIBE_SIM=1. Knobs: SCRIBE_SIM_MODEL, _POLICY, _AGREE, _GRACE, _STEP, _CONTEXT,
// _HORIZON, _NS=0 (no noise suppression), _OFFLINE=1 (no steps: lines decoded when due),
// _V=1|2|3 (committed, provisional, each decode's words with their alignment).
func TestSimPolicy(t *testing.T) {
	if os.Getenv("SCRIBE_SIM") == "" {
		t.Skip("experiment: SCRIBE_SIM=1")
	}
	cfg := realConfig(t)
	if m := os.Getenv("SCRIBE_SIM_MODEL"); m != "" {
		cfg.Models.Whisper = m
	}
	cfg.Transcription.Live.Policy = os.Getenv("SCRIBE_SIM_POLICY")
	cfg.Audio.NoiseSuppression = os.Getenv("SCRIBE_SIM_NS") != "0"
	rt, err := Load(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	scfg := StreamConfig(cfg)
	scfg.Step = envFloat("SCRIBE_SIM_STEP", scfg.Step)
	scfg.Context = envFloat("SCRIBE_SIM_CONTEXT", scfg.Context)
	scfg.Horizon = envFloat("SCRIBE_SIM_HORIZON", scfg.Horizon)
	scfg.Agreement = int(envFloat("SCRIBE_SIM_AGREE", float64(scfg.Agreement)))
	scfg.Grace = envFloat("SCRIBE_SIM_GRACE", scfg.Grace)
	cost := envFloat("SCRIBE_SIM_COST", 0.3)
	verbose := os.Getenv("SCRIBE_SIM_V") != ""
	report := func(name, ref string, chans [][]float32, ends []float64) {
		r := simulate(t, rt, chans, scfg, cost, os.Getenv("SCRIBE_SIM_OFFLINE") == "")
		w := textdiff.WER(ref, r.text())
		d := r.delays(ends)
		t.Logf("%s: WER %.3f (%d errors) decodes %d wall %v delays p50 %.2f p95 %.2f max %.2f", name, w.WER, w.Errors(), r.decodes, r.wall.Round(time.Millisecond),
			pct(d, 50), pct(d, 95), pct(d, 100))
		if verbose {
			for _, e := range r.events {
				if e.ev.Kind == domain.EventCommitted {
					t.Logf("  %6.2f C u%d %v %.2f–%.2f %q", e.at, e.ev.Utterance, e.ev.Continues, e.ev.Segment.Start, e.ev.Segment.End, e.ev.Segment.Text)
				} else if os.Getenv("SCRIBE_SIM_V") == "2" {
					t.Logf("  %6.2f p u%d %q", e.at, e.ev.Utterance, e.ev.Segment.Text)
				}
			}
		}
		t.Logf("%s text: %s", name, r.text())
	}
	jfk, err := audio.ReadFile(sharedFile(t, "audio/jfk.wav"))
	if err != nil {
		t.Fatal(err)
	}
	var ends []float64
	for _, p := range jfkPhrases {
		ends = append(ends, p.End)
	}
	report("jfk", jfkReference, jfk.To16k().Channels, ends)
	if os.Getenv("SCRIBE_SIM_CONSULT") != "" {
		for _, name := range strings.Split(os.Getenv("SCRIBE_SIM_CONSULT"), ",") {
			clip, err := audio.ReadFile("../../testdata/audio/" + name + ".wav")
			if err != nil {
				t.Fatal(err)
			}
			base := strings.TrimSuffix(strings.TrimSuffix(name, ".mono"), ".stereo")
			var truth corpus.Truth
			b, err := os.ReadFile("../../testdata/audio/" + base + ".truth.json")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &truth); err != nil {
				t.Fatal(err)
			}
			var refs []string
			var ends []float64
			for _, u := range truth.Utterances {
				refs = append(refs, u.Text)
				ends = append(ends, u.End)
			}
			report(name, strings.Join(refs, " "), clip.To16k().Channels, ends)
		}
	}
}

const jfkReference = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."

func pct(x []float64, p float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[int(float64(len(s)-1)*p/100+0.5)]
}
