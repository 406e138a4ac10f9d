package tray

// trayIcon is the icon as fyne.io/systray takes it on Windows: an icon file.
func trayIcon(png []byte) []byte { return ico(png) }
