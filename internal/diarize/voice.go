package diarize

import (
	"math"
	"sort"

	"scribe/internal/domain"
	"scribe/internal/dsp"
)

// Voice clustering for one capsule. Every 16 ms a 32 ms frame gives a spectral envelope
// (12 mel-cepstral coefficients, level removed) and, where voiced, a pitch (normalised
// autocorrelation, 60–400 Hz). Each second of speech becomes one point: its mean
// envelope and median log pitch, standardised over the session, pitch weighted up
// (the strongest cue a model-free method has). Two-cluster k-medians over the session's
// points finds the two voices, the session's opening names them, and a second goes to a
// voice only when it is clearly nearer that voice than the other; otherwise it stays
// unknown.
const (
	vFrame     = 512
	vFFT       = 1024
	vHop       = 256
	vChunk     = 62 // frames: about one second
	vMels      = 24
	vCeps      = 12
	vMinF0     = 60.0
	vMaxF0     = 400.0
	vVoicedMin = 0.5 // normalised autocorrelation peak of a voiced frame
	vHistMax   = 2000
)

var (
	// voicePitchWeight multiplies the standardised log pitch.
	voicePitchWeight = 3.0
	// voiceMinSep: two voices whose centres are closer than this many times the points'
	// mean distance to their own centre are one voice split in two.
	voiceMinSep = 2.0
	// voiceConfident: a chunk goes to the nearer voice only when its distance to it is
	// at most this share of its distance to the other.
	voiceConfident = 0.7
	voiceMinShare  = 0.08
	// Chunks need this many speech frames, and this many voiced ones, to be judged.
	voiceMinSpeech = 20
	voiceMinVoiced = 8
	// voiceConfirm: seconds of one utterance that make a second voice a person (see confirmed).
	voiceConfirm = 5
	// voiceSoloLimit: with one voice found after this much speech (seconds), the two
	// voices are too alike to tell apart (the patient has surely spoken by then): stop
	// attributing rather than give the patient's words to the clinician.
	voiceSoloLimit = 20.0
)

type voices struct {
	fft    *dsp.FFT
	window []float64
	wcorr  []float64 // the window's own autocorrelation, to undo its taper
	mel    [][]float64
	dct    [][]float64

	hist     history[vpoint]    // raw chunk vectors
	open     opening[[]float64] // the session's opening (calibration "first")
	learned  float64
	mean, sd []float64
	centres  [][]float64 // standardised
	spread   float64     // mean distance of the points to their centre
	names    []domain.Speaker

	cacheSeq int
	cache    []vframe
}

// vpoint is one second of a voice, and the utterance it came from.
type vpoint struct {
	p   []float64
	utt int
}

type vframe struct {
	energy float64
	ceps   []float64
	logF0  float64 // NaN when unvoiced
}

func newVoices() *voices {
	v := &voices{fft: dsp.NewFFT(vFFT), cacheSeq: -1, hist: history[vpoint]{max: vHistMax}}
	v.window = make([]float64, vFrame)
	for i := range v.window {
		v.window[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/vFrame)
	}
	v.wcorr = make([]float64, vFrame)
	for l := range vFrame {
		for i := 0; i+l < vFrame; i++ {
			v.wcorr[l] += v.window[i] * v.window[i+l]
		}
	}
	// Triangular mel filters over 100–7000 Hz on the FFT's bins.
	mel := func(f float64) float64 { return 2595 * math.Log10(1+f/700) }
	imel := func(m float64) float64 { return 700 * (math.Pow(10, m/2595) - 1) }
	edges := make([]float64, vMels+2)
	for i := range edges {
		edges[i] = imel(mel(100) + (mel(7000)-mel(100))*float64(i)/float64(vMels+1))
	}
	v.mel = make([][]float64, vMels)
	for m := range vMels {
		v.mel[m] = make([]float64, vFFT/2+1)
		for k := range v.mel[m] {
			f := float64(k) * domain.SampleRate / vFFT
			switch {
			case f > edges[m] && f <= edges[m+1]:
				v.mel[m][k] = (f - edges[m]) / (edges[m+1] - edges[m])
			case f > edges[m+1] && f < edges[m+2]:
				v.mel[m][k] = (edges[m+2] - f) / (edges[m+2] - edges[m+1])
			}
		}
	}
	v.dct = make([][]float64, vCeps)
	for c := range vCeps {
		v.dct[c] = make([]float64, vMels)
		for m := range vMels {
			v.dct[c][m] = math.Cos(math.Pi * float64(c+1) * (float64(m) + 0.5) / vMels)
		}
	}
	return v
}

