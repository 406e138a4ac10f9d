// Command gen draws tokentray's icons into assets/: the tray icon in its
// three states and the application icon. Run it from the repository root
// with `go run ./assets/gen` after changing a shape or a colour.
//
// The states differ in shape as well as colour, for people who cannot tell
// red from green: a key on green (all connections usable), an exclamation
// mark on red (a person is needed), a key on grey (nothing signed in).
package main

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"log"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/image/vector"
)

var (
	green = color.RGBA{0x1f, 0x9d, 0x55, 0xff}
	red   = color.RGBA{0xd6, 0x45, 0x45, 0xff}
	grey  = color.RGBA{0x8a, 0x93, 0xa3, 0xff}
	white = color.RGBA{0xff, 0xff, 0xff, 0xff}
)

func main() {
	out := "assets"
	write := func(name string, img image.Image) {
		f, err := os.Create(filepath.Join(out, name))
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, img); err != nil {
			log.Fatal(err)
		}
	}
	write("tray-green.png", icon(64, green, key))
	write("tray-red.png", icon(64, red, exclamation))
	write("tray-grey.png", icon(64, grey, key))
	write("icon.png", icon(512, green, key))
}

// icon draws a disc of colour bg with a darker rim (so it reads on light
// and dark panels alike) and a white glyph, at size×size pixels.
func icon(size int, bg color.RGBA, glyph func(r *vector.Rasterizer, s float32)) image.Image {
	s := float32(size) / 64 // shapes are designed on a 64 px grid
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	rim := color.RGBA{bg.R * 3 / 4, bg.G * 3 / 4, bg.B * 3 / 4, 0xff}
	fill(img, rim, func(r *vector.Rasterizer) { circle(r, 32*s, 32*s, 31*s) })
	fill(img, bg, func(r *vector.Rasterizer) { circle(r, 32*s, 32*s, 28.5*s) })
	fill(img, white, func(r *vector.Rasterizer) { glyph(r, s) })
	return img
}

func fill(dst *image.RGBA, c color.RGBA, shape func(r *vector.Rasterizer)) {
	b := dst.Bounds()
	r := vector.NewRasterizer(b.Dx(), b.Dy())
	r.DrawOp = draw.Over
	shape(r)
	r.Draw(dst, b, image.NewUniform(c), image.Point{})
}

// circle adds a clockwise circle; ring adds an anticlockwise one, which
// the non-zero fill rule turns into a hole.
func circle(r *vector.Rasterizer, cx, cy, radius float32) { arc(r, cx, cy, radius, false) }

func arc(r *vector.Rasterizer, cx, cy, radius float32, reverse bool) {
	const n = 64
	for i := 0; i <= n; i++ {
		a := 2 * math.Pi * float64(i) / n
		if reverse {
			a = -a
		}
		x, y := cx+radius*float32(math.Cos(a)), cy+radius*float32(math.Sin(a))
		if i == 0 {
			r.MoveTo(x, y)
		} else {
			r.LineTo(x, y)
		}
	}
	r.ClosePath()
}

func rect(r *vector.Rasterizer, x0, y0, x1, y1 float32) {
	r.MoveTo(x0, y0)
	r.LineTo(x1, y0)
	r.LineTo(x1, y1)
	r.LineTo(x0, y1)
	r.ClosePath()
}

// key: a ring for the bow, a shaft and two teeth, tilted up to the right.
func key(r *vector.Rasterizer, s float32) {
	circle(r, 22*s, 32*s, 10.5*s)
	arc(r, 22*s, 32*s, 4.8*s, true)
	rect(r, 30*s, 29*s, 51*s, 35*s)
	rect(r, 41*s, 35*s, 45.5*s, 42*s)
	rect(r, 47*s, 35*s, 51*s, 40*s)
}

// exclamation: a bold bar and a dot.
func exclamation(r *vector.Rasterizer, s float32) {
	r.MoveTo(27.5*s, 14*s)
	r.LineTo(36.5*s, 14*s)
	r.LineTo(35*s, 38*s)
	r.LineTo(29*s, 38*s)
	r.ClosePath()
	circle(r, 32*s, 46*s, 4.8*s)
}
