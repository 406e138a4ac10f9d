//go:build e2e

// Package e2e runs the real tokentray binary against a real OAuth server
// (oidc-provider, with rotating single-use refresh tokens), a real headless
// Chromium that clicks through its sign-in page, and the real Secret Service.
// Run it inside .ci/desktop-session: go test -tags e2e ./internal/e2e/
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const clientSecret = "e2e-client-secret-0123456789"

// lifetime is the access-token lifetime oidc-provider issues in this suite:
// short, as scripts meet them. With the default refresh_at of 0.8, a plain
// `tokentray token` hands the stored token out until 18 s into it (the
// refresh point at 24 s less the default margin of 6 s), and refreshes it
// after that.
const (
	lifetime  = 30 * time.Second
	plainKeep = 18 * time.Second
)

type harness struct {
	t       testing.TB
	bin     string
	dir     string
	env     []string
	port    int
	events  *eventLog
	browser string
	// state is XDG_STATE_HOME when the file store is used (useFileStore).
	state string
}

// useFileStore makes the harness a server: store = "file" in the config,
// the token files under its own XDG_STATE_HOME, and no session bus at all.
func (h *harness) useFileStore() {
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, append([]byte("store = \"file\"\n"), b...), 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.state = filepath.Join(h.dir, "state")
	var env []string
	for _, kv := range h.env {
		if !strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") {
			env = append(env, kv)
		}
	}
	h.env = append(env, "XDG_STATE_HOME="+h.state)
}

// storedTokens is the connection's token set as stored, read independently
// of tokentray: from the keyring with secret-tool, or from its file.
func (h *harness) storedTokens(name string) map[string]any {
	if h.state == "" {
		return keyringItem(h.t, name)
	}
	b, err := os.ReadFile(filepath.Join(h.state, "tokentray", name+".tokens"))
	if err != nil {
		h.t.Fatalf("the token file of %s: %v", name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("the token file of %s is not the token set JSON", name)
	}
	return m
}

// eventLog collects the OAuth server's JSON event lines.
type eventLog struct {
	mu    sync.Mutex
	lines []map[string]any
	syncs int
}

func (l *eventLog) count(event, grantType string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.lines {
		if e["event"] == event && (grantType == "" || e["grant_type"] == grantType) {
			n++
		}
	}
	return n
}

// startServe runs `tokentray serve` (a server's headless core, logging to
// serve.log) until the test ends, and returns its socket once it answers.
func (h *harness) startServe(t testing.TB) (sock string) {
	t.Helper()
	serve := exec.Command(h.bin, "serve")
	serve.Env = h.env
	logFile, _ := os.Create(filepath.Join(h.dir, "serve.log"))
	serve.Stdout, serve.Stderr = logFile, logFile
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = serve.Process.Kill(); _ = serve.Wait() })
	sock = filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "tokentray", "api.sock")
	waitServing(t, sock)
	return sock
}

// socketClient is an HTTP client of the local API on sock, as an agent's.
func socketClient(sock string) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// spreadCalls runs call(i) for i < n, each in a goroutine of its own
// started at start + spread·i/n, as callers that arrive over spread, and
// returns once every call has.
func spreadCalls(n int, start time.Time, spread time.Duration, call func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(spread * time.Duration(i) / time.Duration(n))))
			call(i)
		}()
	}
	wg.Wait()
}

// waitServing waits until a tokentray answers on sock: a socket file left
// by a tokentray of an earlier test is no answer.
func waitServing(t testing.TB, sock string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tokentray answers on %s", sock)
		}
	}
}

// detailed counts the events whose detail (oidc-provider's error_detail)
// contains text.
func (l *eventLog) detailed(event, text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.lines {
		if d, _ := e["detail"].(string); e["event"] == event && strings.Contains(d, text) {
			n++
		}
	}
	return n
}

func (l *eventLog) errors() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, e := range l.lines {
		if e["event"] == "grant.error" || e["event"] == "server_error" {
			out = append(out, e)
		}
	}
	return out
}

