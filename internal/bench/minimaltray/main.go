// Command minimaltray is the smallest Fyne tray app: an icon and a Quit
// item. The idle benchmark measures tokentray next to it.
package main

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/driver/desktop"

	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/ui"
)

func main() {
	a := app.NewWithID("io.tokentray.minimaltray")
	if d, ok := a.(desktop.App); ok {
		d.SetSystemTrayMenu(fyne.NewMenu("minimal", fyne.NewMenuItem("Quit", a.Quit)))
		d.SetSystemTrayIcon(ui.TrayIcon(humanize.Green))
	}
	a.Run()
}
