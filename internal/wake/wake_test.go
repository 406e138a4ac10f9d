//go:build keyring

// Run inside .ci/desktop-session: the private session bus stands in for the
// system bus, and the test owns org.freedesktop.login1 on it.
package wake

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

func TestResumeFromLogindWakes(t *testing.T) {
	listener, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	logind, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	defer logind.Close()
	if reply, err := logind.RequestName(login1, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", login1, reply, err)
	}
	impostor, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()

	woke := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, listener, func() { woke <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	emit := func(c *dbus.Conn, sleeping bool) {
		if err := c.Emit(managerPath, managerIf+".PrepareForSleep", sleeping); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want bool, what string) {
		select {
		case <-woke:
			if !want {
				t.Fatalf("%s woke the keepers", what)
			}
		case <-time.After(500 * time.Millisecond):
			if want {
				t.Fatalf("%s did not wake the keepers", what)
			}
		}
	}
	emit(logind, true)
	expect(false, "going to sleep")
	emit(impostor, false)
	expect(false, "a resume signal from a process that is not logind")
	emit(logind, false)
	expect(true, "logind's resume")
}