// sync returns once the event log holds the events of every request the
// server received before this call: the server answers its /__sync only when
// no other request is being handled, after writing the sync line.
func (h *harness) sync() {
	h.t.Helper()
	h.events.mu.Lock()
	h.events.syncs++
	id := fmt.Sprint(h.events.syncs)
	h.events.mu.Unlock()
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/__sync?id=%s", h.port, id))
	if err != nil {
		h.t.Fatalf("sync with the OAuth server: %v", err)
	}
	resp.Body.Close()
	for deadline := time.Now().Add(time.Minute); h.events.count("sync", "") < h.events.syncs; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatal("the OAuth server's sync line did not arrive")
		}
	}
}

// obtained is when tokentray received the access token stored for user.
func obtained(t testing.TB, user string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(keyringItem(t, user)["obtained_at"]))
	if err != nil {
		t.Fatalf("obtained_at of %s: %v", user, err)
	}
	return at
}

// kept reports whether a plain `tokentray token` must still hand out a token
// obtained at at without refreshing it: true until the refresh point less
// the default margin, with two seconds to spare for the call that is checked.
// On a machine so busy that a check falls after that, the test says so and
// checks the rest.
func kept(t testing.TB, at time.Time) bool {
	t.Helper()
	if time.Since(at) < plainKeep-2*time.Second {
		return true
	}
	t.Logf("%s after the token was obtained, a plain token call may refresh it: the no-refresh check is skipped", time.Since(at).Round(time.Millisecond))
	return false
}

// waitDue sleeps until a plain `tokentray token` must refresh the token
// obtained at at.
func waitDue(at time.Time) {
	time.Sleep(time.Until(at.Add(plainKeep + 500*time.Millisecond)))
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func setup(t testing.TB) *harness {
	if os.Getenv("TOKENTRAY_IN_SESSION") == "" {
		t.Fatal("run inside .ci/desktop-session: the e2e test needs the private D-Bus session and Secret Service")
	}
	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, bin: filepath.Join(dir, "tokentray"), port: freePort(t), events: &eventLog{}}

	buildTokentray(t, root, dir)

	binDir := installBrowser(t, root, dir, "")
	nodeDir := filepath.Join(root, "internal", "e2e", "node")
	h.browser = filepath.Join(dir, "browser.log")
	shots := os.Getenv("E2E_SCREENSHOTS")
	h.env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "E2E_BROWSER_LOG="+h.browser, "E2E_SCREENSHOTS="+shots)

	redirect := startProvider(t, nodeDir, h.port, h.events)

	// Tests share the session's keyring: start each from nothing stored.
	for _, item := range []string{"e2e", "e2e/client-secret"} {
		_ = exec.Command("secret-tool", "clear", "service", "tokentray", "username", item).Run()
	}

	cfgDir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray")
	_ = os.MkdirAll(cfgDir, 0o700)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.toml"), []byte(e2eConfig("", h.port, redirect)), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// startProvider runs oidc-provider on port with lifetime's access tokens,
