package bench

import (
	"image"
	"image/color"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// lineH is the height of a line of chart text (basicfont's 7×13 face).
const lineH = 13

// textWidth is s's width in pixels in the chart face.
func textWidth(s string) int {
	return font.MeasureString(basicfont.Face7x13, s).Ceil()
}

// legendWidth is the width of the legend: a swatch and a name per series.
func legendWidth(series []string) int {
	w := 0
	for _, n := range series {
		w += 14 + textWidth(n) + 16
	}
	return w
}

// drawText writes s with its baseline at (x, y).
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
