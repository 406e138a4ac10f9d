//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wineHarness runs the Windows build's programs under Wine, in the prefix
// and the Wine session that .ci/test's Wine step made: TOKENTRAY_WINDOWS_BIN
// holds tokentray.exe and tokentray-core.exe, TOKENTRAY_WINEPREFIX is the
// prefix.
type wineHarness struct {
	t                 *testing.T
	bin, prefix, root string
	env               []string
	wine              string
	events            *eventLog
	port              int
}

// newWineHarness is the Windows programs' harness, with the test's
// Chromium as the browser (Wine hands a URL that a Windows program opens
// to xdg-open); dir is the test's directory, browserLog the browser's log.
// It skips the test outside .ci/test's Wine step.
func newWineHarness(t *testing.T) (w *wineHarness, dir, browserLog string) {
	bin, prefix := os.Getenv("TOKENTRAY_WINDOWS_BIN"), os.Getenv("TOKENTRAY_WINEPREFIX")
	if bin == "" || prefix == "" {
		t.Skip("TOKENTRAY_WINDOWS_BIN and TOKENTRAY_WINEPREFIX are set by .ci/test's Wine step, which runs this test")
	}
	wine, err := exec.LookPath("wine64")
	if err != nil {
		wine = "/usr/lib/wine/wine64"
	}
	root, _ := filepath.Abs("../..")
	dir = t.TempDir()
	w = &wineHarness{t: t, bin: bin, prefix: prefix, root: root, wine: wine, events: &eventLog{}, port: freePort(t)}
	binDir := installBrowser(t, root, dir, "")
	browserLog = filepath.Join(dir, "browser.log")
	var env []string
	for _, kv := range os.Environ() {
		// As on Windows: no XDG_RUNTIME_DIR, so the pipe has Windows' name.
		if !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	w.env = append(env, "PATH="+binDir+":"+os.Getenv("PATH"), "WINEPREFIX="+prefix, "WINEDEBUG=-all",
		"WINEDLLOVERRIDES=mscoree,mshtml=", "E2E_BROWSER_LOG="+browserLog, "E2E_SCREENSHOTS="+os.Getenv("E2E_SCREENSHOTS"), "LANG=C.UTF-8")
	return w, dir, browserLog
}

// run runs the Windows program prog (tokentray or tokentray-core) with
// args, as a script on Windows does: plain commands, no flags of ours.
func (w *wineHarness) run(prog string, args ...string) result {
	w.t.Helper()
	r := runProgram(w.wine, w.env, "", append([]string{filepath.Join(w.bin, prog+".exe")}, args...)...)
	w.t.Logf("$ %s %s → exit %d\n%s", prog, strings.Join(args, " "), r.code, strings.TrimSpace(r.stderr))
	return r
}

// writeConfig writes cfg where Windows keeps the config,
// %APPDATA%\tokentray\config.toml, until the test ends.
func (w *wineHarness) writeConfig(cfg string) {
	w.t.Helper()
	appdata := runProgram(w.wine, w.env, "", "cmd", "/c", "echo %APPDATA%")
	winPath := strings.TrimSpace(strings.ReplaceAll(appdata.stdout, "\r", ""))
	if !strings.HasPrefix(winPath, `C:\`) {
		w.t.Fatalf("%%APPDATA%% under Wine: %q (%s)", winPath, appdata.stderr)
	}
	cfgDir := filepath.Join(w.prefix, "drive_c", filepath.FromSlash(strings.ReplaceAll(winPath[3:], `\`, "/")), "tokentray")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "config.toml"), []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = os.RemoveAll(cfgDir) })
}

// token is `tokentray token NAME` through the named pipe: the token, or ""
// and the exit code.
func (w *wineHarness) token(name string) (string, int) {
	r := runProgram(w.wine, w.env, "", filepath.Join(w.bin, "tokentray.exe"), "token", name)
	return strings.TrimSpace(strings.ReplaceAll(r.stdout, "\r", "")), r.code
}

// rotations waits for `tokentray token NAME` to answer through the pipe,
// then for two refreshes by serve on its own (30 s tokens, refreshed at
// 24 s), each new token handed out through the pipe; it returns the
// tokens seen. log is serve's, told on a failure.
func (w *wineHarness) rotations(name, log string) map[string]bool {
	w.t.Helper()
	seen := map[string]bool{}
	for deadline := time.Now().Add(60 * time.Second); len(seen) == 0; time.Sleep(500 * time.Millisecond) {
		if tok, code := w.token(name); code == 0 && tok != "" {
			seen[tok] = true
		} else if time.Now().After(deadline) {
			b, _ := os.ReadFile(log)
			w.t.Fatalf("tokentray token %s never answered through the pipe; serve's log:\n%s", name, b)
		}
	}
	for deadline := time.Now().Add(3 * lifetime); len(seen) < 3; time.Sleep(2 * time.Second) {
		if tok, code := w.token(name); code == 0 {
			seen[tok] = true
		} else {
			w.t.Fatalf("tokentray token %s: exit %d while serve keeps it", name, code)
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log)
			w.t.Fatalf("%d tokens in %s, want 3 (two refreshes); serve's log:\n%s", len(seen), 3*lifetime, b)
		}
	}
	if n := w.events.count("grant.revoked", ""); n != 0 {
		w.t.Fatal("the provider revoked the grant: a refresh token was presented twice")
	}
	return seen
}

// serve starts `tokentray-core serve` under Wine, logging to log, and
// returns a function that stops it (Wine's process itself, as a service
// manager stops a service).
func (w *wineHarness) serve(log string, args ...string) (stop func()) {
	w.t.Helper()
	f, err := os.Create(log)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(w.wine, append(append([]string{filepath.Join(w.bin, "tokentray-core.exe")}, args...), "serve")...)
	cmd.Env, cmd.Stdout, cmd.Stderr = w.env, f, f
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		// Wine starts the program as a process of its own: end that one.
		_ = exec.Command("pkill", "-f", "tokentray-core.exe serve").Run()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = f.Close()
		for deadline := time.Now().Add(30 * time.Second); exec.Command("pgrep", "-f", "tokentray-core.exe serve").Run() == nil; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				w.t.Fatal("the Windows serve did not end")
			}
		}
	}
	w.t.Cleanup(stop)
	return stop
}

// The Windows build, end to end under Wine: the programs a person on
// Windows runs, with the keyring store (Wine's Credential Manager), against
// oidc-provider (30 s access tokens, single-use refresh tokens), signed in
// through the browser (Windows' opener hands the URL to xdg-open, which is
// the test's headless Chromium), then kept by `tokentray-core serve`:
// `tokentray token e2e` gets each new token over the named pipe, a restart
// of the program keeps the connection without a sign-in, and status and
// logout work as on Linux.
func TestTheWindowsBuildKeepsAConnectionUnderWine(t *testing.T) {
	w, dir, browserLog := newWineHarness(t)
	bin, prefix, wine, root := w.bin, w.prefix, w.wine, w.root
	redirect := startProvider(t, filepath.Join(root, "internal", "e2e", "node"), w.port, w.events)

	w.writeConfig(e2eConfig(`store = "keyring"`, w.port, redirect))
	// Nothing of an earlier run in the Credential Manager.
	w.run("tokentray", "logout", "e2e", "--local-only")

	// The client secret into the Credential Manager, then the sign-in in
	// the browser, with no tokentray running: the program does it itself.
	if r := runProgram(wine, w.env, clientSecret+"\n", filepath.Join(bin, "tokentray.exe"), "secret", "e2e"); r.code != 0 {
		t.Fatalf("secret: exit %d: %s", r.code, r.stderr)
	}
	if r := w.run("tokentray", "login", "e2e", "--timeout", "90s"); r.code != 0 {
		log, _ := os.ReadFile(browserLog)
		t.Fatalf("login: exit %d; the browser's log:\n%s", r.code, log)
	}
	if n := w.events.count("grant.success", "authorization_code"); n != 1 {
		t.Fatalf("code exchanges at the provider: %d, want 1", n)
	}

	stop := w.serve(filepath.Join(dir, "serve.log"))
	seen := w.rotations("e2e", filepath.Join(dir, "serve.log"))
	if n := w.events.count("grant.success", "refresh_token"); n < 2 {
		t.Fatalf("refreshes at the provider: %d, want 2 or more", n)
	}
	t.Logf("%d access tokens through the pipe, %d refreshes at the provider, no refresh token presented twice",
		len(seen), w.events.count("grant.success", "refresh_token"))

	// A restart of the program keeps the connection: no sign-in.
	stop()
	w.serve(filepath.Join(dir, "serve-again.log"))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if tok, code := w.token("e2e"); code == 0 && tok != "" {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "serve-again.log"))
			t.Fatalf("after a restart, no token through the pipe; serve's log:\n%s", log)
		}
	}
	if n := w.events.count("grant.success", "authorization_code"); n != 1 {
		t.Fatalf("code exchanges after the restart: %d, want still 1", n)
	}
	status := w.run("tokentray", "status")
	if status.code != 0 || !strings.Contains(status.stdout, "e2e") || !strings.Contains(status.stdout, "connected") {
		t.Fatalf("status: exit %d\n%s", status.code, status.stdout)
	}
	if r := w.run("tokentray", "logout", "e2e"); r.code != 0 {
		t.Fatalf("logout: exit %d", r.code)
	}
	if n := w.events.count("grant.revoked", ""); n != 1 {
		t.Fatalf("revocations at the provider after logout: %d, want 1", n)
	}
	if _, code := w.token("e2e"); code != 3 {
		t.Fatalf("token after logout: exit %d, want 3", code)
	}
	// The tokens lived in the Credential Manager: no file of the Windows
	// user's (the config, the socket's directory, caches) holds one.
	users := filepath.Join(prefix, "drive_c", "users")
	_ = filepath.WalkDir(users, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(path)
		for tok := range seen {
			if bytes.Contains(b, []byte(tok)) {
				t.Errorf("%s holds an access token in the clear", path)
			}
		}
		return nil
	})
}

// trayColour is the colour of the icon in Wine's system tray: the notify
// area at the right end of the virtual desktop's taskbar, the last 20 rows
// of the screen. "" when neither green nor red is there.
func trayColour(img image.Image) string {
	b := img.Bounds()
	green, red := 0, 0
	for y := b.Max.Y - 20; y < b.Max.Y; y++ {
		for x := b.Max.X - 200; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			switch {
			case g > r+60 && g > bl+30:
				green++
			case r > g+80 && r > bl+80:
				red++
			}
		}
	}
	switch {
	case green > 20 && green > red:
		return "green"
	case red > 20:
		return "red"
	}
	return ""
}

// The tray on Windows, under Wine: tokentray-core.exe started with no
// command, as the Start menu starts it, in a virtual desktop of Wine's (its
// taskbar has a system tray, on an X display of the test's own), with the
// keyring store (Wine's Credential Manager) and oidc-provider, its token
// endpoint behind the test's gate. The icon is added through
// Shell_NotifyIconW: green once `tokentray login` has asked the tray and
// Chromium has signed in, red once the provider revoked the grant (a spent
// refresh token presented again: reuse detection) and a refresh was
// refused. Checked by its pixels on the screen; both screens are kept as
// screenshots.
func TestTheWindowsTrayIconUnderWine(t *testing.T) {
	w, dir, browserLog := newWineHarness(t)
	redirect := startProvider(t, filepath.Join(w.root, "internal", "e2e", "node"), w.port, w.events)
	base := fmt.Sprintf("http://127.0.0.1:%d", w.port)
	g := startGate(t, base)
	w.writeConfig(strings.Replace(e2eConfig(`store = "keyring"`, w.port, redirect),
		`token_url = "`+base+`/token"`, `token_url = "`+g.srv.URL+`/token"`, 1))
	w.run("tokentray", "logout", "e2e", "--local-only")
	if r := runProgram(w.wine, w.env, clientSecret+"\n", filepath.Join(w.bin, "tokentray.exe"), "secret", "e2e"); r.code != 0 {
		t.Fatalf("secret: exit %d: %s", r.code, r.stderr)
	}

	display := startXvfb(t) // 1280x800
	log := filepath.Join(dir, "tray.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	core := "Z:" + strings.ReplaceAll(filepath.Join(w.bin, "tokentray-core.exe"), "/", `\`)
	cmd := exec.Command(w.wine, "explorer", "/desktop=tokentray-e2e,1280x800", core)
	cmd.Env, cmd.Stdout, cmd.Stderr = append(w.env, "DISPLAY="+display), f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range []string{"tokentray-core.exe", "tokentray-window.exe", "explorer /desktop=tokentray-e2e"} {
			_ = exec.Command("pkill", "-f", p).Run()
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			bl, _ := os.ReadFile(browserLog)
			t.Logf("the tray's output:\n%s\nthe browser's log:\n%s", b, bl)
		}
	})
	// The tray's window of its own (systray's) is made once its API serves.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		list := exec.Command("xwininfo", "-root", "-tree")
		list.Env = append(os.Environ(), "DISPLAY="+display)
		if out, _ := list.Output(); bytes.Contains(out, []byte(`"tokentray-core.exe"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tray did not start")
		}
	}
	screen := func() (image.Image, []byte) {
		shot := exec.Command("import", "-window", "root", "png:-")
		shot.Env = append(os.Environ(), "DISPLAY="+display)
		out, err := shot.Output()
		if err != nil {
			return nil, nil
		}
		img, err := png.Decode(bytes.NewReader(out))
		if err != nil {
			return nil, nil
		}
		return img, out
	}
	waitColour := func(want, shotName string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			if img, raw := screen(); img != nil && trayColour(img) == want {
				if dir := os.Getenv("E2E_SCREENSHOTS"); dir != "" {
					_ = os.MkdirAll(dir, 0o755)
					_ = os.WriteFile(filepath.Join(dir, shotName), raw, 0o644)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the tray icon did not turn %s", want)
			}
		}
	}

	// The sign-in, asked of the running tray: it opens the browser.
	if r := w.run("tokentray", "login", "e2e", "--timeout", "90s"); r.code != 0 {
		t.Fatalf("login through the tray: exit %d", r.code)
	}
	waitColour("green", "windows-tray-green.png")
	t.Log("the tray icon is green: signed in")
	// One refresh by the tray on its own (30 s tokens, at 24 s), so that a
	// refresh token is spent.
	for deadline := time.Now().Add(3 * lifetime); len(g.spent()) == 0; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatal("the tray did not refresh on its own")
		}
	}
	// The provider revokes the grant: the spent refresh token presented
	// again (RFC 9700 reuse detection).
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.spent()[0]}, "client_id": {"tokentray-e2e"}, "client_secret": {clientSecret}}
	resp, err := http.PostForm(base+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := w.run("tokentray", "refresh", "e2e"); r.code != 3 {
		t.Fatalf("refresh after the grant was revoked: exit %d, want 3", r.code)
	}
	waitColour("red", "windows-tray-red.png")
	t.Log("the tray icon is red: the grant was revoked and the refresh refused")
	if b, _ := os.ReadFile(log); bytes.Contains(b, []byte("systray error")) {
		t.Fatalf("systray said:\n%s", b)
	}
}