// its events going to events, until the test ends, and returns the
// redirect URI it registered (localhost, a free port).
func startProvider(t testing.TB, nodeDir string, port int, events *eventLog) (redirect string) {
	t.Helper()
	redirect = fmt.Sprintf("http://localhost:%d/callback", freePort(t))
	srv := exec.Command("node", filepath.Join(nodeDir, "oauth-server.mjs"), fmt.Sprint(port), redirect, fmt.Sprint(lifetime.Seconds()))
	stdout, _ := srv.StdoutPipe()
	srv.Stderr = nil
	if err := srv.Start(); err != nil {
		t.Fatalf("start oidc-provider: %v", err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			events.mu.Lock()
			events.lines = append(events.lines, e)
			events.mu.Unlock()
			if e["event"] == "listening" {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("oidc-provider did not start")
	}
	return redirect
}

// e2eConfig is the config of connection "e2e" at the oidc-provider on
// port, after the lines of top (a store).
func e2eConfig(top string, port int, redirect string) string {
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return fmt.Sprintf(`# written by the e2e test
%s
[[connection]]
name = "e2e"
provider = "generic"
client_id = "tokentray-e2e"
redirect_uri = %q
scopes = ["openid", "offline_access", "api"]
# oidc-provider registers this client with the secret in the form body.
token_endpoint_auth_method = "client_secret_post"
auth_url = "%s/auth"
token_url = "%s/token"
revoke_url = "%s/token/revocation"
issuer = "%s"
`, top, redirect, base, base, base, base)
}

type result struct {
	code           int
	stdout, stderr string
}

func (h *harness) run(stdin string, args ...string) result {
	h.t.Helper()
	r := h.runQuiet(stdin, args...)
	if r.code == -1 {
		h.t.Fatalf("run %v: %s", args, r.stderr)
	}
	h.t.Logf("$ tokentray %s → exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	return r
}

// runQuiet is run without logging: for the many-process tests.
func (h *harness) runQuiet(stdin string, args ...string) result {
	return runProgram(h.bin, h.env, stdin, args...)
}

// runProgram runs bin with env, stdin and args; its code is -1 (the error
// in stderr) when it did not run.
func runProgram(bin string, env []string, stdin string, args ...string) result {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return result{code, out.String(), errb.String()}
}

func (h *harness) must(stdin string, args ...string) result {
	h.t.Helper()
	r := h.run(stdin, args...)
	if r.code != 0 {
		h.t.Fatalf("tokentray %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r
}

// buildTokentray builds tokentray into dir as it is installed: tokentray
// and tokentray-core (the CLI and the resident process) without cgo, as
// they link no GUI toolkit, and the window process beside them.
func buildTokentray(t testing.TB, root, dir string) {
	t.Helper()
	cli := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/tokentray", "./cmd/tokentray-core")
	cli.Env = append(os.Environ(), "CGO_ENABLED=0")
	win := exec.Command("go", "build", "-o", filepath.Join(dir, "tokentray-window"), "./cmd/tokentray-window")
	for _, build := range []*exec.Cmd{cli, win} {
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", build.Args, err, out)
		}
	}
}

// installBrowser puts the person at the browser on PATH as xdg-open, in
// dir/bin: headless Chromium driven by browser.mjs. before is shell run
// first. Every browser started is waited for when the test ends: a sign-in
// returns as soon as tokentray has served its callback page, while the
// browser still writes its log and closes, and a browser that outlives the
// test writes into a directory being removed.
func installBrowser(t testing.TB, root, dir, before string) (binDir string) {
	binDir = filepath.Join(dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pids := filepath.Join(dir, "browsers.pid")
	script := fmt.Sprintf("#!/bin/sh\n%secho $$ >> %q\nexec node %q \"$1\"\n",
		before, pids, filepath.Join(root, "internal", "e2e", "node", "browser.mjs"))
	if err := os.WriteFile(filepath.Join(binDir, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, _ := os.ReadFile(pids)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				waitGone(t, pid)
			}
		}
	})
	return binDir
}

// waitGone waits for process pid to exit: a generous while for a browser to
// finish on its own, then SIGTERM (Playwright closes Chromium on it), then
// SIGKILL.
func waitGone(t testing.TB, pid int) {
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{0, 60 * time.Second}, {syscall.SIGTERM, 10 * time.Second}, {syscall.SIGKILL, 5 * time.Second}} {
		if step.sig != 0 {
			t.Logf("browser %d still runs at the end of the test: sending %v", pid, step.sig)
			_ = syscall.Kill(pid, step.sig)
		}
		for deadline := time.Now().Add(step.wait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if !running(pid) {
				return
			}
		}
	}
}

// running reports whether pid is a live process (a zombie has exited).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// waitBrowser waits for the browser script to log line: tokentray returns as
// soon as it has served the callback page, a moment before the browser logs it.
func (h *harness) waitBrowser(line string) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		log, _ := os.ReadFile(h.browser)
		if strings.Contains(string(log), line) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the browser did not log %q:\n%s", line, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keyringItem reads an item with secret-tool, independently of tokentray.
func keyringItem(t testing.TB, user string) map[string]any {
	out, err := exec.Command("secret-tool", "lookup", "service", "tokentray", "username", user).Output()
	if err != nil {
		t.Fatalf("secret-tool lookup %s: %v", user, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("keyring item %s is not the token set JSON", user)
	}
	return m
}

func TestSignInRefreshRotateRestart(t *testing.T) {
	h := setup(t)
	seen := []string{clientSecret} // every secret value, to look for leaks at the end
	var stderrs []string

	h.must(clientSecret+"\n", "secret", "e2e")
	if out, _ := exec.Command("secret-tool", "lookup", "service", "tokentray", "username", "e2e/client-secret").Output(); string(out) != clientSecret {
		t.Fatalf("client secret in the keyring = %q", out)
	}

	if r := h.run("", "token", "e2e"); r.code != 3 || !strings.Contains(r.stderr, "tokentray login e2e") {
		t.Fatalf("token before sign-in: exit %d %q, want 3 and a hint", r.code, r.stderr)
	}

	r := h.must("", "login", "e2e", "--timeout", "90s")
	stderrs = append(stderrs, r.stderr)
	h.waitBrowser("callback page: signed-in")
	if n := h.events.count("grant.success", "authorization_code"); n != 1 {
		t.Fatalf("code exchanges = %d", n)
	}
	item := keyringItem(t, "e2e")
	rt0 := item["refresh_token"].(string)
	seen = append(seen, rt0, item["access_token"].(string))

	// A script's plain calls get the stored token while it is fresh.
	signedIn := obtained(t, "e2e")
	tok := h.must("", "token", "e2e")
	at := strings.TrimSpace(tok.stdout)
	var js struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(h.must("", "token", "e2e", "--json").stdout), &js); err != nil || js.ExpiresIn <= 0 || js.ExpiresIn > int64(lifetime.Seconds()) {
		t.Fatalf("token --json: expires_in %d, %v", js.ExpiresIn, err)
	}
	if h.sync(); kept(t, signedIn) {
		if at == "" || strings.Count(tok.stdout, "\n") != 1 || at != item["access_token"] || js.AccessToken != at {
			t.Fatalf("token printed %q; want exactly the stored access token and a newline, twice", tok.stdout)
		}
		if h.events.count("grant.success", "refresh_token") != 0 {
			t.Fatal("a fresh token was refreshed")
		}
	}
	base := h.events.count("grant.success", "refresh_token")

	rts := []string{rt0}
	for i := 1; i <= 2; i++ {
		stderrs = append(stderrs, h.must("", "refresh", "e2e").stderr)
		item := keyringItem(t, "e2e")
		rt := item["refresh_token"].(string)
		for _, old := range rts {
			if rt == old {
				t.Fatalf("refresh %d: the refresh token did not rotate", i)
			}
		}
		rts = append(rts, rt)
		seen = append(seen, rt, item["access_token"].(string))
	}
	if h.sync(); h.events.count("grant.success", "refresh_token") != base+2 {
		t.Fatalf("server saw %d refreshes, want 2", h.events.count("grant.success", "refresh_token")-base)
	}
	if errs := h.events.errors(); len(errs) > 0 {
		t.Fatalf("server errors: %v", errs)
	}

	// A new process (a restart) finds the tokens and does not refresh.
	refreshed := obtained(t, "e2e")
	stored := keyringItem(t, "e2e")["access_token"]
	after := h.must("", "token", "e2e")
	if h.sync(); kept(t, refreshed) {
		if strings.TrimSpace(after.stdout) != stored {
			t.Fatal("after a restart, token did not print the stored access token")
		}
		if n := h.events.count("grant.success", "refresh_token"); n != base+2 {
			t.Fatalf("a restart refreshed: %d refreshes", n-base)
		}
	}
	st := h.must("", "status", "--json")
	var all []map[string]any
	if err := json.Unmarshal([]byte(st.stdout), &all); err != nil || len(all) != 1 || all[0]["state"] != "connected" {
		t.Fatalf("status --json: %s", st.stdout)
	}

	// An old, rotated refresh token is dead at the real server: reuse is
	// refused (and oidc-provider revokes the grant, as RFC 9700 advises).
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rts[0]}, "client_id": {"tokentray-e2e"}, "client_secret": {clientSecret}}
	resp, err := http.PostForm(fmt.Sprintf("http://127.0.0.1:%d/token", h.port), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("reusing a rotated refresh token: HTTP %d, want 400", resp.StatusCode)
	}
	// tokentray now meets a revoked grant: a permanent error, exit 3, a hint.
	rr := h.run("", "refresh", "e2e")
	if rr.code != 3 || !strings.Contains(rr.stderr, "invalid_grant") || !strings.Contains(rr.stderr, "tokentray login e2e") {
		t.Fatalf("refresh after the grant was revoked: exit %d %q", rr.code, rr.stderr)
	}
	if st := h.must("", "status"); !strings.Contains(st.stdout, "needs_reauth") {
		t.Fatalf("status after revocation:\n%s", st.stdout)
	}

	// Sign in again, then sign out: revoked at the server and forgotten here.
	stderrs = append(stderrs, h.must("", "login", "e2e", "--timeout", "90s").stderr)
	seen = append(seen, keyringItem(t, "e2e")["refresh_token"].(string))
	h.must("", "logout", "e2e")
	if h.events.count("grant.revoked", "") < 1 {
		t.Fatal("logout did not revoke at the server")
	}
	if r := h.run("", "token", "e2e"); r.code != 3 {
		t.Fatalf("token after logout: exit %d", r.code)
	}

	// No token or client secret in any output or any plain file under HOME (the
	// keyring's own encrypted file is the one place they live).
	home := os.Getenv("HOME")
	for _, v := range seen {
		for _, s := range stderrs {
			if strings.Contains(s, v) {
				t.Fatal("a token appeared on stderr")
			}
		}
		_ = filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("a token value is in the plain file %s", p)
			}
			return nil
		})
	}
	cfg, _ := os.ReadFile(filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml"))
	if bytes.Contains(cfg, []byte(clientSecret)) {
		t.Fatal("the client secret is in the config file")
	}
}

