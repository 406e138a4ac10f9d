// Command minimalwindow is the smallest Fyne app with one window open: a
// label. The window benchmark measures tokentray's dashboard next to it,
// and next to the same app whose label changes every second (-tick), as
// the dashboard's countdown does: the floor of any window that ticks.
package main

import (
	"flag"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/widget"
)

func main() {
	tick := flag.Bool("tick", false, "change the label every second")
	flag.Parse()
	a := app.NewWithID("io.tokentray.minimalwindow")
	w := a.NewWindow("minimal")
	l := widget.NewLabel("a minimal Fyne window")
	w.SetContent(l)
	w.Resize(fyne.NewSize(820, 640))
	if *tick {
		go func() {
			for t := range time.Tick(time.Second) {
				fyne.Do(func() { l.SetText(t.Format("15:04:05")) })
			}
		}()
	}
	w.ShowAndRun()
}
