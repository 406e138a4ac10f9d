//go:build !linux

package tray

// followRegistrations is for systray's D-Bus item, on Linux only: on
// Windows and macOS the icon is set on the system's own tray at once.
func followRegistrations(func()) (stop func()) { return func() {} }