// TestConcurrentProcessesRefreshOnce starts 20 `tokentray token` processes at
// once, each needing a fresh token, with no tray running: the file lock and
// the re-read of the keyring must make the real server see one refresh.
func TestConcurrentProcessesRefreshOnce(t *testing.T) {
	h := setup(t)
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	// The plain call scripts make, at once, once the token is due: the
	// refreshed token then stays good for 18 s, far longer than the burst.
	waitDue(obtained(t, "e2e"))
	const n = 20
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.run("", "token", "e2e")
		}()
	}
	wg.Wait()
	h.sync()
	first := ""
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("process %d: exit %d: %s", i, r.code, r.stderr)
		}
		if first == "" {
			first = r.stdout
		}
		if r.stdout != first {
			t.Fatalf("processes got different tokens")
		}
	}
	if got := h.events.count("grant.success", "refresh_token"); got != 1 {
		t.Fatalf("%d concurrent processes caused %d refreshes at the server, want exactly 1", n, got)
	}
	if errs := h.events.errors(); len(errs) > 0 {
		t.Fatalf("server errors: %v", errs)
	}
}

func TestBadRedirectAndPortInUse(t *testing.T) {
	h := setup(t)
	h.must(clientSecret+"\n", "secret", "e2e")
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	b, _ := os.ReadFile(cfgPath)
	var redirect string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "redirect_uri") {
			redirect = strings.Trim(strings.TrimSpace(strings.SplitN(line, "=", 2)[1]), `"`)
		}
	}
	u, _ := url.Parse(redirect)
	l, err := net.Listen("tcp", "127.0.0.1:"+u.Port())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := h.run("", "login", "e2e", "--no-browser", "--timeout", "5s")
	if r.code == 0 || !strings.Contains(r.stderr, "port "+u.Port()+" is already in use") {
		t.Fatalf("login with the port taken: exit %d %q", r.code, r.stderr)
	}
	bad := strings.Replace(string(b), "http://localhost", "http://192.168.8.124", 1)
	_ = os.WriteFile(cfgPath, []byte(bad), 0o600)
	// The table's problem is its own: status lists it with the reason,
	// and asking for its token is refused with it (exit 2).
	r = h.run("", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "invalid_config") || !strings.Contains(r.stdout, "refuse LAN IPs") {
		t.Fatalf("LAN redirect, status: exit %d %q", r.code, r.stdout)
	}
	r = h.run("", "token", "e2e")
	if r.code != 2 || !strings.Contains(r.stderr, "refuse LAN IPs") {
		t.Fatalf("LAN redirect, token: exit %d %q", r.code, r.stderr)
	}
}

