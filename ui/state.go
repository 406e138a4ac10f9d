// Package ui is tokentray's face on the desktop: the tray icon and menu, the
// dashboard window and the notifications. It is a client of the auth
// keepers: it subscribes to their events and calls their methods, and holds
// no token state of its own.
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
