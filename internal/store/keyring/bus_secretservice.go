//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keyring

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

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
	// dbus.SessionBus dials when it holds no live connection, and with no
	// bus address that dial is godbus's autolaunch.
	if _, err := sessionBusAddress(); err != nil {
		return
	}
	if conn, err := dbus.SessionBus(); err == nil {
		_ = conn.Close()
	}
}

// secretServiceName is the bus name every Secret Service owns.
const secretServiceName = "org.freedesktop.secrets"

// errNoSecretService: the bus is there, the keyring daemon is not.
var errNoSecretService = fmt.Errorf("%w: no Secret Service is running on the session bus (nobody owns %s, and tokentray starts none); install and start one (gnome-keyring or KeePassXC with Secret Service enabled), or, on a server, set store = \"file\" at the top of the config file (the README's Servers and agents)",
	ErrUnavailable, secretServiceName)

// noSessionBusError means there is no D-Bus session bus, so no Secret
// Service either. It is an ErrUnavailable.
type noSessionBusError struct{ why string }

func (e *noSessionBusError) Error() string {
	return ErrUnavailable.Error() + ": no Secret Service in this session: there is no D-Bus session bus (" + e.why + "), and tokentray starts none. " +
		"Run tokentray inside a desktop session, or give it a session bus with an unlocked keyring: " +
		"dbus-run-session -- sh -c 'printf PASSWORD | gnome-keyring-daemon --unlock --components=secrets; tokentray …' " +
		"On a server, or anywhere without a desktop, set store = \"file\" at the top of the config file instead (the README's Servers and agents)."
}

func (e *noSessionBusError) Unwrap() error { return ErrUnavailable }

// ownerGrace is how long the first keyring call of a process waits for a
// Secret Service that is starting: `gnome-keyring-daemon --unlock` returns
// before its daemon owns the name (6 to 80 ms measured), so the next
// command of a script would otherwise find none.
const ownerGrace = 500 * time.Millisecond

var waitedForOwner atomic.Bool

// checkSecretService runs before every go-keyring call. go-keyring reaches
// the Secret Service through godbus's shared session bus, and godbus, when it
// finds no bus address, runs dbus-launch: a dbus-daemon that outlives
// tokentray, and a 10 s wait. On a bus where nobody owns the Secret
// Service's name, go-keyring's call asks the bus to start one (D-Bus
// activation), which leaves a gnome-keyring-daemon behind that cannot be
// unlocked without a desktop. Both are refused here, in a stat and one
// round trip on the bus.
func checkSecretService() error {
	addr, err := sessionBusAddress()
	if err != nil {
		return err
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != addr {
		// Pin what was found, so that godbus dials exactly this bus: its own
		// search looks only in /run/user/UID, not in $XDG_RUNTIME_DIR, and
		// ends in dbus-launch. godbus sets the variable itself when its
		// search succeeds.
		if err := os.Setenv("DBUS_SESSION_BUS_ADDRESS", addr); err != nil {
			return err
		}
	}
	conn, err := dbus.SessionBus()
	if err != nil {
		return err
	}
	deadline := time.Now()
	if !waitedForOwner.Swap(true) {
		deadline = deadline.Add(ownerGrace)
	}
	for {
		var owned bool
		if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, secretServiceName).Store(&owned); err != nil {
			return err
		}
		if owned {
			return nil
		}
		if time.Now().After(deadline) {
			if desktopActivation(conn) {
				return nil
			}
			return errNoSecretService
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// desktopActivation reports whether the bus may start the Secret Service:
// in a desktop session (a display to show its unlock prompt on), where the
// bus can activate it, as window managers without a session manager (i3,
// sway) rely on. Without a display the daemon it starts could never be
// unlocked, and would only stay behind.
func desktopActivation(conn *dbus.Conn) bool {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return false
	}
	var names []string
	if err := conn.BusObject().Call("org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
		return false
	}
	return slices.Contains(names, secretServiceName)
}

// sessionBusAddress returns the session bus address godbus is to dial, or a
// noSessionBusError when there is none. It mirrors godbus's
// getSessionBusAddress (v5.2.2, conn.go and conn_other.go) up to where godbus
// would run dbus-launch, and stats sockets, so that a bus that appears later
// is found by the next call:
//
//   - DBUS_SESSION_BUS_ADDRESS, unless empty or "autolaunch:": godbus dials
//     its entries in turn and never launches. It is accepted when one entry
//     can work: a unix:path= socket that exists, an abstract socket, tcp.
//   - Otherwise the runtime directory's "bus" socket, or the address written
//     in its "dbus-session" file. godbus looks in /run/user/UID; the D-Bus
//     specification and libdbus look in $XDG_RUNTIME_DIR, which is used when
//     set (and the address then pinned, see checkSecretService).
func sessionBusAddress() (string, error) {
	env := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if env != "" && env != "autolaunch:" {
		if why := unusableAddress(env); why != "" {
			return "", &noSessionBusError{why: "DBUS_SESSION_BUS_ADDRESS=" + env + ": " + why}
		}
		return env, nil
	}
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = "/run/user/" + strconv.Itoa(os.Getuid())
	}
	bus := filepath.Join(dir, "bus")
	if isSocket(bus) {
		return "unix:path=" + dbus.EscapeBusAddressValue(bus), nil
	}
	if b, err := os.ReadFile(filepath.Join(dir, "dbus-session")); err == nil {
		if addr, ok := strings.CutPrefix(string(b), "DBUS_SESSION_BUS_ADDRESS="); ok {
			if addr = strings.TrimRight(addr, "\r\n"); addr != "" && unusableAddress(addr) == "" {
				return addr, nil
			}
		}
	}
	return "", &noSessionBusError{why: "DBUS_SESSION_BUS_ADDRESS is not set and " + bus + " does not exist"}
}

// unusableAddress says why no entry of a D-Bus address list can be dialled,
// or returns "" when one can. The entries are read as godbus's getTransport
// and newUnixTransport read them.
func unusableAddress(list string) string {
	var why []string
	for _, entry := range strings.Split(list, ";") {
		transport, keys, found := strings.Cut(entry, ":")
		if !found {
			why = append(why, fmt.Sprintf("%q names no transport", entry))
			continue
		}
		switch transport {
		case "tcp", "nonce-tcp":
			// A network address cannot be checked without dialling it;
			// godbus dials it and never launches anything.
			return ""
		case "unix":
			path, abstract := addressKey(keys, "path"), addressKey(keys, "abstract")
			switch {
			case abstract != "" && path == "":
				// Linux's abstract namespace has no file to stat.
				return ""
			case path != "" && abstract == "":
				if isSocket(path) {
					return ""
				}
				why = append(why, "no socket at "+path)
			default:
				why = append(why, fmt.Sprintf("%q names neither a path nor an abstract socket", entry))
			}
		default:
			why = append(why, fmt.Sprintf("godbus does not support the transport %q", transport))
		}
	}
	return strings.Join(why, "; ")
}

// addressKey returns the unescaped value of key in "k=v,k=v", as godbus's getKey.
func addressKey(keys, key string) string {
	for _, kv := range strings.Split(keys, ",") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			if val, err := dbus.UnescapeBusAddressValue(v); err == nil {
				return val
			}
			return ""
		}
	}
	return ""
}

func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}
