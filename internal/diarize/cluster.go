package diarize

import (
	"math"
	"sort"
)

// twoMedians splits weighted points into two clusters by k-medians (medians, not means:
// reverberation throws some frames far off, and they must not drag a centre). It
// starts from the overall median paired with a point far from it, once for each of
// farStarts, and keeps the split whose points lie closest to their centres: from one
// start alone (the 90th percentile) a small bunch of misdirected frames could take the
// second centre while the two people shared the first. It returns the two centres with
// each one's share of the weight and the split's spread; with too few points, one centre.
func twoMedians(pts [][]float64, ws []float64) ([][]float64, []float64, float64) {
	if len(pts) == 0 {
		return nil, nil, 0
	}
	all := weightedMedian(pts, ws, nil, -1)
	if len(pts) < 4 {
		return [][]float64{all}, []float64{1}, spread(pts, ws, [][]float64{all})
	}
	type far struct {
		d float64
		i int
	}
	ds := make([]far, len(pts))
	for i, p := range pts {
		ds[i] = far{dist(p, all), i}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].d < ds[j].d })
	var best [][]float64
	var bestAssign []int
	bestSpread := math.Inf(1)
	for _, q := range farStarts {
		cs, assign := kMedians(pts, ws, [][]float64{all, append([]float64(nil), pts[ds[int(q*float64(len(ds)-1))].i]...)})
		if s := spread(pts, ws, cs); s < bestSpread {
			best, bestAssign, bestSpread = cs, assign, s
		}
	}
	var wk [2]float64
	var total float64
	for i := range pts {
		wk[bestAssign[i]] += ws[i]
		total += ws[i]
	}
	if total <= 0 {
		return [][]float64{all}, []float64{1}, 0
	}
	return best, []float64{wk[0] / total, wk[1] / total}, bestSpread
}

// farStarts are the quantiles of distance from the overall median at which twoMedians
// picks its second starting centre.
var farStarts = []float64{0.5, 0.75, 0.9}

// kMedians moves the centres cs to the weighted medians of the points nearest each until
// no point changes centre (at most 20 rounds); it returns them with each point's centre.
func kMedians(pts [][]float64, ws []float64, cs [][]float64) ([][]float64, []int) {
	assign := make([]int, len(pts))
	for range 20 {
		changed := false
		for i, p := range pts {
			k := nearest(cs, p)
			if k != assign[i] {
				assign[i], changed = k, true
			}
		}
		for k := range cs {
			if m := weightedMedian(pts, ws, assign, k); m != nil {
				cs[k] = m
			}
		}
		if !changed {
			break
		}
	}
	return cs, assign
}

// weightedMedian is the per-dimension weighted median of the points assigned to k (all
// points when assign is nil); nil when there are none.
func weightedMedian(pts [][]float64, ws []float64, assign []int, k int) []float64 {
	type vw struct{ v, w float64 }
	var dim int
	var idx []int
	for i := range pts {
		if assign == nil || assign[i] == k {
			idx = append(idx, i)
			dim = len(pts[i])
		}
	}
	if len(idx) == 0 {
		return nil
	}
	out := make([]float64, dim)
	col := make([]vw, len(idx))
	for d := range dim {
		var total float64
		for n, i := range idx {
			col[n] = vw{pts[i][d], ws[i]}
			total += ws[i]
		}
		sort.Slice(col, func(a, b int) bool { return col[a].v < col[b].v })
		var acc float64
		out[d] = col[len(col)-1].v
		for _, c := range col {
			acc += c.w
			if acc >= total/2 {
				out[d] = c.v
				break
			}
		}
	}
	return out
}

// nearest is the index of the centre closest to p.
func nearest(cs [][]float64, p []float64) int {
	best, bd := 0, math.Inf(1)
	for k, c := range cs {
		if d := dist(c, p); d < bd {
			best, bd = k, d
		}
	}
	return best
}

func dist(a, b []float64) float64 {
	var s float64
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return math.Sqrt(s)
}

// spread is the weighted mean distance of points to their own (nearest) centre.
func spread(pts [][]float64, ws []float64, cs [][]float64) float64 {
	var s, total float64
	for i, p := range pts {
		s += ws[i] * dist(p, cs[nearest(cs, p)])
		total += ws[i]
	}
	if total <= 0 {
		return 0
	}
	return s / total
}

// history is what a stream's attribution has learnt from: a bounded ring of the latest
// points.
type history[T any] struct {
	all  []T
	next int
	max  int
}

func (h *history[T]) add(pts []T) {
	for _, p := range pts {
		if len(h.all) < h.max {
			h.all = append(h.all, p)
			continue
		}
		h.all[h.next] = p
		h.next = (h.next + 1) % h.max
	}
}

// OpeningSeconds is the opening of a session that names the voices under calibration
// "first": the clinician is the voice (or direction) heard most in it, counted from the
// first speech. In 42 of PriMock57's 45 consultations the clinician holds most of the
// first 10 s of speech, although the patient speaks first in 13 ("Hello?").
const OpeningSeconds = 10.0

// opening keeps the points heard in the session's opening.
type opening[T any] struct {
	started bool
	start   float64
	pts     []T
}

// add records a point heard at time at (seconds, stream timeline).
func (o *opening[T]) add(at float64, p T) {
	if !o.started {
		o.started, o.start = true, at
	}
	if at < o.start+OpeningSeconds {
		o.pts = append(o.pts, p)
	}
}

// clinicianOf names the clinician among two voices from the opening's votes: the one
// heard most (on a tie, the one heard first).
func clinicianOf(votes [2]float64, first int) int {
	switch {
	case votes[0] > votes[1]:
		return 0
	case votes[1] > votes[0]:
		return 1
	}
	return first
}
