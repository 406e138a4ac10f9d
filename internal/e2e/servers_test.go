//go:build e2e && linux

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/tstest/dbustest"
	"github.com/tokentray/tokentray/internal/tstest/sshtest"
)

// serverAccount is the second local user the story's server runs as.
const serverAccount = "tt-agent"

// server is `tokentray serve` in a second local account: its own HOME, no
// session bus, the file store, reached by the desktop over the real sshd.
type server struct {
	t    *testing.T
	sshd *sshtest.Server
	home string
	bin  string // a directory the account may run programs from
}

// as runs the server's tokentray as its account, as an agent there would.
func (s *server) as(args ...string) *exec.Cmd {
	uid, gid := s.sshd.IDs()
	cmd := exec.Command(filepath.Join(s.bin, "tokentray"), args...)
	cmd.Env = []string{"HOME=" + s.home, "LANG=C.UTF-8", "PATH=/usr/bin:/bin"}
	cmd.Dir = s.home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return cmd
}

// tokens is the server's stored token set, read from its file.
func (s *server) tokens() map[string]any {
	b, err := os.ReadFile(filepath.Join(s.home, ".local", "state", "tokentray", "agent.tokens"))
	if err != nil {
		s.t.Fatalf("the server's token file: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Fatal("the server's token file is not the token set JSON")
	}
	return m
}

// startServer makes the server account, gives it the harness's connection
// (named agent) with the file store and its client secret, and runs
// `tokentray serve` there until the test ends.
func startServer(t *testing.T, h *harness) *server {
	sshd := sshtest.Start(t, serverAccount)
	s := &server{t: t, sshd: sshd, home: sshd.User.HomeDir}
	uid, gid := sshd.IDs()
	for _, d := range []string{".config/tokentray", ".local/state/tokentray"} {
		_ = os.RemoveAll(filepath.Join(s.home, d))
	}
	_ = os.RemoveAll(filepath.Join(os.TempDir(), "tokentray-"+strconv.Itoa(uid))) // its socket's directory
	bin, err := os.MkdirTemp("", "tt-server-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	_ = os.Chmod(bin, 0o755)
	for _, prog := range []string{"tokentray", "tokentray-core"} {
		copyFile(t, filepath.Join(h.dir, prog), filepath.Join(bin, prog), 0o755)
	}
	s.bin = bin
	desk, err := os.ReadFile(filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := "store = \"file\"\n" + strings.Replace(string(desk), `name = "e2e"`, `name = "agent"`, 1)
	sshtest.WriteAs(t, filepath.Join(s.home, ".config", "tokentray", "config.toml"), uid, gid, cfg)
	secret := s.as("secret", "agent")
	secret.Stdin = strings.NewReader(clientSecret + "\n")
	if out, err := secret.CombinedOutput(); err != nil {
		t.Fatalf("secret on the server: %v\n%s", err, out)
	}
	logPath := filepath.Join(h.dir, "serve.log")
	logFile, _ := os.Create(logPath)
	serve := s.as("serve")
	serve.Stdout, serve.Stderr = logFile, logFile
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("tokentray serve on the server:\n%s\nsshd:\n%s", out, sshd.Log())
		}
	})
	// Up once its socket answers (status then reports through it).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sock := filepath.Join(os.TempDir(), "tokentray-"+strconv.Itoa(uid), "api.sock")
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			st, _ := s.as("status").CombinedOutput()
			t.Fatalf("tokentray serve on the server did not come up (no %s): %s", sock, st)
		}
	}
	return s
}