// A Windows server's way: `tokentray-core serve` with the file store and a
// config given as a Windows path (--config Z:\…), and `tokentray login NAME
// --device` through it: the command shows the code, the person enters it
// on another device (the test's Chromium, on the Linux side), serve keeps
// the tokens and refreshes them on its own, and `tokentray token` gets each
// new one over the named pipe.
func TestTheWindowsServeSignsInWithACodeUnderWine(t *testing.T) {
	w, dir, browserLog := newWineHarness(t)
	startProvider(t, filepath.Join(w.root, "internal", "e2e", "node"), w.port, w.events)
	base := fmt.Sprintf("http://127.0.0.1:%d", w.port)
	cfgFile := filepath.Join(dir, "config.toml")
	// No redirect URI: this connection only ever signs in with a code.
	if err := os.WriteFile(cfgFile, []byte(`store = "file"

[[connection]]
name = "e2e-device"
provider = "generic"
client_id = "tokentray-e2e"
scopes = "openid offline_access api"
token_endpoint_auth_method = "client_secret_post"
token_url = "`+base+`/token"
device_auth_url = "`+base+`/device/auth"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "Z:" + strings.ReplaceAll(cfgFile, "/", `\`)
	// The file store's files, in the Windows user's own folders.
	w.run("tokentray", "--config", cfg, "logout", "e2e-device", "--local-only")
	if r := runProgram(w.wine, w.env, clientSecret+"\n", filepath.Join(w.bin, "tokentray.exe"), "--config", cfg, "secret", "e2e-device"); r.code != 0 {
		t.Fatalf("secret: exit %d: %s", r.code, r.stderr)
	}
	serveLog := filepath.Join(dir, "serve.log")
	w.serve(serveLog, "--config", cfg)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if r := runProgram(w.wine, w.env, "", filepath.Join(w.bin, "tokentray.exe"), "status"); r.code == 0 && strings.Contains(r.stdout, "e2e-device") {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(serveLog)
			t.Fatalf("serve did not answer; its log:\n%s", b)
		}
	}

	login := exec.Command(w.wine, filepath.Join(w.bin, "tokentray.exe"), "--config", cfg, "login", "e2e-device", "--device", "--timeout", "3m")
	login.Env = w.env
	stderr, _ := login.StderrPipe()
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	var said strings.Builder
	sc := bufio.NewScanner(stderr)
	page := ""
	for page == "" && sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		said.WriteString(line + "\n")
		if rest, ok := strings.CutPrefix(line, "(or open "); ok {
			page, _, _ = strings.Cut(rest, ",")
		}
	}
	if page == "" || !strings.Contains(said.String(), "enter the code") {
		_ = login.Process.Kill()
		t.Fatalf("no code and page shown:\n%s", said.String())
	}
	// The person, on another device.
	browser := exec.Command("node", filepath.Join(w.root, "internal", "e2e", "node", "browser.mjs"), page)
	browser.Env = w.env
	if out, err := browser.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(browserLog)
		_ = login.Process.Kill()
		t.Fatalf("the browser: %v\n%s\n%s", err, out, log)
	}
	for sc.Scan() {
		said.WriteString(strings.TrimRight(sc.Text(), "\r") + "\n")
	}
	if err := login.Wait(); err != nil || !strings.Contains(said.String(), "Signed in to e2e-device") {
		t.Fatalf("login --device through serve: %v\n%s", err, said.String())
	}
	t.Logf("login --device through serve:\n%s", said.String())
	if n := w.events.count("grant.success", "urn:ietf:params:oauth:grant-type:device_code"); n != 1 {
		t.Fatalf("%d device-code grants at the provider, want 1", n)
	}
	seen := w.rotations("e2e-device", serveLog)
	t.Logf("%d access tokens through the pipe from the file store's serve, %d refreshes at the provider",
		len(seen), w.events.count("grant.success", "refresh_token"))
	if b, _ := os.ReadFile(serveLog); func() bool {
		for tok := range seen {
			if bytes.Contains(b, []byte(tok)) {
				return true
			}
		}
		return false
	}() {
		t.Fatal("an access token is in serve's log")
	}
}
