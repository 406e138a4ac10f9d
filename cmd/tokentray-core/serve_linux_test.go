package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/demoprovider"
)

// A server: no session bus, no display, store = "file". `tokentray serve`
// keeps the connection; `tokentray login NAME --paste` in another shell
// signs it in with a browser elsewhere (the landing address pasted), the
// code exchanged by the service; scripts get tokens from it; the token
// files are 0600 in $XDG_STATE_HOME/tokentray; its log has no token; and
// SIGTERM ends it cleanly. It builds the binaries, so -short skips it.
func TestServeOnAServerWithTheFileStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	dir := t.TempDir()
	buildCLI(t, dir)
	bin := filepath.Join(dir, "tokentray")

	provider := &demoprovider.Server{AccessTTL: time.Hour}
	port := freeTCPPort(t)
	provider.RedirectURI = "http://localhost:" + strconv.Itoa(port) + "/callback"
	base, err := provider.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer provider.Close()

	home, state, runtime := filepath.Join(dir, "home"), filepath.Join(dir, "state"), filepath.Join(dir, "run")
	for _, d := range []string{home, runtime} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(`store = "file"

[[connection]]
name = "agent-api"
provider = "generic"
client_id = "`+demoprovider.ClientID+`"
auth_url = "`+base+`/authorize"
token_url = "`+base+`/token"
redirect_uri = "`+provider.RedirectURI+`"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{"HOME=" + home, "XDG_STATE_HOME=" + state, "XDG_RUNTIME_DIR=" + runtime, "LANG=C.UTF-8", "PATH=" + os.Getenv("PATH")}
	run := func(stdin string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, append([]string{"--config", cfg}, args...)...)
		cmd.Env = environ
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	if _, stderr, err := run(demoprovider.ClientSecret+"\n", "secret", "agent-api"); err != nil {
		t.Fatalf("secret: %v\n%s", err, stderr)
	}

	serve := exec.Command(bin, "--config", cfg, "serve")
	serve.Env = environ
	var logs syncBuffer
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	sock := filepath.Join(runtime, "tokentray", "api.sock")
	waitUntil(t, "the service's socket", func() bool {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})

	// A sign-in that would open a browser here says what to do instead.
	if _, stderrText, err := run("", "login", "agent-api"); err == nil || !strings.Contains(stderrText, "headless") || !strings.Contains(stderrText, "--paste") {
		t.Fatalf("login without --paste on a headless service: %v\n%s", err, stderrText)
	}

	// The sign-in: the person opens the URL in a browser elsewhere, and
	// pastes the address it lands on.
	login := exec.Command(bin, "--config", cfg, "login", "agent-api", "--paste")
	login.Env = environ
	stdin, _ := login.StdinPipe()
	stderr, _ := login.StderrPipe()
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	var said strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		said.WriteString(sc.Text() + "\n")
		if u := strings.TrimSpace(sc.Text()); strings.HasPrefix(u, base+"/authorize?") {
			landing, err := demoprovider.Landing(u, "allow")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(stdin, landing+"\n")
		}
	}
	if err := login.Wait(); err != nil || !strings.Contains(said.String(), "through the running tokentray") && !strings.Contains(said.String(), "Signed in to agent-api") {
		t.Fatalf("login --paste: %v\n%s", err, said.String())
	}

	out, stderrText, err := run("", "token", "agent-api")
	if err != nil || !strings.HasPrefix(out, "demo-at-") {
		t.Fatalf("token: %q %v\n%s", out, err, stderrText)
	}
	token := strings.TrimSpace(out)
	for _, f := range []string{"agent-api.tokens", "agent-api.client-secret"} {
		info, err := os.Stat(filepath.Join(state, "tokentray", f))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, info, err)
		}
	}
	if status, _, err := run("", "status"); err != nil || !strings.Contains(status, "connected") {
		t.Fatalf("status: %v\n%s", err, status)
	}

	// `tokentray events` follows it: the snapshot, ready, then a refresh.
	events := exec.Command(bin, "--config", cfg, "events")
	events.Env = environ
	evOut, _ := events.StdoutPipe()
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(evOut)
	next := func(want string) string {
		t.Helper()
		for lines.Scan() {
			if strings.Contains(lines.Text(), want) {
				return lines.Text()
			}
		}
		t.Fatalf("events ended before a line with %s", want)
		return ""
	}
	if first := next(`"type":"status"`); !strings.Contains(first, `"connection":"agent-api"`) {
		t.Fatalf("the snapshot: %s", first)
	}
	next(`"type":"ready"`)
	if _, stderrText, err := run("", "refresh", "agent-api"); err != nil {
		t.Fatalf("refresh: %v\n%s", err, stderrText)
	}
	if line := next(`"kind":"refreshed"`); strings.Contains(line, "demo-at-") {
		t.Fatalf("an event holds the token: %s", line)
	}
	_ = events.Process.Kill()
	_ = events.Wait()

	stopServe(t, serve, &logs)
	text := logs.String()
	if !strings.Contains(text, `msg=serving`) || !strings.Contains(text, "signed in") || !strings.Contains(text, "msg=stopped") {
		t.Errorf("the service's log lacks what it did:\n%s", text)
	}
	if strings.Contains(text, token) || strings.Contains(text, demoprovider.ClientSecret) {
		t.Errorf("the service's log holds a token or the secret:\n%s", text)
	}

	// The service again, now with a key as systemd passes it: what it
	// writes is sealed, the client secret too when `tokentray secret` hands
	// it over, and a process without the key cannot read it.
	creds := filepath.Join(dir, "credentials")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "tokentray.key"), bytes.Repeat([]byte{42}, 32), 0o400); err != nil {
		t.Fatal(err)
	}
	serve = exec.Command(bin, "--config", cfg, "serve")
	serve.Env = append(environ, "CREDENTIALS_DIRECTORY="+creds)
	logs = syncBuffer{}
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	// The socket, not `status`: status answers in-process too, before the
	// service serves, and the next step must reach the service.
	waitUntil(t, "the service's socket", func() bool {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if _, stderrText, err := run(demoprovider.ClientSecret+"\n", "secret", "agent-api"); err != nil || !strings.Contains(stderrText, "running tokentray's store") {
		t.Fatalf("secret with the service running: %v\n%s", err, stderrText)
	}
	if _, stderrText, err := run("", "refresh", "agent-api"); err != nil {
		t.Fatalf("refresh: %v\n%s", err, stderrText)
	}
	for _, f := range []string{"agent-api.tokens", "agent-api.client-secret"} {
		b, err := os.ReadFile(filepath.Join(state, "tokentray", f))
		if err != nil || !bytes.HasPrefix(b, []byte("tokentray-sealed:v1")) {
			t.Fatalf("%s is not sealed: %v %.40q", f, err, b)
		}
	}
	if out, _, err := run("", "token", "agent-api"); err != nil || !strings.HasPrefix(out, "demo-at-") {
		t.Fatalf("token from the service with sealed files: %q %v", out, err)
	}
	stopServe(t, serve, &logs)
	if _, stderrText, err := run("", "token", "agent-api"); err == nil || !strings.Contains(stderrText, "encrypted") || !strings.Contains(stderrText, "tokentray.key") {
		t.Fatalf("a process without the key: %v\n%s", err, stderrText)
	}
}

// buildCLI builds tokentray and tokentray-core into dir, as installed.
func buildCLI(t *testing.T, dir string) {
	t.Helper()
	root, _ := filepath.Abs("../..")
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/tokentray", "./cmd/tokentray-core")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
}

// stopServe ends a `tokentray serve` with SIGTERM, as systemd does.
func stopServe(t *testing.T, serve *exec.Cmd, logs *syncBuffer) {
	t.Helper()
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("serve did not stop within a minute of SIGTERM\n%s", logs.String())
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within a minute", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The user unit shipped in assets/systemd and the system unit the README
// shows pass systemd-analyze verify without a word: an unknown key is only
// a warning to systemd, and would be silently ignored on the server.
func TestTheSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (.ci/test installs it)")
	}
	dir := t.TempDir()
	runtime := filepath.Join(dir, "run")
	if err := os.Mkdir(runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	system := ""
	for _, block := range strings.Split(string(readme), "```ini\n")[1:] {
		if b, _, _ := strings.Cut(block, "```"); strings.Contains(b, "User=") {
			system = b
		}
	}
	user, err := os.ReadFile("../../assets/systemd/tokentray.service")
	if err != nil {
		t.Fatal(err)
	}
	if system == "" {
		t.Fatal("the README shows no system unit (an ini block with User=)")
	}
	for _, u := range []struct {
		name, text string
		args       []string
	}{
		{"tokentray.service", string(user), []string{"--user"}},
		{"tokentray-agent.service", system, nil},
	} {
		// The binary need not be installed here: verify checks that it exists.
		text := strings.ReplaceAll(u.text, "/usr/local/bin/tokentray", "/bin/true")
		path := filepath.Join(dir, u.name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, append(u.args, "verify", path)...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze %s verify %s: %v\n%s\n%s", strings.Join(u.args, " "), u.name, err, out, text)
		}
	}
}
