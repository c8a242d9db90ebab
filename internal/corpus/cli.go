package corpus

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultIDs are the consultations rendered when -ids is not given: a small set, one per
// recording day, so a default render stays quick.
var DefaultIDs = []string{"day1_consultation01", "day2_consultation01", "day3_consultation01"}

// ErrUsage is wrapped by RunRenderCLI for command-line mistakes, so the caller can exit with 2.
var ErrUsage = errors.New("usage error")

// RunRenderCLI implements `scribe corpus render`: it renders consultations to WAV files
// with ground truth and prints one line per consultation.
func RunRenderCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scribe corpus render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	corpus := fs.String("corpus", defaultCorpusDir(), "PriMock57 directory (holding transcripts/)")
	out := fs.String("out", defaultOutDir(), "output directory")
	ids := fs.String("ids", strings.Join(DefaultIDs, ","), `comma-separated consultation ids, or "all"`)
	maxSeconds := fs.Float64("max-seconds", 0, "render only the first N seconds of each consultation (0 = all)")
	noise := fs.String("noise", "none", "background noise: white, pink or none; with -room: diffuse or none")
	snr := fs.Float64("snr", 20, "speech-to-noise ratio in dB when -noise is white or pink")
	jobs := fs.Int("jobs", 2, "espeak-ng processes to run at once")
	rooms := fs.String("room", "", "also render through these simulated consulting rooms (comma-separated: "+strings.Join(roomNames(), ", ")+", or all); needs python3 with pyroomacoustics (scripts/pyenv run)")
	capsules := fs.String("capsules", "2", "with -room: microphone arrays on the desk, by capsule count (comma-separated: 2, 4)")
	axis := fs.Float64("axis", 0, "with -room: turn the array on the desk by this many degrees (0: capsule 0 towards the clinician)")
	python := fs.String("python", "python3", "with -room: the Python interpreter that has pyroomacoustics")
	voices := fs.String("voices", strings.Join(DefaultVoices[:], ","), "espeak-ng voices of clinician and patient, comma-separated")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scribe corpus render [flags]\n\nRenders PriMock57 consultations with espeak-ng: <id>.stereo.wav (clinician left,\npatient right), <id>.mono.wav and <id>.truth.json (where each utterance really is).\nWith -room, also <name>-<room>-<N>cap[-diffuse<SNR>dB].array.wav (one channel per\ncapsule of an array on the desk) with its own .truth.json (the same utterances).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("corpus render: %w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("corpus render: unexpected argument %q: %w", fs.Arg(0), ErrUsage)
	}
	if *jobs < 1 {
		return fmt.Errorf("corpus render: -jobs %d must be at least 1: %w", *jobs, ErrUsage)
	}

	var list []string
	if *ids == "all" {
		all, err := ListConsultations(*corpus)
		if err != nil {
			return fmt.Errorf("corpus render: %w", err)
		}
		list = all
	} else {
		for _, id := range strings.Split(*ids, ",") {
			if id = strings.TrimSpace(id); id != "" {
				list = append(list, id)
			}
		}
		if len(list) == 0 {
			return fmt.Errorf("corpus render: -ids is empty: %w", ErrUsage)
		}
	}

	opt := RenderOptions{OutDir: *out, MaxSeconds: *maxSeconds, NoiseKind: *noise, SNRdB: *snr, Jobs: *jobs, Python: *python}
	v := strings.Split(*voices, ",")
	if len(v) != 2 || strings.TrimSpace(v[0]) == "" || strings.TrimSpace(v[1]) == "" {
		return fmt.Errorf("corpus render: -voices %q: want two espeak-ng voices, clinician first: %w", *voices, ErrUsage)
	}
	opt.Voices = [2]string{strings.TrimSpace(v[0]), strings.TrimSpace(v[1])}
	if *rooms == "" {
		for _, id := range list {
			began := time.Now()
			r, err := Render(ctx, *corpus, id, opt)
			if err != nil {
				return err
			}
			report(stdout, id, r, began)
		}
		return nil
	}
	roomList, arrays, err := roomsAndArrays(*rooms, *capsules)
	if err != nil {
		return fmt.Errorf("corpus render: %w: %w", err, ErrUsage)
	}
	for i := range arrays {
		arrays[i].AxisDeg += *axis
	}
	for _, id := range list {
		for _, room := range roomList {
			for _, arr := range arrays {
				began := time.Now()
				r, err := RenderRoom(ctx, *corpus, id, room, arr, opt)
				if err != nil {
					return err
				}
				report(stdout, id, r, began)
			}
		}
	}
	return nil
}

// report prints one rendered consultation's line and files.
func report(w io.Writer, id string, r *Rendered, began time.Time) {
	state := fmt.Sprintf("rendered in %.1fs", time.Since(began).Seconds())
	if r.Cached {
		state = "up to date"
	}
	if ri := r.Truth.Room; ri != nil {
		state += fmt.Sprintf(", room %s (RT60 %.2fs measured), %d capsules", ri.Name, ri.MeasuredRT60, ri.Array.Capsules)
	}
	fmt.Fprintf(w, "%s: %.1fs, %d utterances, %s\n", id, r.Truth.Duration, len(r.Truth.Utterances), state)
	for _, p := range []string{r.StereoPath, r.MonoPath, r.ArrayPath, r.TruthPath} {
		if p != "" {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

// roomsAndArrays parses -room and -capsules.
func roomsAndArrays(rooms, capsules string) ([]Room, []Array, error) {
	var rs []Room
	if rooms == "all" {
		rs = Rooms
	} else {
		for _, name := range strings.Split(rooms, ",") {
			r, err := FindRoom(strings.TrimSpace(name))
			if err != nil {
				return nil, nil, err
			}
			rs = append(rs, r)
		}
	}
	var as []Array
	for _, c := range strings.Split(capsules, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil {
			return nil, nil, fmt.Errorf("-capsules %q: %w", c, err)
		}
		a, err := ArrayFor(n)
		if err != nil {
			return nil, nil, err
		}
		as = append(as, a)
	}
	return rs, as, nil
}

// defaultCorpusDir is ../shared/corpus/primock57 beside the repository: found from the
// working directory upwards, so it works from the repo root and from package directories.
func defaultCorpusDir() string {
	const rel = "shared/corpus/primock57"
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return filepath.Join(filepath.Dir(dir), rel)
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return filepath.Join("..", rel)
}

// defaultOutDir is $XDG_CACHE_HOME/scribe/corpus, else ~/.cache/scribe/corpus.
func defaultOutDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "scribe", "corpus")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "scribe", "corpus")
	}
	return filepath.Join(os.TempDir(), "scribe-corpus")
}
