package diarize

import (
	"math"
	"sort"

	"scribe/internal/domain"
	"scribe/internal/dsp"
)

// Direction of arrival with GCC-PHAT. Each 64 ms frame (hop 32 ms) of every capsule pair
// gives a generalised cross-correlation with the phase transform (whitened, so the
// direct sound's time difference stands out of the reverberation), evaluated on a grid
// of lags an eighth of a sample apart within the pair's physical range. A frame's
// direction is the vector of its pairs' peak lags. The two people sit still, so over a
// session those vectors gather round two points: two-cluster k-medians finds them, the
// calibration names them, and each frame of an utterance goes to the named direction
// whose steered response (the pairs' correlations summed at its lags) is clearly the
// larger.
const (
	doaFrame    = 1024
	doaHop      = 512
	doaLagStep  = 0.125 // samples
	doaLowHz    = 200
	doaHighHz   = 5000
	speedOfSnd  = 343.0
	historyMax  = 4000 // learning frames kept per stream (lag vectors only, no audio)
	speechRelDB = -20  // frames this far under the utterance's loud frames are not speech
	doaSmooth   = 8    // frames each side (±0.26 s) that vote on a frame's speaker
)

// Tuning, measured on the simulated rooms (see the package tests and scribe bench accuracy).
var (
	// doaMargin: a frame goes to a direction only when its steered response beats the
	// other direction's by this much (mean PHAT correlation; a clear direct-path peak is
	// 0.2–0.6, the floor between peaks ±0.05).
	doaMargin = 0.04
	// minSepShare: two directions closer than this share of the largest pair's lag
	// range are one (a single talker, smeared by reverberation).
	minSepShare = 0.3
	// minSepSpread: two directions must also lie this many times further apart than
	// the frames lie, on average, from their own direction: one talker's reverberant
	// frames spread wide enough to split in two when no one else has spoken yet.
	minSepSpread = 2.0
	// minClusterShare: the smaller direction must hold this share of the learning weight.
	minClusterShare = 0.06
	// soloLimit: after this much speech with only one direction found, the set-up cannot
	// separate the two people (both on one side of the array): stop attributing.
	soloLimit = 60.0 // seconds
)

type pairIdx struct{ i, j int }

type array struct {
	clinician string
	pairs     []pairIdx
	maxLag    float64 // largest pair's lag range, samples
	sidePair  int     // index of the pair whose lag's sign tells the sides (see newArray)
	grid      []float64
	cos, sin  [][]float64 // [grid][bin]
	lo, hi    int         // bins used
	fft       *dsp.FFT
	window    []float64

	hist      history[obs] // learning frames
	open      opening[obs] // the frames of the session's opening (calibration "first")
	learned   float64      // seconds of speech learnt from
	centroids [][]float64
	names     []domain.Speaker

	// Frames of the utterance analysed last (provisional snapshots grow: not redone).
	cacheSeq int
	cache    []frame
}

// obs is a learning frame: its direction and weight.
type obs struct {
	lags []float64
	w    float64
}

// frame is one analysed frame of an utterance.
type frame struct {
	energy float64
	gcc    [][]float64 // per pair, over the lag grid
	peak   []float64   // per pair, lag of the maximum
	height float64     // mean of the pairs' maxima
}

// capsulePositions lays the capsules out in metres (plane of the array).
func capsulePositions(s Setup) [][2]float64 {
	d := s.SpacingMM / 1000
	pos := make([][2]float64, s.Capsules)
	for i := range pos {
		if s.Layout == "ring" {
			r := d / (2 * math.Sin(math.Pi/float64(s.Capsules)))
			a := 2 * math.Pi * float64(i) / float64(s.Capsules)
			pos[i] = [2]float64{r * math.Cos(a), r * math.Sin(a)}
			continue
		}
		pos[i] = [2]float64{float64(i) * d, 0}
	}
	return pos
}

func newArray(s Setup) *array {
	a := &array{clinician: s.Clinician, fft: dsp.NewFFT(doaFrame), cacheSeq: -1, hist: history[obs]{max: historyMax}}
	pos := capsulePositions(s)
	// The sides are capsule 0's and the far capsule's: the last of a row, the opposite
	// one on a ring.
	far := len(pos) - 1
	if s.Layout == "ring" {
		far = len(pos) / 2
	}
	for i := range pos {
		for j := i + 1; j < len(pos); j++ {
			if i == 0 && j == far {
				a.sidePair = len(a.pairs)
			}
			a.pairs = append(a.pairs, pairIdx{i, j})
			d := math.Hypot(pos[i][0]-pos[j][0], pos[i][1]-pos[j][1])
			a.maxLag = max(a.maxLag, d/speedOfSnd*domain.SampleRate)
		}
	}
	span := math.Ceil(a.maxLag) + 1
	for g := -span; g <= span+1e-9; g += doaLagStep {
		a.grid = append(a.grid, g)
	}
	a.lo = int(math.Ceil(doaLowHz * doaFrame / domain.SampleRate))
	a.hi = int(math.Floor(doaHighHz * doaFrame / domain.SampleRate))
	a.cos, a.sin = make([][]float64, len(a.grid)), make([][]float64, len(a.grid))
	for g, tau := range a.grid {
		a.cos[g], a.sin[g] = make([]float64, a.hi-a.lo+1), make([]float64, a.hi-a.lo+1)
		for k := a.lo; k <= a.hi; k++ {
			w := 2 * math.Pi * float64(k) / doaFrame * tau
			a.cos[g][k-a.lo], a.sin[g][k-a.lo] = math.Cos(w), math.Sin(w)
		}
	}
	a.window = make([]float64, doaFrame)
	for i := range a.window {
		a.window[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/doaFrame)
	}
	return a
}

