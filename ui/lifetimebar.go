package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// lifetimeBar is a thin bar of how much of the access token's life is used,
// in the connection's status colour: quieter than a progress bar, which
// reads as "something is loading".
type lifetimeBar struct {
	widget.BaseWidget
	used   float64
	colour color.Color
}

func newLifetimeBar() *lifetimeBar {
	b := &lifetimeBar{colour: colourGrey}
	b.ExtendBaseWidget(b)
	return b
}

// Set updates the fraction used (0..1) and the colour, redrawing only when
// the bar would look different (a thousandth of its width): the dashboard
// sets it every second. Call on the UI goroutine.
func (b *lifetimeBar) Set(used float64, c color.Color) {
	used = min(max(used, 0), 1)
	if int(used*1000) == int(b.used*1000) && c == b.colour {
		return
	}
	b.used, b.colour = used, c
	b.Refresh()
}

func (b *lifetimeBar) CreateRenderer() fyne.WidgetRenderer {
	track := canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	track.CornerRadius = 3
	fill := canvas.NewRectangle(b.colour)
	fill.CornerRadius = 3
	return &lifetimeBarRenderer{bar: b, track: track, fill: fill}
}

type lifetimeBarRenderer struct {
	bar         *lifetimeBar
	track, fill *canvas.Rectangle
}

func (r *lifetimeBarRenderer) Layout(size fyne.Size) {
	const h = 6
	y := (size.Height - h) / 2
	r.track.Move(fyne.NewPos(0, y))
	r.track.Resize(fyne.NewSize(size.Width, h))
	r.fill.Move(fyne.NewPos(0, y))
	r.fill.Resize(fyne.NewSize(size.Width*float32(r.bar.used), h))
}

func (r *lifetimeBarRenderer) MinSize() fyne.Size { return fyne.NewSize(120, 10) }

func (r *lifetimeBarRenderer) Refresh() {
	r.track.FillColor = theme.Color(theme.ColorNameInputBackground)
	r.fill.FillColor = r.bar.colour
	r.Layout(r.bar.Size())
	canvas.Refresh(r.bar)
}

func (r *lifetimeBarRenderer) Objects() []fyne.CanvasObject {
	return []fyne.CanvasObject{r.track, r.fill}
}

func (r *lifetimeBarRenderer) Destroy() {}
