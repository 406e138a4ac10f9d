//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/tstest/dbustest"
)

// startXvfb starts a virtual X display and returns its DISPLAY value. Xvfb
// picks a free display number itself (-displayfd) and reports it.
//
// -noreset: by default an X server resets when its last client leaves, and
// a client that connects during the reset fails ("Failed to open display").
// The tests' xwininfo polls come and go as the only clients, so the window
// process, starting meanwhile, lost that race now and then (twice in CI). A
// desktop's X server always has its window manager as a client: it does not
// reset under a session either.
func startXvfb(t testing.TB) string {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{w}
	// What it says goes to a file, told when the test fails: a display
	// that went away mid-test must say why.
	logPath := filepath.Join(t.TempDir(), "xvfb.log")
	logFile, _ := os.Create(logPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Xvfb: %v", err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-exited:
			t.Errorf("Xvfb ended before the test did (%v)", err)
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM) // lets it remove its lock file
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("Xvfb output:\n%s", out)
		}
	})
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	select {
	case n := <-got:
		if n == "" {
			t.Fatal("Xvfb did not report a display")
		}
		return ":" + n
	case <-time.After(20 * time.Second):
		t.Fatal("Xvfb did not come up")
	}
	return ""
}

type colour string

func iconColour(t *testing.T, it dbustest.Item) colour {
	r, g, _, err := dbustest.TrayIcon(it)
	if err != nil {
		t.Logf("read the icon: %v", err)
		return "unknown"
	}
	switch {
	case r > g+40:
		return "red"
	case g > r+40:
		return "green"
	}
	return "grey"
}

func waitColour(t *testing.T, it dbustest.Item, want colour) {
	t.Helper()
	waitColourOr(t, it, want, func() string { return "" })
}