// oidc-provider sends RFC 9207's iss on every authorization response: with
// the right issuer configured the sign-ins of the other tests pass; with
// another one, the answer is refused and its code never exchanged.
func TestAnswerFromAnotherIssuerIsRefused(t *testing.T) {
	h := setup(t)
	h.must(clientSecret+"\n", "secret", "e2e")
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	b, _ := os.ReadFile(cfgPath)
	base := fmt.Sprintf("http://127.0.0.1:%d", h.port)
	wrong := strings.Replace(string(b), fmt.Sprintf("issuer = %q", base), fmt.Sprintf("issuer = %q", base+"/tenant-b"), 1)
	if wrong == string(b) {
		t.Fatal("the config has no issuer line to change")
	}
	_ = os.WriteFile(cfgPath, []byte(wrong), 0o600)
	r := h.run("", "login", "e2e", "--timeout", "90s")
	if r.code == 0 || !strings.Contains(r.stderr, "another issuer") || !strings.Contains(r.stderr, base+"/tenant-b") {
		t.Fatalf("login with the wrong issuer: exit %d\n%s", r.code, r.stderr)
	}
	h.waitBrowser("Sign-in refused")
	if r := h.run("", "token", "e2e"); r.code != 3 {
		t.Fatalf("after a refused answer a token was stored: exit %d", r.code)
	}
}

