//go:build e2e

package e2e

// tokentray against Ory Hydra, the way scripts use it: plain commands, a
// generic connection configured with the issuer alone, access tokens of 20 s
// that Hydra revokes at each refresh, and no tray running (every command
// takes the file lock and refreshes itself).
//
// No assertion here depends on how fast the machine is: waits poll against
// generous deadlines and the assertions are about outcomes. The one upper
// bound on a duration is "a sign-in against a server that is down fails at
// once" (15 s).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// interop is one test's tokentray and Hydra, with what the leak check needs.
type interop struct {
	*harness
	t       *testing.T
	hydra   *hydraServer
	name    string // the connection
	cfgPath string
	opens   string // the xdg-open shim's log: one line per browser opened
	stderrs []string
	values  []string // every token and secret seen
}

// setupInterop builds tokentray, puts the person at the browser (headless
// Chromium through an xdg-open shim) on PATH, starts Hydra and clears the
// keyring items of the connection name.
func setupInterop(t *testing.T, name string, opt hydraOptions) *interop {
	if os.Getenv("TOKENTRAY_IN_SESSION") == "" {
		t.Fatal("run inside .ci/desktop-session: the e2e test needs the private D-Bus session and Secret Service")
	}
	hydraBinary(t) // fail before building anything when Hydra is missing
	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, bin: filepath.Join(dir, "tokentray"), events: &eventLog{}}
	buildTokentray(t, root, dir)

	ix := &interop{harness: h, t: t, name: name, opens: filepath.Join(dir, "opens.log"),
		cfgPath: filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")}
	// The shim notes each opening before Chromium starts, so that a browser
	// that should not have opened is seen even if it fails to start.
	binDir := installBrowser(t, root, dir, fmt.Sprintf("echo opened >> %q\n", ix.opens))
	h.browser = filepath.Join(dir, "browser.log")
	// Scripts run with whatever locale the machine has; C.UTF-8 is the
	// common one on servers.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "PATH" && k != "LANG" && k != "LANGUAGE" && !strings.HasPrefix(k, "LC_") {
			h.env = append(h.env, kv)
		}
	}
	h.env = append(h.env, "PATH="+binDir+":"+os.Getenv("PATH"), "LANG=C.UTF-8",
		"E2E_BROWSER_LOG="+h.browser, "E2E_SCREENSHOTS="+os.Getenv("E2E_SCREENSHOTS"))

	clear := func() {
		for _, item := range []string{name, name + "/client-secret"} {
			_ = exec.Command("secret-tool", "clear", "service", "tokentray", "username", item).Run()
		}
	}
	clear()
	t.Cleanup(clear)
	// Registered now, so it runs after the test body, and also when the test
	// ends early.
	t.Cleanup(ix.checkNoLeaks)

	ix.hydra = startHydra(t, opt)
	ix.values = append(ix.values, ix.hydra.Browser.Secret, ix.hydra.Service.Secret)
	return ix
}

// writeConfig writes the connection's config table: name and provider, then
// body (TOML lines).
func (ix *interop) writeConfig(body string) {
	ix.t.Helper()
	cfg := fmt.Sprintf("# written by the interop test\n[[connection]]\nname = %q\nprovider = \"generic\"\n%s\n", ix.name, body)
	_ = os.MkdirAll(filepath.Dir(ix.cfgPath), 0o700)
	if err := os.WriteFile(ix.cfgPath, []byte(cfg), 0o600); err != nil {
		ix.t.Fatal(err)
	}
	ix.t.Logf("config:\n%s", cfg)
}

// browserConfig is a sign-in connection to the Browser client with the
// issuer alone, plus extra lines.
func (ix *interop) browserConfig(extra string) {
	ix.writeConfig(fmt.Sprintf("client_id = %q\nredirect_uri = %q\nissuer = %q\n%s", ix.hydra.Browser.ID, ix.hydra.Redirect, ix.hydra.Issuer, extra))
}

