//go:build linux || freebsd || openbsd || netbsd

package notify

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/tstest/dbustest"
)

// onPrivateBus makes a session bus of the test's own the session bus, with
// a notification server of caps on it.
func onPrivateBus(t *testing.T, caps ...string) *dbustest.Notifier {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("no dbus-daemon here")
	}
	dir, err := os.MkdirTemp("", "bus") // t.TempDir's path can be too long for a socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bus, err := dbustest.StartBus(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", bus.Address)
	srv, err := dbustest.StartNotifier(caps...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// A provider's or a server's words in a body show as written: escaped for
// a server that renders body markup (a link in them must not become one),
// as they are for one that does not (entities would show literally).
func TestABodyIsMarkupOnlyForAServerThatRendersIt(t *testing.T) {
	const body = `refresh failed: invalid_grant (<a href="https://evil">x</a> & more)`
	tests := []struct {
		name string
		caps []string
		want string
	}{
		{"a server with body-markup gets it escaped", []string{"actions", "body", "body-markup"},
			`refresh failed: invalid_grant (&lt;a href=&quot;https://evil&quot;&gt;x&lt;/a&gt; &amp; more)`},
		{"a server without body-markup gets it as it is", []string{"actions", "body"}, body},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := onPrivateBus(t, tc.caps...)
			d, err := NewDBus("tokentray", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, err := d.Send(Message{Key: "procore", Title: "procore: sign-in needed", Body: body}); err != nil {
				t.Fatal(err)
			}
			got, err := srv.Next(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got.Body != tc.want || got.Summary != "procore: sign-in needed" {
				t.Fatalf("summary %q, body %q; want body %q", got.Summary, got.Body, tc.want)
			}
		})
	}
}