// analyse computes the frames of u not already in the cache.
func (a *array) analyse(u domain.Utterance) []frame {
	if u.Seq != a.cacheSeq {
		a.cacheSeq, a.cache = u.Seq, a.cache[:0]
	}
	n := len(u.Channels[0])
	for _, c := range u.Channels[1:] {
		n = min(n, len(c))
	}
	nch := len(u.Channels)
	re, im := make([][]float64, nch), make([][]float64, nch)
	for c := range nch {
		re[c], im[c] = make([]float64, doaFrame), make([]float64, doaFrame)
	}
	nb := a.hi - a.lo + 1
	gr, gi := make([]float64, nb), make([]float64, nb)
	for f := len(a.cache); f*doaHop+doaFrame <= n; f++ {
		at := f * doaHop
		var e float64
		for c := range nch {
			x := u.Channels[c][at : at+doaFrame]
			for i, v := range x {
				e += float64(v) * float64(v)
				re[c][i], im[c][i] = float64(v)*a.window[i], 0
			}
			a.fft.Transform(re[c], im[c], false)
		}
		fr := frame{energy: e / float64(nch*doaFrame), gcc: make([][]float64, len(a.pairs)), peak: make([]float64, len(a.pairs))}
		for p, pr := range a.pairs {
			for k := a.lo; k <= a.hi; k++ {
				// X_i · conj(X_j), whitened.
				r := re[pr.i][k]*re[pr.j][k] + im[pr.i][k]*im[pr.j][k]
				q := im[pr.i][k]*re[pr.j][k] - re[pr.i][k]*im[pr.j][k]
				m := math.Hypot(r, q) + 1e-12
				gr[k-a.lo], gi[k-a.lo] = r/m, q/m
			}
			// R(τ) = Σ Re(G e^{-jωτ}) / bins: peaks at τ = D when capsule j hears the
			// sound D samples after capsule i.
			row := make([]float64, len(a.grid))
			best := 0
			for g := range a.grid {
				var s float64
				cg, sg := a.cos[g], a.sin[g]
				for k := range nb {
					s += gr[k]*cg[k] + gi[k]*sg[k]
				}
				row[g] = s / float64(nb)
				if row[g] > row[best] {
					best = g
				}
			}
			fr.gcc[p], fr.peak[p] = row, a.grid[best]
			fr.height += row[best]
		}
		fr.height /= float64(len(a.pairs))
		a.cache = append(a.cache, fr)
	}
	return a.cache
}

// speechGate is the energy above which a frame of these counts as speech.
func speechGate(energies []float64) float64 {
	if len(energies) == 0 {
		return math.Inf(1)
	}
	s := append([]float64(nil), energies...)
	sort.Float64s(s)
	loud := s[int(0.9*float64(len(s)-1))]
	return max(loud*math.Pow(10, speechRelDB/10.0), 1e-9)
}

func (a *array) attribute(u domain.Utterance, commit bool) []domain.SpeakerSpan {
	if len(u.Channels) < 2 {
		return nil
	}
	frames := a.analyse(u)
	if len(frames) == 0 {
		return nil
	}
	energies := make([]float64, len(frames))
	for i, f := range frames {
		energies[i] = f.energy
	}
	gate := speechGate(energies)
	if commit {
		a.learn(frames, gate, u.Start)
	}
	if len(a.centroids) == 0 {
		return nil
	}
	labels := make([]domain.Speaker, len(frames))
	for i, f := range frames {
		labels[i] = domain.SpeakerUnknown
		if f.energy >= gate {
			labels[i] = a.label(f)
		}
	}
	b := spanner{start: u.Start}
	for i, sp := range smooth(labels, doaSmooth) {
		mid := i*doaHop + doaFrame/2
		b.add(mid-doaHop/2, mid+doaHop/2, sp)
	}
	return b.out
}

