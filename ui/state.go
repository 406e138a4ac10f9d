// Package ui is the window process (tokentray-window): the dashboard and the
// connection editor, drawn with Fyne. It is a client of the running
// tokentray's local API (internal/apiclient): it follows the event stream
// and acts through the API, and holds no token and no config of its own.
// The tray icon and menu (ui/tray) and the notifications belong to the
// resident process, which starts this one when a window is asked for.
package ui

import (
	"image/color"

	"fyne.io/fyne/v2"

	"github.com/tokentray/tokentray/assets"
	"github.com/tokentray/tokentray/internal/humanize"
)

var (
	trayGreen = fyne.NewStaticResource("tray-green.png", assets.TrayGreen)
	trayRed   = fyne.NewStaticResource("tray-red.png", assets.TrayRed)
	trayGrey  = fyne.NewStaticResource("tray-grey.png", assets.TrayGrey)
	// AppIcon is the application icon.
	AppIcon = fyne.NewStaticResource("icon.png", assets.Icon)
)

// TrayIcon returns the tray icon for a level.
func TrayIcon(l humanize.Level) fyne.Resource {
	switch l {
	case humanize.Green:
		return trayGreen
	case humanize.Red:
		return trayRed
	}
	return trayGrey
}

// Status colours, the same as the icons'.
var (
	colourGreen = color.NRGBA{0x1f, 0x9d, 0x55, 0xff}
	colourRed   = color.NRGBA{0xd6, 0x45, 0x45, 0xff}
	colourGrey  = color.NRGBA{0x8a, 0x93, 0xa3, 0xff}
)

func levelColour(l humanize.Level) color.Color {
	switch l {
	case humanize.Green:
		return colourGreen
	case humanize.Red:
		return colourRed
	}
	return colourGrey
}
