//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A sign-in with a code (RFC 8628) against oidc-provider's device flow, as
// on a server without a browser: `tokentray login NAME --device` shows a
// URL and a code, a person finishes it on another device (headless
// Chromium here), and the tokens live on as any sign-in's. First with no
// tokentray running, then through a running `tokentray serve`.
func TestDeviceSignInWithACodeFromAnotherDevice(t *testing.T) {
	h := setup(t)
	root, _ := filepath.Abs("../..")
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	b, _ := os.ReadFile(cfgPath)
	base := strings.TrimSuffix(strings.Split(strings.Split(string(b), `token_url = "`)[1], `"`)[0], "/token")
	// No redirect URI: this connection only ever signs in with a code.
	cfg := string(b) + `
[[connection]]
name = "e2e-device"
provider = "generic"
client_id = "tokentray-e2e"
scopes = "openid offline_access api"
token_endpoint_auth_method = "client_secret_post"
token_url = "` + base + `/token"
device_auth_url = "` + base + `/device/auth"
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(cfgPath, b, 0o600)
		for _, item := range []string{"e2e-device", "e2e-device/client-secret"} {
			_ = exec.Command("secret-tool", "clear", "service", "tokentray", "username", item).Run()
		}
	})
	h.must(clientSecret+"\n", "secret", "e2e-device")
	if r := h.run("", "login", "e2e-device", "--no-browser"); r.code != 3 || !strings.Contains(r.stderr, "--device") {
		t.Fatalf("a browser sign-in without a redirect URI: exit %d, want 3 and a hint to use --device:\n%s", r.code, r.stderr)
	}

	signIn := func(via string) {
		t.Helper()
		login := exec.Command(h.bin, "login", "e2e-device", "--device", "--timeout", "3m")
		login.Env = h.env
		stderr, _ := login.StderrPipe()
		if err := login.Start(); err != nil {
			t.Fatal(err)
		}
		var said strings.Builder
		sc := bufio.NewScanner(stderr)
		url := ""
		for url == "" && sc.Scan() {
			said.WriteString(sc.Text() + "\n")
			if rest, ok := strings.CutPrefix(sc.Text(), "(or open "); ok {
				url, _, _ = strings.Cut(rest, ",")
			}
		}
		if url == "" || !strings.Contains(said.String(), "enter the code") {
			_ = login.Process.Kill()
			t.Fatalf("%s: no code and URL shown:\n%s", via, said.String())
		}
		// The person, on another device.
		browser := exec.Command("node", filepath.Join(root, "internal", "e2e", "node", "browser.mjs"), url)
		browser.Env = h.env
		if out, err := browser.CombinedOutput(); err != nil {
			log, _ := os.ReadFile(h.browser)
			_ = login.Process.Kill()
			t.Fatalf("%s: the browser: %v\n%s\n%s", via, err, out, log)
		}
		for sc.Scan() {
			said.WriteString(sc.Text() + "\n")
		}
		if err := login.Wait(); err != nil || !strings.Contains(said.String(), "Signed in to e2e-device") || !strings.Contains(said.String(), "the code is valid for") {
			t.Fatalf("%s: login --device: %v\n%s", via, err, said.String())
		}
		t.Logf("%s:\n%s", via, said.String())
	}

	// Nothing running: this process asks for the code and keeps the tokens.
	signIn("no tokentray running")
	h.sync()
	if n := h.events.count("grant.success", "urn:ietf:params:oauth:grant-type:device_code"); n != 1 {
		t.Fatalf("%d device-code grants, want 1", n)
	}
	first := strings.TrimSpace(h.must("", "token", "e2e-device").stdout)
	if first == "" || keyringItem(t, "e2e-device")["refresh_token"] == "" {
		t.Fatal("no access token, or no refresh token kept, after the device sign-in")
	}
	refreshes := h.events.count("grant.success", "refresh_token")
	h.must("", "refresh", "e2e-device")
	if h.sync(); h.events.count("grant.success", "refresh_token") != refreshes+1 {
		t.Fatal("the device sign-in's refresh token did not refresh")
	}

	// A running `tokentray serve` (a server's): the sign-in runs there, the
	// command only shows its code and waits.
	h.startServe(t)
	h.must("", "logout", "e2e-device")
	signIn("through tokentray serve")
	if h.sync(); h.events.count("grant.success", "urn:ietf:params:oauth:grant-type:device_code") != 2 {
		t.Fatal("the second device sign-in made no grant")
	}
	second := strings.TrimSpace(h.must("", "token", "e2e-device").stdout)
	if second == "" || second == first {
		t.Fatal("no new access token from the sign-in through tokentray serve")
	}
	log, _ := os.ReadFile(filepath.Join(h.dir, "serve.log"))
	if strings.Contains(string(log), second) {
		t.Fatal("an access token is in serve's log")
	}

	// As a desktop's tray asks a server over ssh (`login NAME --device
	// --relay`): the code as one JSON line, the connection as the next.
	h.must("", "logout", "e2e-device")
	relay := exec.Command(h.bin, "login", "e2e-device", "--device", "--relay", "--timeout", "3m")
	relay.Env = h.env
	stdout, _ := relay.StdoutPipe()
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var code struct {
		UserCode string `json:"user_code"`
		Complete string `json:"verification_uri_complete"`
	}
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &code) != nil || code.UserCode == "" || code.Complete == "" {
		_ = relay.Process.Kill()
		t.Fatalf("the relay's first line: %q", lines.Text())
	}
	browser := exec.Command("node", filepath.Join(root, "internal", "e2e", "node", "browser.mjs"), code.Complete)
	browser.Env = h.env
	if out, err := browser.CombinedOutput(); err != nil {
		_ = relay.Process.Kill()
		t.Fatalf("the browser: %v\n%s", err, out)
	}
	var conn struct {
		State      string `json:"state"`
		CodeSignIn bool   `json:"code_sign_in"`
	}
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &conn) != nil || conn.State != "connected" || !conn.CodeSignIn {
		t.Fatalf("the relay's second line: %q", lines.Text())
	}
	if err := relay.Wait(); err != nil {
		t.Fatalf("login --device --relay: %v", err)
	}
}
