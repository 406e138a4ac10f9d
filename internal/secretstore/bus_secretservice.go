//go:build linux || freebsd || openbsd || netbsd || dragonfly

package secretstore

import (
	"errors"
	"syscall"

	"github.com/godbus/dbus/v5"
)

// brokenBus tells whether err means the process's D-Bus connection itself
// is dead, rather than the keyring refusing a call.
func brokenBus(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// dropSharedBus closes go-keyring's connection, the process's shared session
// bus, so that the next call dials a new one. The bus daemon hangs up on a
// client that sends it an oversized message; until godbus's reader notices,
// the shared connection still says it is connected and every keyring call
// of the process fails with "broken pipe".
func dropSharedBus() {
	if conn, err := dbus.SessionBus(); err == nil {
		_ = conn.Close()
	}
}
