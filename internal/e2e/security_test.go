//go:build e2e && linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/tstest/sshtest"
)

// squatterAccount is the other local user who tries to pose as tokentray.
const squatterAccount = "tt-squatter"

// fakeTokentray is the other user's server: it records every byte it is
// sent and answers each request with a token of its own.
const fakeTokentray = `import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(2)
    data = b""
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and len(body) >= int(([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")] or [b"0"])[0]):
                break
    except Exception:
        pass
    with open(log, "ab") as f:
        f.write(data)
    answer = b'{"name":"e2e","access_token":"ATTACKERS-TOKEN","token_type":"bearer","expires_in":3600,"expires_at":"2099-01-01T00:00:00Z"}'
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer)
    c.close()
`

// Where there is no runtime directory (cron without linger, su, a
// container), the socket falls back to the temporary directory, which
// every user can write to. Another user who gets there first, with a
// directory and a server of their own, or with a symbolic link to a
// directory of ours, receives nothing: token and secret refuse and say
// why, serve refuses to start there, and nothing is chmod-ed through the
// link.
func TestAnotherUserCannotPoseAsTokentray(t *testing.T) {
	sshtest.Skip(t)
	if _, err := os.Stat("/run/user/" + strconv.Itoa(os.Getuid())); err == nil {
		t.Skipf("/run/user/%d exists: the socket would live there, not in the temporary directory", os.Getuid())
	}
	squatter := sshtest.EnsureUser(t, squatterAccount)
	uid, _ := strconv.Atoi(squatter.Uid)
	gid, _ := strconv.Atoi(squatter.Gid)
	asSquatter := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = "/"
		return cmd
	}

	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	buildTokentray(t, root, dir)
	shared, err := os.MkdirTemp("", "tt-shared-") // as /tmp: anyone's to write, sticky
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(shared, "theirs") // the squatter's own
	if out, err := asSquatter("mkdir", "-m", "0755", theirs).CombinedOutput(); err != nil {
		t.Fatalf("mkdir as %s: %v %s", squatterAccount, err, out)
	}
	received := filepath.Join(theirs, "received")
	script := filepath.Join(theirs, "fake.py")
	if err := os.WriteFile(script, []byte(fakeTokentray), 0o644); err != nil {
		t.Fatal(err)
	}

	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".config", "tokentray"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(home, 0o755)
	cfg := `store = "file"

[[connection]]
name = "e2e"
provider = "generic"
client_id = "c"
redirect_uri = "http://localhost:8765/callback"
auth_url = "https://idp.example.com/authorize"
token_url = "https://idp.example.com/token"
`
	if err := os.WriteFile(filepath.Join(home, ".config", "tokentray", "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// A script's environment there: no runtime directory, no session bus.
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "XDG_RUNTIME_DIR" && k != "DBUS_SESSION_BUS_ADDRESS" && !strings.HasPrefix(k, "XDG_") && k != "HOME" && k != "TMPDIR" {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home, "TMPDIR="+shared, "LANG=C.UTF-8")
	run := func(stdin string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "tokentray"), args...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("tokentray %v did not end within 30 s: %s", args, errb.String())
		}
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("tokentray %v: %v", args, err)
		}
		t.Logf("$ tokentray %s → exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		return code, out.String(), errb.String()
	}
	sockDir := filepath.Join(shared, "tokentray-"+strconv.Itoa(os.Getuid()))
	startServer := func(at string) {
		t.Helper()
		srv := asSquatter("/usr/bin/python3", script, filepath.Join(at, "api.sock"), received)
		out, _ := srv.StdoutPipe()
		srv.Stderr = os.Stderr
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
		if sc := bufio.NewScanner(out); !sc.Scan() || sc.Text() != "listening" {
			t.Fatalf("the squatter's server did not start: %q", sc.Text())
		}
	}
	refused := func(says string) {
		t.Helper()
		code, out, errs := run("", "token", "e2e")
		if code == 0 || out != "" || !strings.Contains(errs, says) || !strings.Contains(errs, "another user may be posing as tokentray") || !strings.Contains(errs, "hint: have it removed") {
			t.Fatalf("token: exit %d, stdout %q, stderr %q; want it refused, saying %q", code, out, errs, says)
		}
		code, _, errs = run("SECRET-OF-THE-VICTIM\n", "secret", "e2e")
		if code == 0 || !strings.Contains(errs, says) || strings.Contains(errs, "Saved") {
			t.Fatalf("secret: exit %d, stderr %q; want it refused, saying %q", code, errs, says)
		}
		if b, _ := os.ReadFile(received); len(b) != 0 {
			t.Fatalf("the squatter received %q", b)
		}
	}

	// A directory and a server of the other user's, there first.
	if out, err := asSquatter("mkdir", "-m", "0777", sockDir).CombinedOutput(); err != nil {
		t.Fatalf("mkdir %s as %s: %v %s", sockDir, squatterAccount, err, out)
	}
	startServer(sockDir)
	want := fmt.Sprintf("%s belongs to uid %d, not to you (uid %d)", sockDir, uid, os.Getuid())
	refused(want)
	if code, _, errs := run("", "serve"); code == 0 || !strings.Contains(errs, want) {
		t.Fatalf("serve: exit %d, %q; want it refused, saying %q", code, errs, want)
	}

	// A symbolic link to a directory of ours (HOME, 0755): serve does not
	// start there and chmods nothing through it, and clients refuse it.
	if out, err := asSquatter("sh", "-c", fmt.Sprintf("rm -rf %q && ln -s %q %q", sockDir, home, sockDir)).CombinedOutput(); err != nil {
		t.Fatalf("plant the link: %v %s", err, out)
	}
	want = sockDir + " is a symbolic link, not a directory of yours"
	if code, _, errs := run("", "serve"); code == 0 || !strings.Contains(errs, want) {
		t.Fatalf("serve: exit %d, %q; want it refused, saying %q", code, errs, want)
	}
	if info, err := os.Stat(home); err != nil || info.Mode().Perm() != 0o755 {
		t.Fatalf("HOME after serve: %v %v; want 0755 as it was", info.Mode(), err)
	}
	if _, err := os.Lstat(filepath.Join(home, "api.sock")); err == nil {
		t.Fatal("serve listened in HOME through the link")
	}
	refused(want)
	// The link now points at the squatter's own directory and server.
	if out, err := asSquatter("sh", "-c", fmt.Sprintf("mkdir -m 0777 %q/dir && rm %q && ln -s %q/dir %q", theirs, sockDir, theirs, sockDir)).CombinedOutput(); err != nil {
		t.Fatalf("swap the link: %v %s", err, out)
	}
	startServer(filepath.Join(theirs, "dir"))
	refused(want)
}

