//go:build linux

// Package sshtest runs the real OpenSSH server for tests: Debian's sshd on
// a loopback port, with a host key and a client key made on the fly, and a
// second local user as the server's account. A test can cut every
// connection and bring the server back on the same port. It needs root
// (a user, sshd); tests skip without it.
package sshtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is Debian's sshd.
const Binary = "/usr/sbin/sshd"

// Skip skips t unless sshd can be run here (root, sshd installed).
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it adds a local user and starts sshd (.ci/test runs as root or with sudo)")
	}
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("sshd is missing (Debian: openssh-server; .ci/test installs it): %v", err)
	}
}

// Server is sshd serving one user on a loopback port.
type Server struct {
	t    testing.TB
	User *user.User
	Port int
	// Keys holds the client key (id), the host key and known_hosts.
	Keys string

	config string
	mu     sync.Mutex
	cmd    *exec.Cmd
	log    bytes.Buffer
}

// Start starts sshd for account (added if missing) until the test ends.
// The desktop side logs in with the key in Keys/id.
func Start(t testing.TB, account string) *Server {
	t.Helper()
	Skip(t)
	s := &Server{t: t, User: EnsureUser(t, account), Keys: t.TempDir()}
	for _, k := range []string{"host", "id"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(s.Keys, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(s.Keys, "id.pub"))
	uid, gid := s.IDs()
	WriteAs(t, filepath.Join(s.User.HomeDir, ".ssh", "authorized_keys"), uid, gid, string(pub))
	s.Port = freePort(t)
	hostPub, _ := os.ReadFile(filepath.Join(s.Keys, "host.pub"))
	_ = os.WriteFile(filepath.Join(s.Keys, "known_hosts"), []byte(fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, hostPub)), 0o600)
	s.config = filepath.Join(s.Keys, "sshd_config")
	_ = os.WriteFile(s.config, []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers %s
`, s.Port, filepath.Join(s.Keys, "host"), filepath.Join(s.Keys, "sshd.pid"), account)), 0o600)
	_ = os.MkdirAll("/run/sshd", 0o755) // its privilege separation directory
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// IDs are the account's uid and gid.
func (s *Server) IDs() (uid, gid int) {
	uid, _ = strconv.Atoi(s.User.Uid)
	gid, _ = strconv.Atoi(s.User.Gid)
	return uid, gid
}

// Destination is the account at the server, as ssh takes it.
func (s *Server) Destination() string { return s.User.Username + "@127.0.0.1" }

// Options are the ssh options a desktop needs for it (a [[remote]]'s
// ssh_options): its port, the test's key and known_hosts, checked.
func (s *Server) Options() []string {
	return []string{"Port=" + strconv.Itoa(s.Port), "IdentityFile=" + filepath.Join(s.Keys, "id"),
		"UserKnownHostsFile=" + filepath.Join(s.Keys, "known_hosts"), "StrictHostKeyChecking=yes", "IdentitiesOnly=yes", "BatchMode=yes"}
}

// Restart starts sshd (again, on the same port) and returns once it
// accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(Binary, "-D", "-e", "-f", s.config)
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.log}, &lockedWriter{mu: &s.mu, w: &s.log}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.Port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sshd does not listen on %d: %v\n%s", s.Port, err, s.log.String())
		}
	}
}

// Stop stops sshd and cuts every connection it serves (their processes
// are killed): for the desktop, the server is gone.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	for _, p := range descendants(pid) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	s.mu.Unlock()
	_ = s.cmd.Wait()
	s.mu.Lock()
	s.cmd = nil
}

// Log is what sshd said.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// descendants are the processes below pid, children first.
func descendants(pid int) []int {
	children := map[int][]int{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// EnsureUser returns the local user name, added if missing, with no
// password but not locked (sshd refuses a locked account a key login).
func EnsureUser(t testing.TB, name string) *user.User {
	t.Helper()
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", name, err, out)
		}
	}
	if out, err := exec.Command("usermod", "-p", "*", name).CombinedOutput(); err != nil {
		t.Fatalf("usermod %s: %v\n%s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// WriteAs writes a private file of uid, making its directories (0700).
func WriteAs(t testing.TB, path string, uid, gid int, text string) {
	t.Helper()
	home := filepath.Dir(path)
	for d := home; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		defer func(d string) { _ = os.Chown(d, uid, gid) }(d)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

// Write is called by exec's copying goroutine, never under s.mu.
func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
