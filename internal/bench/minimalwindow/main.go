// Command minimalwindow is the smallest Fyne app with one window open: a
// label. The window benchmark measures tokentray's dashboard next to it.
package main

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/widget"
)

func main() {
	a := app.NewWithID("io.tokentray.minimalwindow")
	w := a.NewWindow("minimal")
	w.SetContent(widget.NewLabel("a minimal Fyne window"))
	w.Resize(fyne.NewSize(820, 640))
	w.ShowAndRun()
}