// smooth relabels each frame by the labelled frames within radius of it: the majority
// speaker when it holds at least MinShare of at least three of them, else unknown. It
// bridges the gaps between words and drops isolated frames a reflection misdirected.
func smooth(labels []domain.Speaker, radius int) []domain.Speaker {
	out := make([]domain.Speaker, len(labels))
	for i := range labels {
		var c, p int
		for j := max(0, i-radius); j <= min(len(labels)-1, i+radius); j++ {
			switch labels[j] {
			case domain.SpeakerClinician:
				c++
			case domain.SpeakerPatient:
				p++
			}
		}
		out[i] = domain.SpeakerUnknown
		switch n := float64(c + p); {
		case n < 3:
		case float64(c) >= MinShare*n:
			out[i] = domain.SpeakerClinician
		case float64(p) >= MinShare*n:
			out[i] = domain.SpeakerPatient
		}
	}
	return out
}

// learn adds an utterance's clear speech frames (the utterance starts at start) to the
// history and re-clusters.
func (a *array) learn(frames []frame, gate, start float64) {
	var heights []float64
	for _, f := range frames {
		if f.energy >= gate {
			heights = append(heights, f.height)
		}
	}
	if len(heights) == 0 {
		return
	}
	sort.Float64s(heights)
	minHeight := heights[len(heights)/2] // the clearer half
	var added []obs
	for i, f := range frames {
		if f.energy >= gate && f.height >= minHeight {
			o := obs{lags: append([]float64(nil), f.peak...), w: f.height}
			added = append(added, o)
			a.open.add(start+float64(i*doaHop+doaFrame/2)/domain.SampleRate, o)
		}
	}
	a.learned += float64(len(heights)*doaHop) / domain.SampleRate
	a.hist.add(added)
	a.recluster()
}

func (a *array) recluster() {
	pts := make([][]float64, len(a.hist.all))
	ws := make([]float64, len(a.hist.all))
	for i, o := range a.hist.all {
		pts[i], ws[i] = o.lags, o.w
	}
	cs, shares, sp := twoMedians(pts, ws)
	if len(cs) == 2 && (dist(cs[0], cs[1]) < minSepShare*a.maxLag || dist(cs[0], cs[1]) < minSepSpread*sp ||
		min(shares[0], shares[1]) < minClusterShare) {
		cs = [][]float64{weightedMedian(pts, ws, nil, -1)}
	}
	a.centroids, a.names = cs, a.name(cs)
	if len(cs) == 1 && a.learned > soloLimit {
		a.centroids, a.names = nil, nil // one direction for a minute: cannot tell them apart
	}
}

// name gives the directions found their speakers by the calibration.
func (a *array) name(cs [][]float64) []domain.Speaker {
	if len(cs) == 0 {
		return nil
	}
	var clin int
	switch a.clinician {
	case ClinicianLeft, ClinicianRight:
		// A positive side-pair lag: capsule 0 heard it first, so it came from its side.
		side := func(c []float64) float64 {
			if a.clinician == ClinicianRight {
				return -c[a.sidePair]
			}
			return c[a.sidePair]
		}
		if len(cs) == 1 {
			switch s := side(cs[0]); {
			case s > 0.15*a.maxLag:
				return []domain.Speaker{domain.SpeakerClinician}
			case s < -0.15*a.maxLag:
				return []domain.Speaker{domain.SpeakerPatient}
			}
			return []domain.Speaker{domain.SpeakerUnknown}
		}
		if side(cs[1]) > side(cs[0]) {
			clin = 1
		}
	default:
		if len(cs) == 2 && len(a.open.pts) > 0 {
			var votes [2]float64
			for _, o := range a.open.pts {
				votes[nearest(cs, o.lags)] += o.w
			}
			clin = clinicianOf(votes, nearest(cs, a.open.pts[0].lags))
		}
	}
	names := make([]domain.Speaker, len(cs))
	for i := range names {
		names[i] = domain.SpeakerPatient
	}
	names[clin] = domain.SpeakerClinician
	return names
}

// label gives a frame to the direction whose steered response is clearly larger.
func (a *array) label(f frame) domain.Speaker {
	score := func(c []float64) float64 {
		var s float64
		for p, row := range f.gcc {
			s += a.at(row, c[p])
		}
		return s / float64(len(f.gcc))
	}
	if len(a.centroids) == 1 {
		// One direction known: only frames that clearly come from it are labelled.
		if dist(f.peak, a.centroids[0]) < minSepShare*a.maxLag/2 && f.height > doaMargin {
			return a.names[0]
		}
		return domain.SpeakerUnknown
	}
	s0, s1 := score(a.centroids[0]), score(a.centroids[1])
	switch {
	case s0-s1 >= doaMargin:
		return a.names[0]
	case s1-s0 >= doaMargin:
		return a.names[1]
	}
	return domain.SpeakerUnknown
}

// at interpolates a correlation row at lag tau.
func (a *array) at(row []float64, tau float64) float64 {
	x := (tau - a.grid[0]) / doaLagStep
	i := int(math.Floor(x))
	if i < 0 {
		return row[0]
	}
	if i >= len(row)-1 {
		return row[len(row)-1]
	}
	t := x - float64(i)
	return row[i]*(1-t) + row[i+1]*t
}
