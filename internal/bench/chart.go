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
	"strconv"
)

// Chart is a grouped bar chart: one group per room, file or run; one bar per series
// (say p50 and p95). The JSON beside it carries the numbers; the chart shows the shape at
// a glance, with a legend of the series, the grid values, and — when given — a title
// and a label under each group. Horizontal grid lines are at every Step units; Limit,
// when > 0, is drawn as a red line (a goal or bound).
type Chart struct {
	Title  string
	Series []string    // names, in bar order within a group (the legend)
	Groups [][]float64 // Groups[g][s] is series s's value in group g
	Labels []string    // optional, one per group
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
	const plot, bar, gap, left, right = 260, 14, 12, 44, 20
	groupW := nseries*bar + gap
	for _, l := range c.Labels {
		groupW = max(groupW, textWidth(l)+6)
	}
	legendH := 0
	if len(c.Series) > 0 {
		legendH = lineH + 4
	}
	titleH := 0
	if c.Title != "" {
		titleH = lineH + 4
	}
	labelsH := 6
	if len(c.Labels) > 0 {
		labelsH = lineH + 6
	}
	width := max(left+right+len(c.Groups)*groupW, left+legendWidth(c.Series)+right, textWidth(c.Title)+2*8, 240)
	h := titleH + legendH + 8 + plot + labelsH
	img := image.NewRGBA(image.Rect(0, 0, width, h))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	base := titleH + legendH + 8 + plot // the x axis
	y := func(v float64) int { return base - int(v/top*float64(plot)) }
	step := c.Step
	if step <= 0 {
		step = math.Pow(10, math.Floor(math.Log10(top)))
	}
	ink := color.RGBA{0x21, 0x2b, 0x32, 0xff}
	for v := step; v < top && step > 0; v += step {
		fill(img, image.Rect(left, y(v), width-right, y(v)+1), color.RGBA{0xdd, 0xdd, 0xdd, 0xff})
		drawText(img, left-4-textWidth(gridValue(v)), y(v)+4, gridValue(v), ink)
	}
	fill(img, image.Rect(left, base, width-right, base+1), color.RGBA{0, 0, 0, 0xff})
	for gi, g := range c.Groups {
		x0 := left + gi*groupW + (groupW-nseries*bar)/2
		for si, v := range g {
			x := x0 + si*bar
			fill(img, image.Rect(x, y(v), x+bar-2, base), palette[si%len(palette)])
		}
		if gi < len(c.Labels) {
			drawText(img, left+gi*groupW+(groupW-textWidth(c.Labels[gi]))/2, base+lineH, c.Labels[gi], ink)
		}
	}
	if c.Limit > 0 {
		fill(img, image.Rect(left, y(c.Limit)-1, width-right, y(c.Limit)+1), color.RGBA{0xd6, 0x27, 0x28, 0xff})
	}
	if c.Title != "" {
		drawText(img, 8, lineH, c.Title, ink)
	}
	x := left
	for si, n := range c.Series {
		ly := titleH + lineH
		fill(img, image.Rect(x, ly-9, x+10, ly+1), palette[si%len(palette)])
		drawText(img, x+14, ly, n, ink)
		x += 14 + textWidth(n) + 16
	}
	return png.Encode(w, img)
}

// gridValue prints a grid line's value compactly.
func gridValue(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

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