// kept records stderr for the leak check. The CLI links no GUI toolkit: a
// toolkit's log line on its stderr (Fyne's complaint about the locale "C"
// under LANG=C.UTF-8 was one) fails the test.
func (ix *interop) kept(args []string, r result) result {
	ix.t.Helper()
	ix.stderrs = append(ix.stderrs, r.stderr)
	if strings.Contains(r.stderr, "Fyne") {
		ix.t.Fatalf("`tokentray %s` with LANG=C.UTF-8 printed the GUI toolkit's log:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// run is harness.run that keeps stderr for the leak check.
func (ix *interop) run(stdin string, args ...string) result {
	ix.t.Helper()
	return ix.kept(args, ix.harness.run(stdin, args...))
}

func (ix *interop) must(stdin string, args ...string) result {
	ix.t.Helper()
	r := ix.run(stdin, args...)
	if r.code != 0 {
		ix.t.Fatalf("tokentray %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r
}

// quiet is runQuiet that keeps stderr, for the polling loops.
func (ix *interop) quiet(args ...string) result {
	ix.t.Helper()
	r := ix.runQuiet("", args...)
	if r.code == -1 {
		ix.t.Fatalf("run %v: %s", args, r.stderr)
	}
	return ix.kept(args, r)
}

// secret stores the client secret the way a script does.
func (ix *interop) secret(s string) result {
	ix.t.Helper()
	ix.values = append(ix.values, s)
	return ix.must(s, "secret", ix.name)
}

// printed is the access token a `token` command printed (and remembers it).
func (ix *interop) printed(r result) string {
	ix.t.Helper()
	tok := strings.TrimSpace(r.stdout)
	if tok == "" || r.stdout != tok+"\n" {
		ix.t.Fatalf("token printed %d bytes over %d lines; want one token and a newline", len(r.stdout), strings.Count(r.stdout, "\n"))
	}
	ix.values = append(ix.values, tok)
	return tok
}

// item is the connection's token set in the keyring (and remembers its tokens).
func (ix *interop) item() map[string]any {
	ix.t.Helper()
	m := keyringItem(ix.t, ix.name)
	for _, k := range []string{"access_token", "refresh_token"} {
		if v, _ := m[k].(string); v != "" {
			ix.values = append(ix.values, v)
		}
	}
	return m
}

// lifetime is the access tokens' lifetime as tokentray measured it.
func (ix *interop) lifetime() time.Duration {
	ix.t.Helper()
	s, ok := ix.item()["lifetime_s"].(float64)
	if !ok || s <= 0 {
		ix.t.Fatal("the keyring item has no lifetime_s")
	}
	return time.Duration(s) * time.Second
}

// browserOpens counts the browsers tokentray opened.
func (ix *interop) browserOpens() int {
	b, _ := os.ReadFile(ix.opens)
	return strings.Count(string(b), "opened\n")
}

// status is the connection's entry in `tokentray status --json`.
func (ix *interop) status() map[string]any {
	ix.t.Helper()
	r := ix.must("", "status", "--json")
	var all []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil {
		ix.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	for _, c := range all {
		if c["name"] == ix.name {
			return c
		}
	}
	ix.t.Fatalf("status --json has no %s:\n%s", ix.name, r.stdout)
	return nil
}

// active asks Hydra whether a token is active.
func (ix *interop) active(token string) bool {
	ix.t.Helper()
	return ix.hydra.Introspect(token)["active"] == true
}

// checkNoLeaks: no token or secret in any stderr, nor in any plain file
// under HOME (the keyring's own encrypted file is where they live).
func (ix *interop) checkNoLeaks() {
	t := ix.t
	home := os.Getenv("HOME")
	var files []string
	_ = filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	contents := map[string][]byte{}
	for _, p := range files {
		contents[p], _ = os.ReadFile(p)
	}
	for _, v := range ix.values {
		if len(v) < 8 {
			continue
		}
		for _, s := range ix.stderrs {
			if strings.Contains(s, v) {
				t.Errorf("a token or secret (%d chars) appeared on stderr", len(v))
			}
		}
		for p, b := range contents {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("a token or secret (%d chars) is in the plain file %s", len(v), p)
			}
		}
	}
}

// repeatedClause returns a clause that a line of s says twice in a row
// ("a: b: b"), or "".
func repeatedClause(s string) string {
	for _, line := range strings.Split(s, "\n") {
		parts := strings.Split(line, ": ")
		for i := 1; i < len(parts); i++ {
			if parts[i] != "" && parts[i] == parts[i-1] {
				return parts[i]
			}
		}
	}
	return ""
}

// hydraDiscovery is Hydra's OpenID Connect discovery document.
func hydraDiscovery(t *testing.T, hy *hydraServer) map[string]any {
	t.Helper()
	resp, err := http.Get(hy.Public + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: HTTP %d, %v", resp.StatusCode, err)
	}
	return d
}

// scriptMargin is what a plain `tokentray token` asks of a token of lifetime
// d: min(2 min, d×(1−refresh_at)) with the default refresh_at of 0.8.
func scriptMargin(d time.Duration) time.Duration {
	return min(2*time.Minute, d/5)
}

// TestHydraSignInThenPlainTokenCallsSeeEachRotation signs in through the
// browser with a connection that names only the issuer, then calls a plain
// `tokentray token` as scripts do until tokentray has refreshed twice. Hydra
// revokes the previous access token at each refresh, so every token printed
// must stay active for the margin it was printed with, and an old one must be
// dead once rotated. Sign-out revokes the refresh token at Hydra.
func TestHydraSignInThenPlainTokenCallsSeeEachRotation(t *testing.T) {
	ix := setupInterop(t, "hydra", hydraOptions{AccessTokenTTL: 20 * time.Second})
	hy := ix.hydra
	ix.browserConfig(`scopes = "openid offline_access"`)
	ix.secret(hy.Browser.Secret)

	ix.must("", "login", ix.name)
	ix.waitBrowser("callback page: signed-in")
	if n := ix.browserOpens(); n != 1 {
		t.Fatalf("the sign-in opened %d browsers, want 1", n)
	}
	if hy.Logins.Load() != 1 || hy.Consents.Load() != 1 {
		t.Fatalf("hydra saw %d logins, %d consents; want 1 each", hy.Logins.Load(), hy.Consents.Load())
	}
	lifetime := ix.lifetime()
	t.Logf("access tokens live %s; a plain `tokentray token` asks for %s", lifetime, scriptMargin(lifetime))

	// Discovery from the issuer alone: the URLs in use are Hydra's.
	disc := hydraDiscovery(t, hy)
	st := ix.status()
	if st["state"] != "connected" {
		t.Fatalf("status after sign-in: state %v", st["state"])
	}
	ep, _ := st["endpoints"].(map[string]any)
	for key, want := range map[string]any{"auth_url": disc["authorization_endpoint"], "token_url": disc["token_endpoint"],
		"revoke_url": disc["revocation_endpoint"], "check_url": disc["userinfo_endpoint"], "issuer": disc["issuer"]} {
		if ep[key] != want || want == nil || want == "" {
			t.Errorf("status endpoints.%s = %v; Hydra's discovery says %v", key, ep[key], want)
		}
	}

	// Plain `tokentray token` calls across time, until two rotations.
	type handout struct {
		token      string
		margin     time.Duration // what a plain call asks of it
		start, end time.Time     // of the last call that printed it
	}
	var cur handout
	var rts []string
	rts = append(rts, ix.item()["refresh_token"].(string))
	rotations, calls := 0, 0
	deadline := time.Now().Add(120 * time.Second)
	for rotations < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second refresh after %d plain token calls in 120 s (rotations: %d)", calls, rotations)
		}
		start := time.Now()
		r := ix.quiet("token", ix.name)
		end := time.Now()
		calls++
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("plain token call %d: exit %d, stderr %q", calls, r.code, r.stderr)
		}
		tok := ix.printed(r)
		// Nothing else refreshes (no tray, one caller at a time): the token
		// just printed must be live at Hydra.
		if !ix.active(tok) {
			t.Errorf("call %d: the token just printed is not active at Hydra", calls)
		}
		if cur.token != "" && tok != cur.token {
			rotations++
			t.Logf("call %d: rotation %d (%s after the previous call that printed the old token started)", calls, rotations, end.Sub(cur.start).Round(time.Millisecond))
			if ix.active(cur.token) {
				t.Errorf("rotation %d: the previous access token is still active at Hydra", rotations)
			}
			// The previous call promised its token for its margin from some
			// instant after it started; this call's refresh revoked it at
			// Hydra before this call ended. Sound whatever the machine's
			// speed: a slow one can only hide a broken promise.
			if end.Before(cur.start.Add(cur.margin)) {
				t.Errorf("rotation %d: a token printed by a plain `tokentray token` was revoked by tokentray's next refresh within %s, "+
					"less than the %s margin it was handed out with (the printing call started at %s, the refreshing call ended at %s)",
					rotations, end.Sub(cur.start).Round(time.Millisecond), cur.margin, cur.start.Format("15:04:05.000"), end.Format("15:04:05.000"))
			}
			rt := ix.item()["refresh_token"].(string)
			for _, old := range rts {
				if rt == old {
					t.Fatalf("rotation %d: the refresh token in the keyring did not rotate", rotations)
				}
				if ix.active(old) {
					t.Errorf("rotation %d: a rotated refresh token is still active at Hydra", rotations)
				}
			}
			rts = append(rts, rt)
		}
		if tok != cur.token {
			// Nothing else refreshes: the keyring holds this token's lifetime.
			cur = handout{token: tok, margin: scriptMargin(ix.lifetime())}
		}
		cur.start, cur.end = start, end
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d plain token calls saw 2 rotations", calls)
	if st := ix.status(); st["state"] != "connected" || st["last_error"] != nil {
		t.Errorf("status after the refreshes: state %v, last_error %v", st["state"], st["last_error"])
	}

	// Sign-out: Hydra has a revocation endpoint, and revokes the refresh token.
	rt := ix.item()["refresh_token"].(string)
	if !ix.active(rt) {
		t.Fatal("the stored refresh token is not active at Hydra before the sign-out")
	}
	r := ix.must("", "logout", ix.name)
	if !strings.Contains(r.stderr, "the provider revoked the refresh token") {
		t.Errorf("logout said %q; want that the provider revoked the refresh token", r.stderr)
	}
	if ix.active(rt) {
		t.Error("after logout the refresh token is still active at Hydra")
	}
	if r := ix.run("", "token", ix.name); r.code != 3 || !strings.Contains(r.stderr, "tokentray login "+ix.name) {
		t.Errorf("token after logout: exit %d %q; want 3 and the sign-in hint", r.code, r.stderr)
	}
}

// TestHydraServiceAccountWithIssuerAlone: a client_credentials connection
// that names only the issuer finds the token endpoint and authenticates with
// client_secret_basic, which Hydra lists and registered the client with.
func TestHydraServiceAccountWithIssuerAlone(t *testing.T) {
	ix := setupInterop(t, "hydra-service", hydraOptions{AccessTokenTTL: 20 * time.Second})
	hy := ix.hydra
	ix.writeConfig(fmt.Sprintf("grant = \"client_credentials\"\nclient_id = %q\nissuer = %q\nscopes = \"api\"", hy.Service.ID, hy.Issuer))

	// No secret yet: a person must act, and nothing is sent.
	r := ix.run("", "token", ix.name)
	if r.code != 3 || !strings.Contains(r.stderr, "tokentray secret "+ix.name) {
		t.Fatalf("token without a client secret: exit %d %q; want 3 naming `tokentray secret %s`", r.code, r.stderr, ix.name)
	}
	if c := repeatedClause(r.stderr); c != "" {
		t.Errorf("the error says %q twice in a row: %q", c, r.stderr)
	}
	if strings.Contains(r.stderr, "refresh token") {
		t.Errorf("the advice for a service account (client_credentials: it has no refresh token) talks about a refresh token: %q", r.stderr)
	}
	if m := hy.Service.JSON["token_endpoint_auth_method"]; m != "client_secret_basic" {
		t.Fatalf("hydra registered the service client with %v; this test is about client_secret_basic", m)
	}
	ix.secret(hy.Service.Secret)
	tok := ix.printed(ix.must("", "token", ix.name))
	in := hy.Introspect(tok)
	if in["active"] != true || in["client_id"] != hy.Service.ID || in["scope"] != "api" {
		t.Fatalf("the service token at Hydra: active %v, client_id %v, scope %v", in["active"], in["client_id"], in["scope"])
	}
	if again := ix.printed(ix.must("", "token", ix.name)); !ix.active(again) {
		t.Fatal("a second plain token call printed a token that is not active at Hydra")
	}
	st := ix.status()
	ep, _ := st["endpoints"].(map[string]any)
	disc := hydraDiscovery(t, hy)
	if st["state"] != "connected" || st["grant"] != "client_credentials" || ep["token_url"] != disc["token_endpoint"] {
		t.Fatalf("status: state %v, grant %v, token_url %v (Hydra's: %v)", st["state"], st["grant"], ep["token_url"], disc["token_endpoint"])
	}
	if n := ix.browserOpens(); n != 0 {
		t.Fatalf("a service account opened %d browsers", n)
	}
}

// TestHydraWrongSecretThenRightSecretRecoversWithoutBrowser: Hydra refuses a
// wrong client secret with invalid_client; tokentray keeps the refresh token
// (client_refused, exit 3), and storing the right secret reconnects with it,
// with no new sign-in and no browser.
func TestHydraWrongSecretThenRightSecretRecoversWithoutBrowser(t *testing.T) {
	ix := setupInterop(t, "hydra-secret", hydraOptions{AccessTokenTTL: 20 * time.Second})
	hy := ix.hydra
	ix.browserConfig(`scopes = "openid offline_access"`)
	ix.secret(hy.Browser.Secret)
	ix.must("", "login", ix.name)
	ix.waitBrowser("callback page: signed-in")
	opens := ix.browserOpens()
	if opens != 1 {
		t.Fatalf("the sign-in opened %d browsers, want 1", opens)
	}
	rt0 := ix.item()["refresh_token"].(string)

	if r := ix.secret("wrong-" + hy.Browser.Secret); strings.Contains(r.stderr, "connected again") {
		t.Fatalf("storing a wrong secret claimed a reconnection: %q", r.stderr)
	}
	r := ix.run("", "refresh", ix.name)
	if r.code != 3 || !strings.Contains(r.stderr, "invalid_client") || !strings.Contains(r.stderr, "tokentray secret "+ix.name) {
		t.Fatalf("refresh with a wrong secret: exit %d %q; want 3, invalid_client and `tokentray secret %s`", r.code, r.stderr, ix.name)
	}
	if rt := ix.item()["refresh_token"]; rt != rt0 {
		t.Fatal("the refresh token was not kept after invalid_client")
	}
	if !ix.active(rt0) {
		t.Fatal("the kept refresh token is not active at Hydra")
	}
	// Hydra's every invalid_client says "(e.g., unknown client, no client
	// authentication included, or unsupported authentication method)"; here
	// it adds "passwords do not match". The method is right.
	if strings.Contains(r.stderr, "points at the client authentication method") {
		t.Errorf("with the right method and a wrong secret, the hint sends the person to change token_endpoint_auth_method: %q", r.stderr)
	}
	if st := ix.status(); st["state"] != "client_refused" || st["last_error"] == nil {
		t.Fatalf("status after invalid_client: state %v, last_error %v", st["state"], st["last_error"])
	}

	r = ix.secret(hy.Browser.Secret)
	if !strings.Contains(r.stderr, "is connected again with the kept refresh token (no sign-in needed)") {
		t.Fatalf("storing the right secret: %q; want the reconnection with the kept refresh token", r.stderr)
	}
	item := ix.item()
	if item["refresh_token"] == rt0 || ix.active(rt0) {
		t.Fatal("the reconnection did not refresh with the kept refresh token (it did not rotate at Hydra)")
	}
	if st := ix.status(); st["state"] != "connected" {
		t.Fatalf("status after the right secret: state %v, last_error %v", st["state"], st["last_error"])
	}
	r = ix.must("", "token", ix.name)
	if r.stderr != "" {
		t.Errorf("token after the recovery warned: %q", r.stderr)
	}
	if tok := ix.printed(r); !ix.active(tok) {
		t.Fatal("the token printed after the recovery is not active at Hydra")
	}
	if n := ix.browserOpens(); n != opens {
		t.Fatalf("the recovery opened a browser (%d opens, %d before)", n, opens)
	}
	if hy.Logins.Load() != 1 {
		t.Fatalf("hydra saw %d logins; the recovery must not sign in again", hy.Logins.Load())
	}
}

// TestHydraWithoutOfflineAccessIssuesNoRefreshToken: asking only for
// "openid", Hydra issues no refresh token; tokentray says so at sign-in and
// in status, naming offline_access.
func TestHydraWithoutOfflineAccessIssuesNoRefreshToken(t *testing.T) {
	ix := setupInterop(t, "hydra-online", hydraOptions{AccessTokenTTL: 20 * time.Second})
	ix.browserConfig(`scopes = "openid"`)
	ix.secret(ix.hydra.Browser.Secret)
	r := ix.must("", "login", ix.name)
	ix.waitBrowser("callback page: signed-in")
	if !strings.Contains(r.stderr, "the server issued no refresh token") || !strings.Contains(r.stderr, "offline_access") {
		t.Fatalf("login without offline_access said %q; want that no refresh token was issued and a hint naming offline_access", r.stderr)
	}
	item := ix.item()
	if rt, _ := item["refresh_token"].(string); rt != "" {
		t.Fatal("a refresh token is stored although Hydra issued none")
	}
	st := ix.status()
	next, _ := st["next"].(map[string]any)
	if hint, _ := st["hint"].(string); !strings.Contains(hint, "offline_access") || next["kind"] != "ask_offline_access" || st["has_refresh_token"] != false {
		t.Fatalf("status: hint %q, next %v, has_refresh_token %v; want the offline_access hint and step, and false", hint, next, st["has_refresh_token"])
	}
	// The access token is handed out while it lasts.
	r = ix.run("", "token", ix.name)
	switch {
	case r.code == 0:
		if tok := ix.printed(r); tok != item["access_token"] || !ix.active(tok) {
			t.Fatal("token printed another token than the one signed in with, or a dead one")
		}
	case r.code == 3 && strings.Contains(r.stderr, "tokentray login "+ix.name):
		t.Logf("the access token expired before the token call (a slow machine): %q", r.stderr)
	default:
		t.Fatalf("token without a refresh token: exit %d %q", r.code, r.stderr)
	}
}

// TestHydraDownScriptsKeepTheValidTokenWithAWarning stops Hydra after the
// sign-in: a plain `tokentray token` prints the token held while it is valid,
// with one warning line; an explicit --min-valid it cannot meet fails with
// exit 4, one no token can meet with exit 2; status shows degraded and the
// error; a sign-in fails at once without a browser.
func TestHydraDownScriptsKeepTheValidTokenWithAWarning(t *testing.T) {
	ix := setupInterop(t, "hydra-down", hydraOptions{AccessTokenTTL: 20 * time.Second})
	ix.browserConfig(`scopes = "openid offline_access"`)
	ix.secret(ix.hydra.Browser.Secret)
	ix.must("", "login", ix.name)
	ix.waitBrowser("callback page: signed-in")
	item := ix.item()
	at := item["access_token"].(string)
	lifetime := ix.lifetime()
	obtained, err := time.Parse(time.RFC3339Nano, item["obtained_at"].(string))
	if err != nil {
		t.Fatalf("obtained_at: %v", err)
	}
	expiry := obtained.Add(lifetime)
	ix.hydra.Stop()

	// Longer than any token of this provider lives: a usage error naming the lifetime.
	r := ix.run("", "token", ix.name, "--min-valid", "30s")
	if r.code != 2 || !strings.Contains(r.stderr, "valid for "+lifetime.String()) {
		t.Fatalf("--min-valid 30s: exit %d %q; want 2 naming the lifetime %s", r.code, r.stderr, lifetime)
	}

	// Plain calls: the token held, silently while it needs no refresh, then
	// with one warning line once the refresh it calls for fails.
	var warning string
	for warning == "" {
		r := ix.quiet("token", ix.name)
		if r.code != 0 {
			if time.Now().After(expiry) {
				t.Fatalf("the token expired before a plain call found the refresh due (the machine stalled for %s?): exit %d %q",
					lifetime-scriptMargin(lifetime), r.code, r.stderr)
			}
			t.Fatalf("plain token with Hydra down and a valid token: exit %d %q", r.code, r.stderr)
		}
		if ix.printed(r) != at {
			t.Fatal("plain token printed another token than the one held")
		}
		warning = r.stderr
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("warning: %s", warning)
	if strings.Count(warning, "\n") != 1 || !strings.HasPrefix(warning, "tokentray: warning: "+ix.name+" was not refreshed (") ||
		!strings.Contains(warning, "); this token expires at ") {
		t.Errorf("the warning is %q; want one line \"tokentray: warning: %s was not refreshed (…); this token expires at …\"", warning, ix.name)
	}

	// An explicit promise the token held cannot keep: exit 4. The warning
	// above means the token has less than the margin left before its
	// refresh point, so under 15 s of validity.
	r = ix.run("", "token", ix.name, "--min-valid", "15s")
	if r.code != 4 || r.stdout != "" {
		t.Fatalf("--min-valid 15s with Hydra down: exit %d, %d bytes on stdout, %q; want 4 and nothing printed", r.code, len(r.stdout), r.stderr)
	}

	st := ix.status()
	if lastErr, _ := st["last_error"].(string); st["state"] != "degraded" || lastErr == "" {
		t.Fatalf("status with Hydra down: state %v, last_error %q; want degraded and the error", st["state"], lastErr)
	} else {
		t.Logf("status last_error: %s", lastErr)
	}

	opens := ix.browserOpens()
	start := time.Now()
	r = ix.run("", "login", ix.name)
	took := time.Since(start)
	if r.code != 4 {
		t.Fatalf("login with Hydra down: exit %d %q; want 4", r.code, r.stderr)
	}
	if took > 15*time.Second {
		t.Errorf("login with Hydra down took %s to fail; want at once", took.Round(time.Millisecond))
	}
	if n := ix.browserOpens(); n != opens {
		t.Fatalf("login with Hydra down opened a browser")
	}
}

// TestHydraClientSecretPostAgainstBasicClientNeedsAPerson: Hydra registered
// the client for client_secret_basic; a connection that sets
// client_secret_post is refused with invalid_client. That is for a person to
// fix (exit 3), and the hint names the method Hydra wants. Without a stored
// secret, such a connection does not even open the browser.
func TestHydraClientSecretPostAgainstBasicClientNeedsAPerson(t *testing.T) {
	ix := setupInterop(t, "hydra-post", hydraOptions{AccessTokenTTL: 20 * time.Second})
	hy := ix.hydra
	post := "scopes = \"openid offline_access\"\ntoken_endpoint_auth_method = \"client_secret_post\""
	ix.browserConfig(post)

	// A confidential connection without its secret: stopped before the browser.
	r := ix.run("", "login", ix.name)
	if r.code != 3 || !strings.Contains(r.stderr, "tokentray secret "+ix.name) {
		t.Fatalf("login without a stored secret: exit %d %q; want 3 naming `tokentray secret %s`", r.code, r.stderr, ix.name)
	}
	if n := ix.browserOpens(); n != 0 {
		t.Fatalf("login without a stored secret opened %d browsers", n)
	}

	// With the secret, sent the wrong way: the code exchange is refused.
	ix.secret(hy.Browser.Secret)
	r = ix.run("", "login", ix.name)
	ix.waitBrowser("callback page: exchange-failed")
	if !strings.Contains(r.stderr, "invalid_client") || !strings.Contains(r.stderr, "hint: ") ||
		!strings.Contains(r.stderr[strings.Index(r.stderr, "hint: "):], "client_secret_basic") {
		t.Errorf("login with client_secret_post: stderr %q; want invalid_client and a hint naming client_secret_basic", r.stderr)
	}
	if r.code != 3 {
		t.Errorf("login with client_secret_post against a client_secret_basic client: exit %d; want 3 (a person must fix the method)", r.code)
	}

	// Signed in with the method Hydra discovers (basic), then switched to
	// post: the refresh is refused, the refresh token kept, and switching
	// back reconnects without a sign-in.
	ix.browserConfig(`scopes = "openid offline_access"`)
	ix.must("", "login", ix.name)
	ix.waitBrowser("callback page: signed-in")
	rt0 := ix.item()["refresh_token"].(string)
	opens := ix.browserOpens()
	ix.browserConfig(post)
	r = ix.run("", "refresh", ix.name)
	if r.code != 3 || !strings.Contains(r.stderr, "invalid_client") || !strings.Contains(r.stderr, "client_secret_basic") {
		t.Errorf("refresh with client_secret_post: exit %d %q; want 3, invalid_client, and a hint naming client_secret_basic", r.code, r.stderr)
	}
	if st := ix.status(); st["state"] != "client_refused" {
		t.Errorf("status after the refused refresh: state %v, want client_refused", st["state"])
	}
	if rt := ix.item()["refresh_token"]; rt != rt0 || !ix.active(rt0) {
		t.Fatal("the refresh token was not kept (or is dead at Hydra) after invalid_client")
	}
	ix.browserConfig(`scopes = "openid offline_access"`)
	ix.must("", "refresh", ix.name)
	if rt := ix.item()["refresh_token"]; rt == rt0 {
		t.Fatal("the refresh after fixing the method did not rotate the refresh token")
	}
	if st := ix.status(); st["state"] != "connected" {
		t.Errorf("status after fixing the method: state %v, last_error %v", st["state"], st["last_error"])
	}
	if n := ix.browserOpens(); n != opens {
		t.Fatalf("fixing the method opened a browser")
	}
}

// TestHydraAPromiseMovesTokentraysRefresh: Hydra revokes the previous
// access token at every refresh. A token printed by `token --min-valid 6s`
// 3 s before tokentray's scheduled refresh is still active at Hydra 5 s
// later: where the token covers that window, the promise moves the
// scheduled refresh past it instead of spending one now; another caller's
// refresh waits for it. With no tokentray running (the promise kept with
// the tokens, another process's plain call), and with `tokentray serve`
// (its own schedule).
func TestHydraAPromiseMovesTokentraysRefresh(t *testing.T) {
	for _, running := range []bool{false, true} {
		t.Run(map[bool]string{false: "no tokentray running", true: "tokentray serve"}[running], func(t *testing.T) {
			ix := setupInterop(t, "hydra-promise", hydraOptions{AccessTokenTTL: 90 * time.Second})
			ix.browserConfig(`scopes = "openid offline_access"`)
			ix.secret(ix.hydra.Browser.Secret)
			ix.must("", "login", ix.name)
			ix.waitBrowser("callback page: signed-in")
			if running {
				ix.startServe(t)
			}
			at, life := obtained(t, ix.name), ix.lifetime()
			held := ix.item()["access_token"].(string)
			// The README's rule: refresh at 0.8 of the lifetime; a promise
			// may move it up to the expiry less 3 × lifetime/20.
			scheduled := at.Add(life * 8 / 10)
			limit := at.Add(life - 3*min(max(life/20, time.Second), 30*time.Second))
			time.Sleep(time.Until(scheduled.Add(-3 * time.Second)))

			start := time.Now()
			tok := ix.printed(ix.must("", "token", ix.name, "--min-valid", "6s"))
			end := time.Now()
			switch {
			case !end.Add(6*time.Second).After(limit) && tok != held:
				t.Errorf("the token covered the window (it ended %s before the limit), yet a refresh was spent for it", limit.Sub(end.Add(6*time.Second)).Round(time.Millisecond))
			case start.Add(6 * time.Second).After(limit):
				t.Logf("a slow machine: the window reached past the limit, so a refresh came first")
			}
			plain := make(chan result, 1)
			if !running {
				// Another script's plain call wants the token past the moved
				// refresh: its refresh waits for the promise.
				go func() { plain <- ix.runQuiet("", "token", ix.name) }()
			}
			time.Sleep(time.Until(start.Add(5 * time.Second)))
			if !ix.active(tok) {
				t.Errorf("a token printed with --min-valid 6s is no longer active at Hydra %s after its call began", time.Since(start).Round(time.Millisecond))
			}
			if !running {
				select {
				case r := <-plain:
					if r.code != 0 || strings.TrimSpace(r.stdout) == "" {
						t.Fatalf("the plain call: exit %d, %q", r.code, r.stderr)
					}
					ix.printed(r)
				case <-time.After(time.Minute):
					t.Fatal("the plain call did not end")
				}
			}
		})
	}
}
