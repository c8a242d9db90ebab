// Package bench measures scribe: file transcription against whisper-cli, live delay per
// room at real-time pace, capacity (rooms within a delay bound), front-end throughput and
// memory, and accuracy against rendered ground truth. Every measurement is a plain Go
// value that marshals to JSON, and can be drawn as a PNG bar chart (chart.go). Nothing
// here is a timed unit test: the tests of this package check structure on tiny inputs.
package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Summary describes a sample of figures (seconds, usually).
type Summary struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	P50    float64 `json:"p50"`
	P95    float64 `json:"p95"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
	Stddev float64 `json:"stddev"`
}

// Summarise computes order statistics (nearest-rank percentiles) of xs; zero for none.
func Summarise(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	mean := sum / float64(len(s))
	var ss float64
	for _, x := range s {
		ss += (x - mean) * (x - mean)
	}
	return Summary{
		N: len(s), Min: s[0], Max: s[len(s)-1], Mean: mean,
		P50: Percentile(s, 50), P95: Percentile(s, 95),
		Stddev: math.Sqrt(ss / float64(len(s))),
	}
}

// Percentile is the nearest-rank p-th percentile of sorted xs.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// clockTicks is USER_HZ, the unit of /proc/self/stat's CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// CPUSeconds is the user+system CPU time this process has used, from /proc/self/stat.
func CPUSeconds() (float64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, fmt.Errorf("bench: cpu time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) after the parenthesised command
// name, which may itself contain spaces.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: /proc/self/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14 → f[11], stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: /proc/self/stat: %d fields", len(f))
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: /proc/self/stat: bad cpu times %q %q", f[11], f[12])
	}
	return (u + s) / clockTicks, nil
}

// RSSMB is this process's resident set size in MB (VmRSS in /proc/self/status).
func RSSMB() (float64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("bench: rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) >= 1 {
				kb, err := strconv.ParseFloat(fs[0], 64)
				if err != nil {
					return 0, fmt.Errorf("bench: VmRSS %q: %w", rest, err)
				}
				return kb / 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("bench: no VmRSS in /proc/self/status")
}

// LoadAverage is the 1-minute load average (other work on the box skews figures).
func LoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
