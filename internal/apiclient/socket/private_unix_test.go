//go:build unix

package socket

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the other user of these tests.
const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to act as, or give files to, another user (CI runs as root)")
	}
}

// sharedTemp is a directory like /tmp: anyone may create entries, only
// their owner may remove them.
func sharedTemp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tt-shared-") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

func wantUnsafe(t *testing.T, what string, err error, says string) {
	t.Helper()
	var u *UnsafeError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), says) {
		t.Fatalf("%s: %v; want it refused as unsafe, saying %q", what, err, says)
	}
	if IsNotRunning(err) {
		t.Fatalf("%s: %v reads as 'nothing runs', which would let the caller go on", what, err)
	}
}

func TestADirectoryOfAnotherUserIsRefused(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(sharedTemp(t), "tokentray-0")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	wantUnsafe(t, "Check", Check(filepath.Join(dir, "api.sock")), "belongs to uid 65534, not to you (uid 0)")
	wantUnsafe(t, "PrivateDir", PrivateDir(dir), "belongs to uid 65534")
	_, err := Dial(filepath.Join(dir, "api.sock"), time.Second)
	wantUnsafe(t, "Dial", err, "belongs to uid 65534")
}

// A link planted where the directory should be is never followed: nothing
// is made, chmod-ed or listened on where it points.
func TestASymbolicLinkIsNeverFollowed(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(sharedTemp(t), "tokentray-0")
	if err := os.Symlink(home, link); err != nil {
		t.Fatal(err)
	}
	wantUnsafe(t, "PrivateDir", PrivateDir(link), "is a symbolic link, not a directory of yours")
	wantUnsafe(t, "Check", Check(filepath.Join(link, "api.sock")), "is a symbolic link")
	if info, err := os.Stat(home); err != nil || info.Mode().Perm() != 0o755 {
		t.Fatalf("the link's target: %v, %v; want it left at 0755", info.Mode(), err)
	}
}

func TestAnOpenDirectoryIsNarrowedByItsOwnerAndRefusedByClients(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokentray")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	wantUnsafe(t, "Check", Check(filepath.Join(dir, "api.sock")), "can be written by other users (mode 0777)")
	if err := PrivateDir(dir); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v after PrivateDir, want 0700", info.Mode().Perm())
	}
	if err := Check(filepath.Join(dir, "api.sock")); !IsNotRunning(err) {
		t.Fatalf("a private directory without a socket: %v, want 'nothing runs'", err)
	}
}

func TestAFileInPlaceOfTheSocketIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantUnsafe(t, "Check", Check(path), "is a file, not a socket")
}

// A server of another user, even behind a directory and a socket file that
// look like ours, is refused on the kernel's word before anything is sent.
func TestAServerOfAnotherUserIsRefusedBeforeAnythingIsSent(t *testing.T) {
	if os.Getenv("TT_SQUATTER") != "" {
		return
	}
	needRoot(t)
	dir := sharedTemp(t)
	path := filepath.Join(dir, "api.sock")
	bin := filepath.Join(dir, "squatter.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	squatter := exec.Command(bin, "-test.run=TestSquatter")
	squatter.Env = append(os.Environ(), "TT_SQUATTER="+path)
	squatter.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, _ := squatter.StdoutPipe()
	squatter.Stderr = os.Stderr
	if err := squatter.Start(); err != nil {
		t.Fatal(err)
	}
	defer squatter.Process.Kill()
	said := bufio.NewScanner(out)
	if !said.Scan() || said.Text() != "listening" {
		t.Fatalf("the squatter did not start: %q", said.Text())
	}
	// Make the directory and the socket file look like ours: only the
	// process behind the socket is still the other user's.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err != nil {
		t.Fatalf("the directory and socket should pass: %v", err)
	}
	_, err = Dial(path, 5*time.Second)
	wantUnsafe(t, "Dial", err, "is answered by a process of uid 65534, not by one of yours (uid 0)")
	if !said.Scan() || said.Text() != "received 0 bytes" {
		t.Fatalf("the squatter said %q, want that it received nothing", said.Text())
	}
	// The HTTP client's way: package net's connection, checked before use.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	wantUnsafe(t, "CheckConn", CheckConn(path, c.(*net.UnixConn)), "is answered by a process of uid 65534")
	c.Close()
	if !said.Scan() || said.Text() != "received 0 bytes" {
		t.Fatalf("the squatter said %q, want that it received nothing", said.Text())
	}
}

// TestSquatter is the other user's server of the test above: it reports
// how much each client sent.
func TestSquatter(t *testing.T) {
	path := os.Getenv("TT_SQUATTER")
	if path == "" {
		t.Skip("helper of TestAServerOfAnotherUserIsRefusedBeforeAnythingIsSent")
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening")
	for {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		fmt.Printf("received %d bytes\n", n)
	}
}
