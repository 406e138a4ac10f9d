// Package ui is tokentray's face on the desktop: the tray icon and menu, the
// dashboard window and the notifications. It is a client of the auth
// keepers: it subscribes to their events and calls their methods, and holds
// no token state of its own.
package ui

import (
	"fmt"
	"image/color"
	"time"

	"fyne.io/fyne/v2"

	"github.com/tokentray/tokentray/assets"
	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/humanize"
)

// Level is the colour of the tray icon.
type Level int

const (
	// Grey: nothing is signed in.
	Grey Level = iota
	// Green: every connection holds a valid access token.
	Green
	// Red: some connection needs a person or has no valid token.
	Red
)

func (l Level) String() string {
	switch l {
	case Green:
		return "green"
	case Red:
		return "red"
	}
	return "grey"
}

// Overall is the tray's colour for a set of connections: grey when none is
// signed in, green when every one is usable, red otherwise.
func Overall(sts []auth.Status) Level {
	signedIn := 0
	for _, st := range sts {
		if st.State != auth.StateDisconnected {
			signedIn++
		}
	}
	if signedIn == 0 {
		return Grey
	}
	for _, st := range sts {
		if ConnectionLevel(st) != Green {
			return Red
		}
	}
	return Green
}

// ConnectionLevel is one connection's colour, for its status dot.
func ConnectionLevel(st auth.Status) Level {
	switch {
	case st.State == auth.StateDisconnected:
		return Grey
	case st.State == auth.StateNeedsReauth || st.State == auth.StateClientRefused || !st.Usable:
		return Red
	}
	return Green
}

// Summary is a connection's state in a few words, as the tray menu shows it:
// "1 h 12 m left", "sign-in needed", "retrying, 40 m left".
func Summary(st auth.Status, now time.Time) string {
	left := ""
	if st.Usable {
		left = humanize.Coarse(st.AccessExpiry.Sub(now)) + " left"
	}
	service := st.Grant == auth.GrantClientCredentials
	switch st.State {
	case auth.StateDisconnected:
		if service {
			return "no token yet"
		}
		return "not signed in"
	case auth.StateNeedsReauth:
		if service {
			return "credentials refused"
		}
		return "sign-in needed"
	case auth.StateClientRefused:
		return "client refused: fix the secret"
	case auth.StateRefreshing:
		return "refreshing…"
	case auth.StateDegraded:
		if left == "" {
			return "token expired, retrying"
		}
		return "retrying, " + left
	}
	if left == "" {
		return "token expired"
	}
	return left
}

// MenuLine is a connection's line in the tray menu.
func MenuLine(st auth.Status, now time.Time) string {
	return fmt.Sprintf("%s — %s", st.Name, Summary(st, now))
}

// Tooltip is the tray's hover text: one line per connection.
func Tooltip(sts []auth.Status, now time.Time) string {
	if len(sts) == 0 {
		return "tokentray: no connections"
	}
	s := "tokentray"
	for _, st := range sts {
		s += "\n" + MenuLine(st, now)
	}
	return s
}

var (
	trayGreen = fyne.NewStaticResource("tray-green.png", assets.TrayGreen)
	trayRed   = fyne.NewStaticResource("tray-red.png", assets.TrayRed)
	trayGrey  = fyne.NewStaticResource("tray-grey.png", assets.TrayGrey)
	// AppIcon is the application icon.
	AppIcon = fyne.NewStaticResource("icon.png", assets.Icon)
)

// TrayIcon returns the tray icon for a level.
func TrayIcon(l Level) fyne.Resource {
	switch l {
	case Green:
		return trayGreen
	case Red:
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

func levelColour(l Level) color.Color {
	switch l {
	case Green:
		return colourGreen
	case Red:
		return colourRed
	}
	return colourGrey
}
