package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
)

// With no session bus (SSH, cron, a server) the real binary fails at once
// with exit 1 and says what to do, and neither it nor godbus under it
// starts a dbus-daemon or a gnome-keyring-daemon that would stay behind.
// It builds the binary, so -short skips it; .ci/test runs it with the unit
// tests.
func TestNoSessionBusFailsFastAndStartsNoDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tokentray")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	home, runDir, fakes := filepath.Join(dir, "home"), filepath.Join(dir, "runtime"), filepath.Join(dir, "bin")
	for _, d := range []string{home, runDir, fakes} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(`[[connection]]
name = "api"
provider = "generic"
client_id = "id"
auth_url = "https://auth.example.com/authorize"
token_url = "https://auth.example.com/token"
redirect_uri = "http://localhost:8765/callback"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// godbus's autolaunch runs dbus-launch from PATH: this one records that
	// it ran and starts nothing, whether or not the machine has the real one.
	launched := filepath.Join(dir, "dbus-launch.ran")
	if err := os.WriteFile(filepath.Join(fakes, "dbus-launch"), []byte(fmt.Sprintf("#!/bin/sh\necho \"dbus-launch $*\" >> %q\nexit 1\n", launched)), 0o755); err != nil {
		t.Fatal(err)
	}
	// Every process the binary starts inherits this variable, even one
	// that daemonises and loses its parent.
	var m [8]byte
	_, _ = rand.Read(m[:])
	marker := "TOKENTRAY_NOBUS_TEST=" + hex.EncodeToString(m[:])
	environ := []string{marker, "HOME=" + home, "XDG_RUNTIME_DIR=" + runDir, "LANG=C.UTF-8",
		"PATH=" + fakes + string(os.PathListSeparator) + os.Getenv("PATH")}
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY", "HOME", "PATH", "LANG", "LC_ALL", "LANGUAGE",
			"XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "TOKENTRAY_IN_SESSION":
		default:
			environ = append(environ, kv)
		}
	}

	start := time.Now()
	before := busDaemons(t, marker)
	t.Cleanup(func() {
		// Should one have been started after all, it is this test's to stop.
		for pid, p := range busDaemons(t, marker) {
			if p.ours {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"token", "api"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, append([]string{"--config", cfg}, args...)...)
		cmd.Env = environ
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		began := time.Now()
		err := cmd.Run()
		took := time.Since(began)
		cancel()
		t.Logf("tokentray %s: %v after %s", strings.Join(args, " "), err, took.Round(time.Millisecond))
		if code := cmd.ProcessState.ExitCode(); code != apitype.ExitFailure {
			t.Errorf("tokentray %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, apitype.ExitFailure, stdout.String(), stderr.String())
		}
		// What this guards against took 10 s per connection (a D-Bus call
		// to a bus that is not there, timing out); a busy machine may add
		// seconds to a process, never that many.
		if took > 8*time.Second {
			t.Errorf("tokentray %s took %s: it waited for a bus that is not there", strings.Join(args, " "), took)
		}
		for _, want := range []string{"no Secret Service in this session", "no D-Bus session bus", "desktop session",
			"dbus-run-session", "gnome-keyring-daemon --unlock", `store = "file"`} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("tokentray %s: stderr lacks %q:\n%s", strings.Join(args, " "), want, stderr.String())
			}
		}
		if args[0] == "status" && !strings.Contains(stdout.String(), "api") {
			t.Errorf("tokentray %s must still print the connection:\n%s", strings.Join(args, " "), stdout.String())
		}
	}

	if b, err := os.ReadFile(launched); err == nil {
		t.Errorf("godbus ran dbus-launch (autolaunch): %s", b)
	}
	time.Sleep(200 * time.Millisecond) // a daemon being started would be there by now
	for pid, p := range busDaemons(t, marker) {
		if _, there := before[pid]; there || p.started.Before(start.Add(-time.Second)) {
			continue
		}
		if p.ours {
			t.Errorf("tokentray left a %s behind (pid %d)", p.comm, pid)
		} else {
			t.Logf("a %s (pid %d) started during the test without tokentray's environment: another test's", p.comm, pid)
		}
	}
}

// busDaemon is a live dbus-daemon, dbus-launch or gnome-keyring-daemon.
type busDaemon struct {
	comm    string
	started time.Time
	ours    bool // it carries the test's marker: tokentray started it
}

// busDaemons lists the machine's live bus and keyring daemons from /proc.
// Zombies are left out: they are gone, waiting only to be reaped.
func busDaemons(t *testing.T, marker string) map[int]busDaemon {
	t.Helper()
	boot := bootTime(t)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := map[int]busDaemon{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // it ended meanwhile
		}
		// "pid (comm) state ppid …": comm may hold spaces and parentheses.
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open {
			continue
		}
		comm := string(stat[open+1 : end])
		fields := strings.Fields(string(stat[end+1:]))
		if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		switch comm {
		case "dbus-daemon", "dbus-launch", "gnome-keyring-d": // the kernel keeps 15 bytes of a name
		default:
			continue
		}
		ticks, _ := strconv.ParseInt(fields[19], 10, 64) // start time, in USER_HZ (100) after boot
		d := busDaemon{comm: comm, started: boot.Add(time.Duration(ticks) * (time.Second / 100))}
		if env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil {
			d.ours = bytes.Contains(env, []byte(marker+"\x00"))
		}
		found[pid] = d
	}
	return found
}

func bootTime(t *testing.T) time.Time {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return time.Unix(s, 0)
		}
	}
	t.Fatal("no btime in /proc/stat")
	return time.Time{}
}