// waitColourOr is waitColour that, when the colour does not come, says
// what explain says (the running tokentray's view of its connections).
func waitColourOr(t *testing.T, it dbustest.Item, want colour, explain func() string) {
	t.Helper()
	// A minute: on a busy machine the tray's first look at the keyring
	// (and at the issuer's metadata) can take a while.
	deadline := time.Now().Add(time.Minute)
	for {
		got := iconColour(t, it)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tray icon is %s, want %s at %s; %s", got, want, time.Now().Format(time.RFC3339Nano), explain())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statusText is `tokentray status --json` as the tray answers it, for a
// failure's message.
func (h *harness) statusText() string {
	r := h.runQuiet("", "status", "--json")
	return fmt.Sprintf("status (exit %d): %s %s", r.code, r.stdout, r.stderr)
}

func findMenu(t *testing.T, it dbustest.Item, prefix string) dbustest.MenuItem {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		items, err := dbustest.Menu(it)
		if err == nil {
			for _, m := range items {
				if strings.HasPrefix(m.Label, prefix) {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no menu item starting %q in %+v (%v)", prefix, items, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func click(t *testing.T, it dbustest.Item, parent dbustest.MenuItem, label string) {
	t.Helper()
	for _, c := range parent.Children {
		if c.Label == label {
			if err := dbustest.Click(it, c.ID); err != nil {
				t.Fatalf("click %q: %v", label, err)
			}
			return
		}
	}
	t.Fatalf("no %q under %q", label, parent.Label)
}

func (h *harness) browserCount(line string) int {
	log, _ := os.ReadFile(h.browser)
	return strings.Count(string(log), line)
}

// TestTrayRedOnRevocationAndNotificationSignsIn runs the real tray under
// Xvfb with a StatusNotifierWatcher and a notification server on the
// private bus: green while signed in; red, with one notification carrying
// Re-authenticate, once the provider revokes the grant; green again after
// the notification's action signs in through the browser.
func TestTrayRedOnRevocationAndNotificationSignsIn(t *testing.T) {
	h := setup(t)
	notifier, err := dbustest.StartNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer notifier.Close()
	display := startXvfb(t)

	// An admin's alert hook: every alert appended as a JSON line.
	alertLog := filepath.Join(h.dir, "alerts.jsonl")
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	cfg, _ := os.ReadFile(cfgPath)
	// The API for the agents' calls through the proxy: oidc-provider's
	// userinfo endpoint, /me.
	_ = os.WriteFile(cfgPath, append(cfg, []byte(fmt.Sprintf("on_alert = \"cat >> %s\"\napi_base = \"http://127.0.0.1:%d\"\n", alertLog, h.port))...), 0o600)

	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	oldRT := keyringItem(t, "e2e")["refresh_token"].(string)
	h.must("", "refresh", "e2e") // rotate, so that oldRT is a used one

	tray, item := h.startTray(t, display)
	waitColour(t, item, "green")

	// The tray serves the local API; the CLI and curl ask it.
	sock := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "tokentray", "api.sock")
	if info, err := os.Stat(sock); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v %v", sock, info, err)
	}
	curl, err := exec.Command("curl", "-sS", "--unix-socket", sock, "http://tokentray/v1/connections").Output()
	if err != nil || !strings.Contains(string(curl), `"state": "connected"`) {
		t.Fatalf("curl --unix-socket: %v\n%s", err, curl)
	}
	// An agent calls the API through the tray, with no token of its own.
	if out := proxied(t, sock, "me?n=0", ""); !strings.Contains(out, `"sub"`) {
		t.Fatalf("the API through the proxy: %s", out)
	}
	// A script's plain call through the tray: the stored token while it is
	// fresh, a new one, refreshed once, when it is due.
	got, stored := obtained(t, "e2e"), keyringItem(t, "e2e")["access_token"]
	tok := h.must("", "token", "e2e")
	if h.sync(); kept(t, got) && strings.TrimSpace(tok.stdout) != stored {
		t.Fatal("token through the tray is not the stored access token")
	}
	waitDue(obtained(t, "e2e"))
	due, refreshesBefore := time.Now(), h.events.count("grant.success", "refresh_token")
	again := h.must("", "token", "e2e")
	if h.sync(); strings.TrimSpace(again.stdout) == "" || strings.TrimSpace(again.stdout) == stored {
		t.Fatal("a due token was handed out again")
	}
	if got := h.events.count("grant.success", "refresh_token"); kept(t, due) && got != refreshesBefore+1 {
		t.Fatalf("a token the tray had to refresh first: %d refreshes at the server, want exactly 1", got-refreshesBefore)
	}
	second := exec.Command(h.bin)
	second.Env = tray.Env
	if out, err := second.CombinedOutput(); err != nil || !strings.Contains(string(out), "already running") {
		t.Fatalf("a second tokentray: %v %s", err, out)
	}

	line := findMenu(t, item, "e2e — ")
	if !strings.HasSuffix(line.Label, " left") {
		t.Fatalf("menu line %q should say the time left", line.Label)
	}
	open := findMenu(t, item, "Open dashboard")
	_ = dbustest.Click(item, open.ID)
	screenshotWindow(t, display, "tokentray", "tray-dashboard-green.png")

	// The provider revokes the grant: reusing a rotated refresh token makes
	// oidc-provider revoke the whole grant (RFC 9700 reuse detection).
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {oldRT}, "client_id": {"tokentray-e2e"}, "client_secret": {clientSecret}}
	resp, err := http.PostForm(fmt.Sprintf("http://127.0.0.1:%d/token", h.port), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	click(t, item, line, "Refresh now")
	waitColour(t, item, "red")
	n, err := notifier.Next(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n.Summary != "e2e: sign-in needed" || n.Actions["act"] != "Re-authenticate" || n.Urgency != 2 {
		t.Fatalf("notification %+v", n)
	}
	waitAlerts(t, alertLog, `"kind":"needs_reauth"`)
	if line := findMenu(t, item, "e2e — "); line.Label != "e2e — sign-in needed" {
		t.Fatalf("menu line %q", line.Label)
	}
	screenshotWindow(t, display, "tokentray", "tray-dashboard-red.png")

	// Agents' calls now wait for the sign-in, in line, as they said they may.
	if out := proxied(t, sock, "me?n=refused", ""); !strings.Contains(out, "needs_sign_in") {
		t.Fatalf("a call that may not wait: %s", out)
	}
	waiting := make([]chan string, 3)
	for i := range waiting {
		waiting[i] = make(chan string, 1)
		go func() { waiting[i] <- proxied(t, sock, fmt.Sprintf("me?n=%d", i+1), "2m") }()
		for deadline := time.Now().Add(20 * time.Second); waitingRequests(t, sock) != i+1; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("call %d does not wait", i+1)
			}
		}
	}

	// One click on the notification's action signs in through the browser.
	before := h.browserCount("callback page: signed-in")
	if err := notifier.Invoke(n.ID, "act"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for h.browserCount("callback page: signed-in") == before {
		if time.Now().After(deadline) {
			t.Fatal("the Re-authenticate action did not complete a browser sign-in")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitColour(t, item, "green")
	token := keyringItem(t, "e2e")["access_token"].(string)
	for i, w := range waiting {
		if out := <-w; !strings.Contains(out, `"sub"`) || strings.Contains(out, token) {
			t.Fatalf("waiting call %d after the sign-in: %s", i+1, out)
		}
	}
	if got := h.apiCalls("n="); !strings.HasSuffix(strings.Join(got, ","), "n=1,n=2,n=3") {
		t.Fatalf("the API got the calls in the order %v, want the waiting ones last, as they came", got)
	}
	back, err := notifier.Next(20 * time.Second)
	if err != nil || back.Summary != "e2e is connected again" {
		t.Fatalf("recovery notification: %+v %v", back, err)
	}
	waitAlerts(t, alertLog, `"kind":"recovered"`)
	if b, _ := os.ReadFile(alertLog); strings.Count(string(b), "\n") != 2 {
		t.Fatalf("the alert hook ran %d times, want 2 (needs_reauth, recovered):\n%s", strings.Count(string(b), "\n"), b)
	}
	time.Sleep(500 * time.Millisecond)
	if sent := notifier.Sent(); len(sent) != 2 {
		t.Fatalf("%d notifications, want 2 (one per transition): %+v", len(sent), sent)
	}
	screenshotWindow(t, display, "tokentray", "tray-dashboard-green-again.png")

	// `tokentray login` while the tray runs signs in through the tray.
	before = h.browserCount("callback page: signed-in")
	if r := h.must("", "login", "e2e", "--timeout", "60s"); !strings.Contains(r.stderr, "through the running tokentray") {
		t.Fatalf("login did not go through the tray: %s", r.stderr)
	}
	for deadline := time.Now().Add(20 * time.Second); h.browserCount("callback page: signed-in") != before+1; {
		if time.Now().After(deadline) {
			t.Fatal("login through the tray did not complete a browser sign-in")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if tok := h.must("", "token", "e2e"); strings.TrimSpace(tok.stdout) == "" {
		t.Fatal("no token after re-authentication")
	}
}

// proxied is an agent's call of the API through the tray's socket (curl,
// as a script makes it), with a wait for a sign-in unless wait is "":
// the answer's body.
func proxied(t *testing.T, sock, path, wait string) string {
	args := []string{"-sS", "--unix-socket", sock, "http://tokentray/v1/connections/e2e/api/" + path}
	if wait != "" {
		args = append(args, "-H", "Tokentray-Wait: "+wait)
	}
	out, err := exec.Command("curl", args...).CombinedOutput()
	if err != nil {
		t.Errorf("curl %v: %v %s", args, err, out)
	}
	return string(out)
}

// waitingRequests is how many API calls wait for e2e's sign-in.
func waitingRequests(t *testing.T, sock string) int {
	out, err := exec.Command("curl", "-sS", "--unix-socket", sock, "http://tokentray/v1/connections/e2e").Output()
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Waiting int `json:"waiting_requests"`
	}
	_ = json.Unmarshal(out, &c)
	return c.Waiting
}

// apiCalls are the values of the query parameter starting with prefix
// ("n=") of the API calls oidc-provider got, in order.
func (h *harness) apiCalls(prefix string) []string {
	h.events.mu.Lock()
	defer h.events.mu.Unlock()
	var out []string
	for _, e := range h.events.lines {
		if u, _ := e["url"].(string); e["event"] == "api" && strings.Contains(u, prefix) {
			out = append(out, prefix+strings.SplitN(u[strings.Index(u, prefix)+len(prefix):], "&", 2)[0])
		}
	}
	return out
}

// waitAlerts waits until the alert hook's log has a line containing want.
func waitAlerts(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the alert hook did not record %s:\n%s", want, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signedInTray signs e2e in and runs the tray on a display of its own until
// the test ends; it returns once the icon is green.
func (h *harness) signedInTray(t *testing.T) (string, dbustest.Item) {
	t.Helper()
	display := startXvfb(t)
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	_, item := h.startTray(t, display)
	waitColour(t, item, "green")
	return display, item
}

// startTray runs the tokentray tray (`tokentray ARGS`) on display until the
// test ends (then SIGTERM, which must end it within 15 s) and returns it
// with its tray item.
func (h *harness) startTray(t testing.TB, display string, args ...string) (*exec.Cmd, dbustest.Item) {
	t.Helper()
	watcher, err := dbustest.StartWatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watcher.Close() })
	// --verbose: the keepers' state changes reach tray.log, which a failure
	// prints; the tray's own output is otherwise errors only.
	tray := exec.Command(h.bin, append([]string{"--verbose"}, args...)...)
	tray.Env = append(append([]string{}, h.env...), "DISPLAY="+display, "LANG=C.UTF-8", "LIBGL_ALWAYS_SOFTWARE=1")
	logPath := filepath.Join(h.dir, "tray.log")
	logFile, _ := os.Create(logPath)
	tray.Stdout, tray.Stderr = logFile, logFile
	if err := tray.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tray.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- tray.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = tray.Process.Kill()
			t.Error("the tray did not quit within 15 s of SIGTERM")
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("tray output:\n%s", out)
		}
	})
	item, err := watcher.WaitItem(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return tray, item
}

// windowCount is how many top-level windows titled title the display has.
// A window that goes while xwininfo walks the tree makes it fail (an X
// BadWindow error): it is asked again.
func windowCount(t *testing.T, display, title string) int {
	var err error
	for range 20 {
		cmd := exec.Command("xwininfo", "-root", "-tree")
		cmd.Env = append(os.Environ(), "DISPLAY="+display)
		var out []byte
		if out, err = cmd.Output(); err == nil {
			return strings.Count(string(out), `"`+title+`": (`) // a line: id "name": ("instance" "class")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("xwininfo: %v", err)
	return 0
}

// windowProcesses are the pids of the window processes beside the binary
// bin (tokentray-window).
func windowProcesses(t *testing.T, bin string) []int {
	out, _ := exec.Command("pgrep", "-f", "^"+bin+"-window").Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestTheWindowProcessComesAndGoesWithoutTouchingTheTokens opens the
// dashboard twice (one window), kills its process with SIGKILL (the tray
// stays green and keeps serving tokens), and opens it again.
func TestTheWindowProcessComesAndGoesWithoutTouchingTheTokens(t *testing.T) {
	h := setup(t)
	display, item := h.signedInTray(t)
	if n := len(windowProcesses(t, h.bin)); n != 0 {
		t.Fatalf("%d window processes before any window was asked for", n)
	}

	open := findMenu(t, item, "Open dashboard")
	for range 2 {
		if err := dbustest.Click(item, open.ID); err != nil {
			t.Fatal(err)
		}
	}
	screenshotWindow(t, display, "tokentray", "dashboard-opened-twice.png")
	waitFor(t, "the dashboard", func() bool { return windowCount(t, display, "tokentray") >= 1 })
	h.must("", "token", "e2e") // a moment for a second window to appear, if one would
	if n, procs := windowCount(t, display, "tokentray"), windowProcesses(t, h.bin); n != 1 || len(procs) != 1 {
		t.Fatalf("asked twice: %d dashboard windows in %d window processes, want 1 in 1", n, len(procs))
	}

	pid := windowProcesses(t, h.bin)[0]
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dashboard to go with its process", func() bool { return windowCount(t, display, "tokentray") == 0 })
	if tok := h.must("", "token", "e2e"); strings.TrimSpace(tok.stdout) == "" {
		t.Fatal("no token after the window process was killed")
	}
	if c := iconColour(t, item); c != "green" {
		t.Fatalf("the tray is %s after the window process was killed", c)
	}

	if err := dbustest.Click(item, open.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dashboard to open again", func() bool { return windowCount(t, display, "tokentray") == 1 })
}

// waitFor waits up to a minute for ok.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
