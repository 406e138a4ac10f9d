// Package assets holds tokentray's images, drawn by ./gen.
package assets

import _ "embed"

// Tray icons, 64×64 PNG: a key on green (every connection usable), an
// exclamation mark on red (a person is needed), a key on grey (nothing
// signed in). Plain images, not themed: a themed icon turns monochrome on
// macOS, and the colour is the message.
var (
	//go:embed tray-green.png
	TrayGreen []byte
	//go:embed tray-red.png
	TrayRed []byte
	//go:embed tray-grey.png
	TrayGrey []byte
	// Icon is the application icon, 512×512 PNG.
	//go:embed icon.png
	Icon []byte
)
