package corpus

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"scribe/internal/audio"
	"scribe/internal/domain"
)

// roomSim is the simulation script: pyroomacoustics' image-source method and a diffuse
// noise field. It runs only when test audio is rendered (python3 with pyroomacoustics,
// e.g. under scripts/pyenv run), never inside scribe.
//
//go:embed roomsim.py
var roomSim []byte

// Room is a simulated consulting room: a shoebox with a reverberation time, the two
// talkers' mouths and the box on the desk. Coordinates are metres from a corner: x along
// the desk wall, y into the room, z up.
type Room struct {
	Name      string     `json:"name"`
	Dims      [3]float64 `json:"dims_m"`
	RT60      float64    `json:"rt60_s"` // target; the truth records the measured value
	Clinician [3]float64 `json:"clinician_m"`
	Patient   [3]float64 `json:"patient_m"`
	Box       [3]float64 `json:"box_m"` // centre of the microphone array
}

// Rooms are the simulated consulting rooms. NHS guidance (HBN 11-01) sizes a GP
// consulting/examination room at about 16 m². The desk is against the wall y=0; the
// clinician sits at it facing the wall, the patient beside its corner, about a metre
// apart, mouths at seated height; the box sits on the desk (75 cm) near the front
// corner, 0.8–0.9 m from each mouth.
var Rooms = []Room{
	{Name: "rt0.3", Dims: [3]float64{4.0, 4.0, 2.7}, RT60: 0.3, Clinician: [3]float64{1.0, 1.05, 1.2}, Patient: [3]float64{2.05, 1.25, 1.15}, Box: [3]float64{1.6, 0.55, 0.8}},
	{Name: "rt0.5", Dims: [3]float64{3.6, 4.4, 2.7}, RT60: 0.5, Clinician: [3]float64{0.9, 1.0, 1.2}, Patient: [3]float64{1.95, 1.3, 1.15}, Box: [3]float64{1.45, 0.5, 0.8}},
	{Name: "rt0.7", Dims: [3]float64{4.2, 3.8, 2.8}, RT60: 0.7, Clinician: [3]float64{1.1, 1.1, 1.2}, Patient: [3]float64{2.1, 1.2, 1.1}, Box: [3]float64{1.65, 0.5, 0.8}},
}

// FindRoom returns the room named name.
func FindRoom(name string) (Room, error) {
	for _, r := range Rooms {
		if r.Name == name {
			return r, nil
		}
	}
	return Room{}, fmt.Errorf("room %q: want one of %s", name, strings.Join(roomNames(), ", "))
}

// Array is a microphone array on the desk. Capsule 0 is channel 0 of the recording.
type Array struct {
	Capsules  int     `json:"capsules"`
	SpacingMM float64 `json:"spacing_mm"` // between neighbouring capsules
	// Layout is "linear" (a row) or "ring" (evenly round a circle).
	Layout string `json:"layout"`
	// AxisDeg turns the array on the desk: 0 points capsule 0 → the last capsule (linear)
	// or the centre → capsule 0 (ring) along +x, from the clinician's side to the
	// patient's.
	AxisDeg float64 `json:"axis_deg"`
}

// ArrayFor is the array simulated for a capsule count: two capsules 65 mm apart in a
// row (a two-microphone HAT or USB stereo array), or four on a 64 mm circle (45 mm
// between neighbours, like common 70 mm USB conference arrays); capsule 0 on the
// clinician's side.
func ArrayFor(capsules int) (Array, error) {
	switch capsules {
	case 2:
		return Array{Capsules: 2, SpacingMM: 65, Layout: "linear"}, nil
	case 4:
		return Array{Capsules: 4, SpacingMM: 45, Layout: "ring", AxisDeg: 180}, nil
	}
	return Array{}, fmt.Errorf("array of %d capsules: 2 or 4 are simulated", capsules)
}

// Positions are the capsules' coordinates with the array centred at centre.
func (a Array) Positions(centre [3]float64) [][3]float64 {
	out := make([][3]float64, a.Capsules)
	d := a.SpacingMM / 1000
	axis := a.AxisDeg * math.Pi / 180
	for i := range out {
		var dx, dy float64
		switch a.Layout {
		case "ring":
			r := d / (2 * math.Sin(math.Pi/float64(a.Capsules)))
			ang := axis + 2*math.Pi*float64(i)/float64(a.Capsules)
			dx, dy = r*math.Cos(ang), r*math.Sin(ang)
		default:
			off := (float64(i) - float64(a.Capsules-1)/2) * d
			dx, dy = off*math.Cos(axis), off*math.Sin(axis)
		}
		out[i] = [3]float64{centre[0] + dx, centre[1] + dy, centre[2]}
	}
	return out
}

