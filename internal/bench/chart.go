package bench

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
)

// Chart is a grouped bar chart: one group per room, file or run; one bar per series
// (say p50 and p95). It has no text: the JSON beside it carries the labels and numbers,
// and the chart shows the shape at a glance. Horizontal grid lines are at every Step
// units; Limit, when > 0, is drawn as a red line (a goal or bound).
type Chart struct {
	Series []string    // names, in bar order within a group (for the JSON only)
	Groups [][]float64 // Groups[g][s] is series s's value in group g
	Step   float64     // grid spacing in data units; 0 picks one
	Limit  float64
}

var palette = []color.RGBA{{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0x94, 0x67, 0xbd, 0xff}}

// Draw renders the chart as a PNG.
func (c Chart) Draw(w io.Writer) error {
	if len(c.Groups) == 0 {
		return errors.New("bench: chart has no data")
	}
	top := c.Limit
	nseries := 0
	for _, g := range c.Groups {
		nseries = max(nseries, len(g))
		for _, v := range g {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("bench: chart value %v is not finite", v)
			}
			top = max(top, v)
		}
	}
	if top <= 0 {
		top = 1
	}
	top *= 1.1
	const h, pad, bar, gap = 300, 20, 14, 12
	width := pad*2 + len(c.Groups)*(nseries*bar+gap)
	width = max(width, 200)
	img := image.NewRGBA(image.Rect(0, 0, width, h))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	plot := h - 2*pad
	y := func(v float64) int { return h - pad - int(v/top*float64(plot)) }
	step := c.Step
	if step <= 0 {
		step = math.Pow(10, math.Floor(math.Log10(top)))
	}
	for v := step; v < top && step > 0; v += step {
		fill(img, image.Rect(pad, y(v), width-pad, y(v)+1), color.RGBA{0xdd, 0xdd, 0xdd, 0xff})
	}
	fill(img, image.Rect(pad, h-pad, width-pad, h-pad+1), color.RGBA{0, 0, 0, 0xff})
	for gi, g := range c.Groups {
		x0 := pad + gap/2 + gi*(nseries*bar+gap)
		for si, v := range g {
			x := x0 + si*bar
			fill(img, image.Rect(x, y(v), x+bar-2, h-pad), palette[si%len(palette)])
		}
	}
	if c.Limit > 0 {
		fill(img, image.Rect(pad, y(c.Limit)-1, width-pad, y(c.Limit)+1), color.RGBA{0xd6, 0x27, 0x28, 0xff})
	}
	return png.Encode(w, img)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// WriteChart draws c to path; an empty path does nothing.
func WriteChart(path string, c Chart) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: chart: %w", err)
	}
	if err := c.Draw(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