// A [[remote]] server's words reach `tokentray status` as plain text: the
// escape sequences it put in a connection's last error are gone (they
// would set the terminal's title, clear it, or write its clipboard), and a
// connection name that no connection here could have makes the server a
// row that says so. The server is a stand-in ssh that answers status.
func TestAServersWordsReachTheTerminalAsPlainText(t *testing.T) {
	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	buildTokentray(t, root, dir)
	const evil = `\u001b]0;TITLE\u0007\u001b[2J\u001b]52;c;ZXZpbA==\u0007`
	answers := map[string]string{
		"moby": `[{"name":"agent","state":"degraded","usable":true,"provider":"procore","last_error":"refresh failed: HTTP 503` + evil + ` <a href=\"https://evil.example\">retry</a>"}]`,
		"dock": `[{"name":"ci` + evil + `","state":"connected","usable":true,"provider":"procore"}]`,
	}
	bin := filepath.Join(dir, "fakessh")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ssh := "#!/bin/sh\nfor last; do :; done\ncase \"$*\" in\n"
	for host, answer := range answers {
		if err := os.WriteFile(filepath.Join(dir, host+".json"), []byte(answer), 0o644); err != nil {
			t.Fatal(err)
		}
		ssh += fmt.Sprintf("*\" agent@%s \"*) exec cat %q ;;\n", host, filepath.Join(dir, host+".json"))
	}
	ssh += "esac\necho \"unexpected: $*\" >&2\nexit 2\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(ssh), 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	cfg := "[[remote]]\nname = \"moby\"\nssh = \"agent@moby\"\n\n[[remote]]\nname = \"dock\"\nssh = \"agent@dock\"\n"
	if err := os.MkdirAll(filepath.Join(home, ".config", "tokentray"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".config", "tokentray", "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	runtime := filepath.Join(dir, "run")
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + home, "XDG_RUNTIME_DIR=" + runtime, "LANG=C.UTF-8"}
	for _, args := range [][]string{{"status"}, {"status", "--json"}} {
		cmd := exec.Command(filepath.Join(dir, "tokentray"), args...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		t.Logf("$ tokentray %s\n%s", strings.Join(args, " "), out)
		text := string(out)
		if strings.ContainsAny(text, "\x1b\x07") || strings.Contains(text, "TITLE") || strings.Contains(text, "ZXZpbA") {
			t.Fatalf("tokentray %v passed the server's escape sequences on: %q", args, text)
		}
		if !strings.Contains(text, "refresh failed: HTTP 503") || !strings.Contains(text, "not allowed") {
			t.Fatalf("tokentray %v: %q; want the cleaned error of agent@moby, and dock unreachable for its name", args, text)
		}
	}
}