// The binary scripts run links no GUI toolkit library and, in the locale
// of cron, systemd and SSH sessions, prints nothing of one.
func TestTheCommandLineLinksNoToolkitAndSaysNothingOfOne(t *testing.T) {
	h := setup(t)
	out, _ := exec.Command("ldd", h.bin).CombinedOutput() // "not a dynamic executable" exits 1
	for _, lib := range []string{"libGL", "libX11", "libglfw", "libxcb"} {
		if strings.Contains(string(out), lib) {
			t.Fatalf("tokentray links %s:\n%s", lib, out)
		}
	}
	if win, _ := exec.Command("ldd", h.bin+"-window").CombinedOutput(); !strings.Contains(string(win), "libGL") {
		t.Fatalf("the window process should be the one that links the toolkit:\n%s", win)
	}
	env := append(h.env, "LANG=C.UTF-8", "LC_ALL=C.UTF-8")
	for _, args := range [][]string{{"status"}, {"token", "e2e"}, {"--help"}} {
		cmd := exec.Command(h.bin, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		_ = cmd.Run()
		if strings.Contains(stderr.String(), "Fyne") || strings.Contains(strings.ToLower(stderr.String()), "locale") {
			t.Fatalf("tokentray %v printed toolkit text:\n%s", args, stderr.String())
		}
	}
}