// analyse computes the frames of u's mix not already in the cache.
func (v *voices) analyse(u domain.Utterance) []vframe {
	if u.Seq != v.cacheSeq {
		v.cacheSeq, v.cache = u.Seq, v.cache[:0]
	}
	x := u.Mono()
	re, im := make([]float64, vFFT), make([]float64, vFFT)
	power := make([]float64, vFFT/2+1)
	lo, hi := domain.SampleRate/int(vMaxF0), domain.SampleRate/int(vMinF0)
	for f := len(v.cache); f*vHop+vFrame <= len(x); f++ {
		var e float64
		for i := range vFFT {
			re[i], im[i] = 0, 0
			if i < vFrame {
				s := float64(x[f*vHop+i])
				e += s * s
				re[i] = s * v.window[i]
			}
		}
		v.fft.Transform(re, im, false)
		for k := range power {
			power[k] = re[k]*re[k] + im[k]*im[k]
		}
		fr := vframe{energy: e / vFrame, ceps: make([]float64, vCeps), logF0: math.NaN()}
		logMel := make([]float64, vMels)
		for m, filt := range v.mel {
			var s float64
			for k, w := range filt {
				s += w * power[k]
			}
			logMel[m] = math.Log(s + 1e-10)
		}
		for c, row := range v.dct {
			for m, w := range row {
				fr.ceps[c] += w * logMel[m]
			}
		}
		// Autocorrelation as the inverse transform of the power spectrum (zero-padded to
		// twice the frame, so it is not circular), corrected for the window's taper.
		for k := range vFFT {
			kk := k
			if kk > vFFT/2 {
				kk = vFFT - k
			}
			re[k], im[k] = power[kk], 0
		}
		v.fft.Transform(re, im, true)
		if re[0] > 0 {
			best, bl := 0.0, 0
			for l := lo; l <= min(hi, vFrame-1); l++ {
				if r := re[l] / re[0] * v.wcorr[0] / v.wcorr[l]; r > best {
					best, bl = r, l
				}
			}
			if best >= vVoicedMin {
				fr.logF0 = math.Log(domain.SampleRate / float64(bl))
			}
		}
		v.cache = append(v.cache, fr)
	}
	return v.cache
}

// chunks turns frames into one-second points; ok is false where a chunk has too little
// speech to judge. Each chunk covers frames [c*vChunk, (c+1)*vChunk).
func (v *voices) chunks(frames []vframe) (pts [][]float64, ok []bool) {
	gate := frameGate(frames)
	for c := 0; c*vChunk < len(frames); c++ {
		p, speech, voiced := point(frames[c*vChunk:min((c+1)*vChunk, len(frames))], gate)
		good := speech >= voiceMinSpeech && voiced >= voiceMinVoiced
		pts, ok = append(pts, p), append(ok, good)
	}
	return pts, ok
}

func frameGate(frames []vframe) float64 {
	energies := make([]float64, len(frames))
	for i, f := range frames {
		energies[i] = f.energy
	}
	return speechGate(energies)
}

// point is the voice of the speech frames of fs: mean envelope and median log pitch,
// with how many speech and voiced frames it rests on.
func point(fs []vframe, gate float64) (p []float64, speech, voiced int) {
	p = make([]float64, vCeps+1)
	var f0 []float64
	for _, f := range fs {
		if f.energy < gate {
			continue
		}
		speech++
		for i, x := range f.ceps {
			p[i] += x
		}
		if !math.IsNaN(f.logF0) {
			f0 = append(f0, f.logF0)
		}
	}
	if speech == 0 || len(f0) == 0 {
		return nil, speech, len(f0)
	}
	for i := range vCeps {
		p[i] /= float64(speech)
	}
	sort.Float64s(f0)
	p[vCeps] = f0[len(f0)/2]
	return p, speech, len(f0)
}