func copyFile(t *testing.T, from, to string, mode fs.FileMode) {
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitMenu waits until the menu has a line starting with prefix for which
// ok holds, and returns it.
func waitMenu(t *testing.T, it dbustest.Item, prefix string, within time.Duration, ok func(label string) bool) dbustest.MenuItem {
	t.Helper()
	deadline := time.Now().Add(within)
	var last []dbustest.MenuItem
	for {
		items, err := dbustest.Menu(it)
		if err == nil {
			last = items
			for _, m := range items {
				if strings.HasPrefix(m.Label, prefix) && ok(m.Label) {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			var labels []string
			for _, m := range last {
				labels = append(labels, m.Label)
			}
			t.Fatalf("no menu line %q as wanted within %s; the menu: %q", prefix, within, labels)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRefreshes waits until the provider has granted n more refreshes.
func (h *harness) waitRefreshes(t *testing.T, n int, within time.Duration, what string) {
	t.Helper()
	base := h.events.count("grant.success", "refresh_token")
	for deadline := time.Now().Add(within); h.events.count("grant.success", "refresh_token") < base+n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no refresh at the provider within %s", what, within)
		}
	}
}

// The servers story (#12): an agent's connection lives on a server (a
// second account, reached with the real sshd, `tokentray serve`, the file
// store); the desktop's tray follows it over ssh. It signs in through the
// desktop's browser (headless Chromium) from the tray's menu; the server
// refreshes on its own; the grant is revoked at the provider → the
// desktop's icon turns red and one notification comes, whose action signs
// in through the desktop's browser again → green, and the agent there gets
// a working token; the ssh connection is cut → the tray shows the server
// unreachable (grey, not red) while the server keeps refreshing; sshd comes
// back → the tray follows it again by itself. No token value is ever on
// the desktop: not in its files, not in its logs.
func TestAServersConnectionIsKeptAliveFromTheDesktopTray(t *testing.T) {
	sshtest.Skip(t)
	h := setup(t)
	notifier, err := dbustest.StartNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer notifier.Close()
	display := startXvfb(t)
	srv := startServer(t, h)

	// The desktop follows the server; it keeps no connection of its own.
	opts, _ := json.Marshal(srv.sshd.Options())
	deskCfg := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	if err := os.WriteFile(deskCfg, []byte(fmt.Sprintf("[[remote]]\nname = \"moby\"\nssh = %q\nssh_options = %s\ncommand = %q\n",
		srv.sshd.Destination(), opts, filepath.Join(srv.bin, "tokentray"))), 0o600); err != nil {
		t.Fatal(err)
	}
	_, item := h.startTray(t, display)
	line := waitMenu(t, item, "agent@moby — ", 60*time.Second, func(l string) bool { return strings.HasSuffix(l, "not signed in") })

	// Signed in from the menu, with this desktop's browser.
	signIns := h.browserCount("callback page: signed-in")
	click(t, item, line, "Re-authenticate")
	for deadline := time.Now().Add(90 * time.Second); h.browserCount("callback page: signed-in") == signIns; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Re-authenticate on agent@moby did not complete a sign-in in the desktop's browser")
		}
	}
	waitColour(t, item, "green")
	waitMenu(t, item, "agent@moby — ", 30*time.Second, func(l string) bool { return strings.HasSuffix(l, " left") })
	seen := []map[string]any{srv.tokens()}

	// The desktop's CLI sees it through the tray; its token stays there.
	if st := h.run("", "status"); st.code != 0 || !strings.Contains(st.stdout, "agent@moby") || !strings.Contains(st.stdout, "connected") {
		t.Fatalf("status on the desktop: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
	if tok := h.run("", "token", "agent@moby"); tok.code != 2 || tok.stdout != "" || !strings.Contains(tok.stderr, "kept by the tokentray on moby") {
		t.Fatalf("token agent@moby on the desktop: exit %d %q %q", tok.code, tok.stdout, tok.stderr)
	}
	_ = dbustest.Click(item, findMenu(t, item, "Open dashboard").ID)
	screenshotWindow(t, display, "tokentray", "servers-dashboard-green.png")
	drawTrayHost(t, item, "servers-tray-menu.png")

	// The server refreshes on its own (each refresh rotates the refresh token).
	h.waitRefreshes(t, 1, 2*lifetime, "the server's own refresh")
	usedRT := seen[0]["refresh_token"].(string)
	seen = append(seen, srv.tokens())

	// The grant is revoked at the provider: a used refresh token replayed
	// (reuse detection revokes the whole grant).
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {usedRT}, "client_id": {"tokentray-e2e"}, "client_secret": {clientSecret}}
	resp, err := http.PostForm(fmt.Sprintf("http://127.0.0.1:%d/token", h.port), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// The server's next refresh is refused → red, and one notification.
	n, err := notifier.Next(3 * lifetime)
	if err != nil {
		t.Fatalf("no notification after the grant was revoked: %v", err)
	}
	if n.Summary != "agent@moby: sign-in needed" || n.Actions["act"] != "Re-authenticate" || n.Urgency != 2 {
		t.Fatalf("notification %+v", n)
	}
	waitColour(t, item, "red")
	signIns = h.browserCount("callback page: signed-in")
	if err := notifier.Invoke(n.ID, "act"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(90 * time.Second); h.browserCount("callback page: signed-in") == signIns; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the notification's Re-authenticate did not complete a sign-in in the desktop's browser")
		}
	}
	waitColour(t, item, "green")
	back, err := notifier.Next(30 * time.Second)
	if err != nil || back.Summary != "agent@moby is connected again" {
		t.Fatalf("recovery notification: %+v %v", back, err)
	}
	seen = append(seen, srv.tokens())

	// The agent on the server gets a working token, from the server's keeper.
	out, err := srv.as("token", "agent").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("token for the agent on the server: %v %q", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != srv.tokens()["access_token"] {
		t.Fatal("the agent's token is not the server's current access token")
	}

	// The ssh connection is cut and sshd is gone: the server's rows turn
	// grey, "moby unreachable since …", while it keeps refreshing.
	srv.sshd.Stop()
	waitMenu(t, item, "agent@moby — ", 60*time.Second, func(l string) bool { return strings.Contains(l, "moby unreachable since ") })
	waitColour(t, item, "grey")
	screenshotWindow(t, display, "tokentray", "servers-dashboard-unreachable.png")
	drawTrayHost(t, item, "servers-tray-menu-unreachable.png")
	h.waitRefreshes(t, 1, 2*lifetime, "the server's refresh while the desktop cannot see it")
	seen = append(seen, srv.tokens())

	// sshd comes back: the tray follows the server again by itself.
	srv.sshd.Restart()
	waitMenu(t, item, "agent@moby — ", 90*time.Second, func(l string) bool { return strings.HasSuffix(l, " left") })
	waitColour(t, item, "green")
	seen = append(seen, srv.tokens())

	time.Sleep(500 * time.Millisecond)
	if sent := notifier.Sent(); len(sent) != 2 {
		t.Fatalf("%d notifications, want 2 (sign-in needed, connected again): %+v", len(sent), sent)
	}

	// No token value on the desktop: its config, state, runtime and home
	// directories, and the tray's log.
	var secrets []string
	for _, ts := range seen {
		for _, k := range []string{"access_token", "refresh_token"} {
			if v, _ := ts[k].(string); len(v) > 8 {
				secrets = append(secrets, v)
			}
		}
	}
	if len(secrets) < 6 {
		t.Fatalf("only %d token values to look for", len(secrets))
	}
	for _, root := range []string{os.Getenv("HOME"), os.Getenv("XDG_RUNTIME_DIR"), h.dir} {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.Contains(path, "/go-build") {
				return nil
			}
			if info, err := d.Info(); err != nil || !info.Mode().IsRegular() || info.Size() > 16<<20 {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for _, s := range secrets {
				if strings.Contains(string(b), s) {
					t.Errorf("a token value of the server is on the desktop, in %s", path)
				}
			}
			return nil
		})
	}
}
