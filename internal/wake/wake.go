// Package wake notices that the machine resumed from suspend, from
// systemd-logind's PrepareForSleep(false) signal on the system bus, so that
// refreshes that fell due while it slept start at once. Without logind,
// Jumps sees the wall clock run ahead of the monotonic one instead.
package wake

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

const (
	login1      = "org.freedesktop.login1"
	managerPath = "/org/freedesktop/login1"
	managerIf   = "org.freedesktop.login1.Manager"
)

// Watch calls onWake after each resume until ctx ends. conn is the system
// bus (or, in tests, any bus where a login1 stand-in owns the name). Only
// signals from the owner of org.freedesktop.login1 count.
func Watch(ctx context.Context, conn *dbus.Conn, onWake func()) error {
	if err := conn.AddMatchSignal(
		dbus.WithMatchSender(login1),
		dbus.WithMatchObjectPath(managerPath),
		dbus.WithMatchInterface(managerIf),
		dbus.WithMatchMember("PrepareForSleep"),
	); err != nil {
		return fmt.Errorf("listen for resume from suspend: %w", err)
	}
	signals := make(chan *dbus.Signal, 8)
	conn.Signal(signals)
	go func() {
		defer conn.RemoveSignal(signals)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-signals:
				if s == nil || s.Name != managerIf+".PrepareForSleep" || len(s.Body) != 1 {
					continue
				}
				if owner, err := nameOwner(conn, login1); err != nil || owner != s.Sender {
					continue // not from logind
				}
				if sleeping, ok := s.Body[0].(bool); ok && !sleeping {
					onWake()
				}
			}
		}
	}()
	return nil
}

func nameOwner(conn *dbus.Conn, name string) (string, error) {
	var owner string
	err := conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner)
	return owner, err
}