func (v *voices) attribute(u domain.Utterance, commit bool) []domain.SpeakerSpan {
	if len(u.Channels) == 0 {
		return nil
	}
	pts, ok := v.chunks(v.analyse(u))
	if commit {
		v.learn(pts, ok, u)
	}
	if len(v.centres) == 0 {
		return nil
	}
	n := len(u.Mono())
	b := spanner{start: u.Start}
	for c, p := range pts {
		if !ok[c] {
			continue
		}
		from := c * vChunk * vHop
		to := min((c+1)*vChunk*vHop+vFrame-vHop, n)
		b.add(from, to, v.label(p))
	}
	return b.out
}

func (v *voices) learn(pts [][]float64, ok []bool, u domain.Utterance) {
	var added []vpoint
	for c, p := range pts {
		if ok[c] {
			added = append(added, vpoint{p, u.Seq})
			v.open.add(u.Start+float64(c*vChunk*vHop)/domain.SampleRate, p)
		}
	}
	if len(added) == 0 {
		return
	}
	v.learned += float64(len(added))
	v.hist.add(added)
	v.standardise()
	zs := make([][]float64, len(v.hist.all))
	ws := make([]float64, len(v.hist.all))
	for i, p := range v.hist.all {
		zs[i], ws[i] = v.z(p.p), 1
	}
	cs, shares, sp := twoMedians(zs, ws)
	if len(cs) == 2 && (dist(cs[0], cs[1]) < voiceMinSep*sp || min(shares[0], shares[1]) < voiceMinShare) {
		cs = [][]float64{weightedMedian(zs, ws, nil, -1)}
		sp = spread(zs, ws, cs)
	}
	v.centres, v.spread = cs, sp
	if len(cs) == 1 && v.learned > voiceSoloLimit {
		v.centres, v.names = nil, nil
		return
	}
	clin := 0
	if len(cs) == 2 && len(v.open.pts) > 0 {
		var votes [2]float64
		for _, p := range v.open.pts {
			votes[nearest(cs, v.z(p))]++
		}
		clin = clinicianOf(votes, nearest(cs, v.z(v.open.pts[0])))
	}
	v.names = make([]domain.Speaker, len(cs))
	for i := range v.names {
		v.names[i] = domain.SpeakerPatient
		if len(cs) == 2 && !v.confirmed(zs, cs, i) {
			v.names[i] = domain.SpeakerUnknown // not yet confirmed as a second person
		}
	}
	v.names[clin] = domain.SpeakerClinician
}

// confirmed reports whether voice k is a person: heard in at least two utterances, or
// for at least voiceConfirm seconds. One person's voice varies within an utterance
// (emphasis, a question) enough for a second or two to split off; a second person comes
// back, or talks for longer. Until then that voice's stretches stay unknown.
func (v *voices) confirmed(zs [][]float64, cs [][]float64, k int) bool {
	utts := map[int]bool{}
	n := 0
	for i, z := range zs {
		if nearest(cs, z) == k {
			utts[v.hist.all[i].utt] = true
			n++
		}
	}
	return len(utts) >= 2 || n >= voiceConfirm
}

// standardise recomputes each dimension's mean and spread over the history.
func (v *voices) standardise() {
	pts := v.hist.all
	d := len(pts[0].p)
	v.mean, v.sd = make([]float64, d), make([]float64, d)
	for _, p := range pts {
		for i, x := range p.p {
			v.mean[i] += x
		}
	}
	for i := range v.mean {
		v.mean[i] /= float64(len(pts))
	}
	for _, p := range pts {
		for i, x := range p.p {
			v.sd[i] += (x - v.mean[i]) * (x - v.mean[i])
		}
	}
	for i := range v.sd {
		v.sd[i] = math.Sqrt(v.sd[i]/float64(len(pts))) + 1e-6
	}
}

// z standardises a chunk vector, with the pitch weighted up.
func (v *voices) z(p []float64) []float64 {
	out := make([]float64, len(p))
	for i, x := range p {
		out[i] = (x - v.mean[i]) / v.sd[i]
	}
	out[vCeps] *= voicePitchWeight
	return out
}

func (v *voices) label(p []float64) domain.Speaker {
	z := v.z(p)
	if len(v.centres) == 1 {
		if dist(z, v.centres[0]) < 1.5*v.spread {
			return v.names[0]
		}
		return domain.SpeakerUnknown
	}
	d0, d1 := dist(z, v.centres[0]), dist(z, v.centres[1])
	switch {
	case d0 <= voiceConfident*d1:
		return v.names[0]
	case d1 <= voiceConfident*d0:
		return v.names[1]
	}
	return domain.SpeakerUnknown
}