// RoomInfo is what the truth of a room render records about the simulation.
type RoomInfo struct {
	Room
	Array        Array   `json:"array"`
	MeasuredRT60 float64 `json:"measured_rt60_s"`
	MaxOrder     int     `json:"image_source_order"`
	Simulator    string  `json:"simulator"`
}

// roomBaseName adds the room, the array and the noise to a dry render's name.
func roomBaseName(dryBase string, room Room, arr Array, opt RenderOptions) string {
	name := dryBase + "-" + room.Name + "-" + strconv.Itoa(arr.Capsules) + "cap"
	if def, err := ArrayFor(arr.Capsules); err == nil && def.AxisDeg != arr.AxisDeg {
		name += "-axis" + strconv.FormatFloat(arr.AxisDeg, 'f', -1, 64)
	}
	if opt.NoiseKind != "none" {
		name += "-diffuse" + strconv.FormatFloat(opt.SNRdB, 'f', -1, 64) + "dB"
	}
	return name
}

// RenderRoom renders consultation id as the microphone array on the desk of room hears
// it: the dry two-voice render (made or reused first, in opt.OutDir) played from the
// clinician's and the patient's seats, with the room's reverberation, plus diffuse pink
// noise at opt.SNRdB over speech at capsule 0 (opt.NoiseKind "diffuse"; "none" for
// none). It writes <name>.array.wav (one channel per capsule) and <name>.truth.json,
// whose utterances are the dry render's: the same ground truth. Cached like Render.
func RenderRoom(ctx context.Context, corpusDir, id string, room Room, arr Array, opt RenderOptions) (*Rendered, error) {
	switch opt.NoiseKind {
	case "":
		opt.NoiseKind = "none"
	case "none", "diffuse":
	default:
		return nil, fmt.Errorf("render %s in room %s: noise %q: want diffuse or none", id, room.Name, opt.NoiseKind)
	}
	dryOpt := opt
	dryOpt.NoiseKind = "none"
	dry, err := Render(ctx, corpusDir, id, dryOpt)
	if err != nil {
		return nil, err
	}
	if opt.NoiseKind == "none" {
		opt.SNRdB = 0
	}
	if opt.Python == "" {
		opt.Python = "python3"
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", renderVersion, dry.Truth.RenderKey)
	h.Write(roomSim)
	spec, _ := json.Marshal(struct {
		Room  Room
		Array Array
		Noise string
		SNR   float64
	}{room, arr, opt.NoiseKind, opt.SNRdB})
	h.Write(spec)
	key := hex.EncodeToString(h.Sum(nil))

	base := filepath.Join(opt.OutDir, roomBaseName(strings.TrimSuffix(filepath.Base(dry.TruthPath), ".truth.json"), room, arr, opt))
	out := &Rendered{ArrayPath: base + ".array.wav", TruthPath: base + ".truth.json"}
	if truth, ok := cached(out, key); ok {
		out.Truth, out.Cached = truth, true
		return out, nil
	}

	tmp, err := os.MkdirTemp("", "scribe-room-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	script := filepath.Join(tmp, "roomsim.py")
	if err := os.WriteFile(script, roomSim, 0o600); err != nil {
		return nil, err
	}
	seed := fnv.New64a()
	seed.Write([]byte(id + room.Name))
	job := map[string]any{
		"rate": domain.SampleRate, "dims": room.Dims, "rt60": room.RT60,
		"tracks": dry.StereoPath, "positions": [][3]float64{room.Clinician, room.Patient},
		"mics": arr.Positions(room.Box), "seed": seed.Sum64() >> 33,
		"out_speech": filepath.Join(tmp, "speech.wav"), "out_noise": filepath.Join(tmp, "noise.wav"),
	}
	jb, _ := json.Marshal(job)
	specPath := filepath.Join(tmp, "spec.json")
	if err := os.WriteFile(specPath, jb, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, opt.Python, script, specPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || strings.Contains(msg, "No module named") {
			return nil, fmt.Errorf("%w: %s: %v %s (run it as scripts/pyenv run scribe corpus render …)", ErrNoRoomSim, opt.Python, err, lastLine(msg))
		}
		return nil, fmt.Errorf("render %s in room %s: room simulation: %w: %s", id, room.Name, err, lastLine(msg))
	}
	var sim struct {
		MeasuredRT60 float64 `json:"measured_rt60"`
		MaxOrder     int     `json:"max_order"`
		Version      string  `json:"pyroomacoustics"`
	}
	if err := json.Unmarshal(res, &sim); err != nil {
		return nil, fmt.Errorf("render %s in room %s: room simulation said %q: %w", id, room.Name, res, err)
	}
	speech, err := audio.ReadFile(filepath.Join(tmp, "speech.wav"))
	if err != nil {
		return nil, err
	}
	chans := speech.Channels
	if opt.NoiseKind == "diffuse" {
		nz, err := audio.ReadFile(filepath.Join(tmp, "noise.wav"))
		if err != nil {
			return nil, err
		}
		addAtSNR(chans, nz.Channels, dry.Truth.Utterances, opt.SNRdB)
	}
	normalisePeak(chans, 0.9)

	truth := *dry.Truth
	truth.Channels = nil
	truth.Noise, truth.SNRdB, truth.RenderKey = opt.NoiseKind, opt.SNRdB, key
	truth.Room = &RoomInfo{Room: room, Array: arr, MeasuredRT60: math.Round(sim.MeasuredRT60*1000) / 1000, MaxOrder: sim.MaxOrder,
		Simulator: "pyroomacoustics " + sim.Version}
	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, err
	}
	if err := writeWAVAtomic(out.ArrayPath, chans); err != nil {
		return nil, fmt.Errorf("render %s in room %s: %w", id, room.Name, err)
	}
	if err := writeJSONAtomic(out.TruthPath, &truth); err != nil {
		return nil, fmt.Errorf("render %s in room %s: %w", id, room.Name, err)
	}
	out.Truth = &truth
	return out, nil
}

// ErrNoRoomSim is wrapped when python3 with pyroomacoustics cannot be run.
var ErrNoRoomSim = errors.New("room simulation needs python3 with pyroomacoustics")

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// addAtSNR adds noise (one channel per capsule, any level) so that the speech-to-noise
// ratio at capsule 0 over the utterances is snrDB; every capsule gets the same gain, as
// a diffuse field reaches them all alike.
func addAtSNR(speech, noise [][]float32, utts []TruthUtterance, snrDB float64) {
	var ps, pn float64
	var count int
	for _, u := range utts {
		lo := int(math.Round(u.Start * domain.SampleRate))
		hi := min(len(speech[0]), len(noise[0]), int(math.Round(u.End*domain.SampleRate)))
		for i := lo; i < hi; i++ {
			ps += float64(speech[0][i]) * float64(speech[0][i])
			pn += float64(noise[0][i]) * float64(noise[0][i])
			count++
		}
	}
	if count == 0 || pn == 0 {
		return
	}
	g := float32(math.Sqrt(ps / pn / math.Pow(10, snrDB/10)))
	for c := range speech {
		n := noise[min(c, len(noise)-1)]
		for i := range min(len(speech[c]), len(n)) {
			speech[c][i] += g * n[i]
		}
	}
}

// normalisePeak scales every channel alike so the loudest sample is at most peak.
func normalisePeak(chans [][]float32, peak float32) {
	var m float32
	for _, c := range chans {
		for _, v := range c {
			m = max(m, v, -v)
		}
	}
	if m <= peak || m == 0 {
		return
	}
	g := peak / m
	for _, c := range chans {
		for i := range c {
			c[i] *= g
		}
	}
}

// roomNames lists the simulated rooms, for usage text.
func roomNames() []string {
	names := make([]string, 0, len(Rooms))
	for _, r := range Rooms {
		names = append(names, r.Name)
	}
	return names
}

// ReadTruth reads a rendered consultation's ground truth (<name>.truth.json).
func ReadTruth(path string) (*Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	var t Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("corpus: %s: %w", path, err)
	}
	return &t, nil
}

// AudioPath is the recording a truth file describes: <name>.array.wav for a room render,
// else <name>.stereo.wav.
func AudioPath(truthPath string, t *Truth) string {
	base := strings.TrimSuffix(truthPath, ".truth.json")
	if t != nil && t.Room != nil {
		return base + ".array.wav"
	}
	return base + ".stereo.wav"
}
