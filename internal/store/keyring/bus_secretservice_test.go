//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keyring

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen makes a unix socket at path that stays until the test ends.
func listen(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
}

// shortDir is a temp dir with a path short enough for a unix socket.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ss")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// noBusErr checks that err is the "no session bus" error that says what to do.
func noBusErr(t *testing.T, err error, mentions string) {
	t.Helper()
	var nb *noSessionBusError
	if !errors.As(err, &nb) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want a noSessionBusError wrapping ErrUnavailable", err)
	}
	for _, want := range []string{"no Secret Service in this session", "no D-Bus session bus", "desktop session", "dbus-run-session", "gnome-keyring-daemon --unlock", mentions} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v\nwant it to mention %q", err, want)
		}
	}
}

func TestSessionBusAddress(t *testing.T) {
	empty := shortDir(t)
	withBus := shortDir(t)
	listen(t, filepath.Join(withBus, "bus"))
	plainFile := shortDir(t)
	if err := os.WriteFile(filepath.Join(plainFile, "bus"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortDir(t), "session bus") // a space: escaped in addresses
	listen(t, sock)
	escaped := "unix:path=" + strings.ReplaceAll(sock, " ", "%20")
	legacy := shortDir(t) // Ubuntu 16.04's dbus-session file, which godbus reads too
	if err := os.WriteFile(filepath.Join(legacy, "dbus-session"), []byte("DBUS_SESSION_BUS_ADDRESS="+escaped+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, env, runtime string
		want               string // the address; "" for the no-bus error
		mentions           string // in the error
	}{
		{name: "unset, no runtime bus", runtime: empty, mentions: filepath.Join(empty, "bus") + " does not exist"},
		{name: "unset, runtime bus socket", runtime: withBus, want: "unix:path=" + filepath.Join(withBus, "bus")},
		{name: "unset, runtime bus not a socket", runtime: plainFile, mentions: "DBUS_SESSION_BUS_ADDRESS is not set"},
		{name: "autolaunch: is unset to godbus", env: "autolaunch:", runtime: empty, mentions: "is not set"},
		{name: "autolaunch: with a runtime bus", env: "autolaunch:", runtime: withBus, want: "unix:path=" + filepath.Join(withBus, "bus")},
		{name: "unset, legacy dbus-session file", runtime: legacy, want: escaped},
		{name: "unix path to a missing socket", env: "unix:path=/nonexistent/bus,guid=0123", runtime: withBus, mentions: "no socket at /nonexistent/bus"},
		{name: "unix path to a socket", env: escaped + ",guid=0123", runtime: empty, want: escaped + ",guid=0123"},
		{name: "abstract socket", env: "unix:abstract=/tmp/dbus-Ab12,guid=0123", runtime: empty, want: "unix:abstract=/tmp/dbus-Ab12,guid=0123"},
		{name: "tcp", env: "tcp:host=localhost,port=4711", runtime: empty, want: "tcp:host=localhost,port=4711"},
		{name: "second entry works", env: "unix:path=/nonexistent/bus;" + escaped, runtime: empty, want: "unix:path=/nonexistent/bus;" + escaped},
		{name: "unix without path or abstract", env: "unix:tmpdir=/tmp", runtime: withBus, mentions: "neither a path nor an abstract socket"},
		{name: "transport godbus lacks", env: "launchd:env=X", runtime: withBus, mentions: `transport "launchd"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DBUS_SESSION_BUS_ADDRESS", c.env)
			t.Setenv("XDG_RUNTIME_DIR", c.runtime)
			got, err := sessionBusAddress()
			if c.want == "" {
				noBusErr(t, err, c.mentions)
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// fakeCommand puts an executable named name first on PATH that records each
// run in the returned file and fails, as if it could not start anything.
func fakeCommand(t *testing.T, name string) (ranLog string) {
	t.Helper()
	dir := t.TempDir()
	ranLog = filepath.Join(dir, name+".ran")
	script := fmt.Sprintf("#!/bin/sh\necho \"$0 $*\" >> %q\nexit 1\n", ranLog)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return ranLog
}

// With no session bus a keyring call fails at once, and godbus never gets
// to run dbus-launch (which starts a dbus-daemon that stays behind).
func TestNoSessionBusFailsAtOnceWithoutLaunchingOne(t *testing.T) {
	for _, env := range []string{"", "unix:path=/nonexistent/tokentray-test-bus"} {
		t.Run(fmt.Sprintf("DBUS_SESSION_BUS_ADDRESS=%q", env), func(t *testing.T) {
			t.Setenv("DBUS_SESSION_BUS_ADDRESS", env)
			t.Setenv("XDG_RUNTIME_DIR", shortDir(t))
			launched := fakeCommand(t, "dbus-launch")
			s := NewItems("tokentray-test")
			start := time.Now()
			_, err := s.Get(context.Background(), "k")
			took := time.Since(start)
			noBusErr(t, err, "")
			// An autolaunched bus, or a call waiting for one, takes the
			// D-Bus timeout (25 s); a busy machine adds far less.
			if took > 10*time.Second {
				t.Fatalf("failed after %s, want at once", took)
			}
			if err := s.Set(context.Background(), "k", "v"); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("set: %v", err)
			}
			if err := s.Delete(context.Background(), "k"); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("delete: %v", err)
			}
			if b, err := os.ReadFile(launched); err == nil {
				t.Fatalf("dbus-launch was run: %s", b)
			}
		})
	}
}

// On a bus where nobody owns org.freedesktop.secrets, a keyring call says
// so and does not ask the bus to start the Secret Service (D-Bus activation
// would leave a gnome-keyring-daemon behind).
func TestNoSecretServiceOnTheBusStartsNone(t *testing.T) {
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("needs dbus-daemon")
	}
	dir := shortDir(t)
	services := filepath.Join(dir, "services")
	activated := filepath.Join(dir, "activated")
	if err := os.Mkdir(services, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "fake-keyring")
	if err := os.WriteFile(exe, []byte(fmt.Sprintf("#!/bin/sh\ntouch %q\n", activated)), 0o755); err != nil {
		t.Fatal(err)
	}
	service := "[D-BUS Service]\nName=org.freedesktop.secrets\nExec=" + exe + "\n"
	if err := os.WriteFile(filepath.Join(services, "org.freedesktop.secrets.service"), []byte(service), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=`+dir+`</listen>
  <servicedir>`+services+`</servicedir>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("bus address: %v", err)
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", strings.TrimSpace(addr))
	t.Cleanup(func() {
		// The process's shared connection is to this bus. Closing it waits
		// for godbus's lock, held for good by a dial that hangs.
		done := make(chan struct{})
		go func() { dropSharedBus(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	})

	// Without a display (SSH, cron, a server) nothing is started.
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	s := NewItems("tokentray-test")
	s.Timeout = 5 * time.Second
	start := time.Now()
	_, err = s.Get(context.Background(), "k")
	t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no Secret Service is running") {
		t.Fatalf("err = %v, want the keyring unavailable with no Secret Service running", err)
	}
	time.Sleep(100 * time.Millisecond) // an activation would have run the Exec by now
	if _, err := os.Stat(activated); err == nil {
		t.Fatal("the keyring call had the bus start the Secret Service (D-Bus activation)")
	}

	// In a desktop session the bus may start it, as i3 or sway users rely on:
	// there is a display for its unlock prompt.
	t.Setenv("DISPLAY", ":99")
	s.Timeout = time.Second
	_, _ = s.Get(context.Background(), "k") // the fake never owns the name: this call fails
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(activated); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("in a desktop session the bus was not allowed to start the Secret Service")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
