//go:build !windows

package tray

// trayIcon is the icon as fyne.io/systray takes it here: the PNG.
func trayIcon(png []byte) []byte { return png }
