//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// signedInPages counts the browser's callback pages that said "signed in".
func (h *harness) signedInPages() int {
	log, _ := os.ReadFile(h.browser)
	return strings.Count(string(log), "callback page: signed-in")
}

// statusOf is one connection of `tokentray status --json`.
func (h *harness) statusOf(name string) map[string]any {
	h.t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(h.must("", "status", "--json").stdout), &list); err != nil {
		h.t.Fatal(err)
	}
	for _, c := range list {
		if c["name"] == name {
			return c
		}
	}
	h.t.Fatalf("status --json lists no %s", name)
	return nil
}

// The README's shortest config for a generic provider (name, provider,
// issuer, client_id, redirect_uri; the scopes an OpenID server wants for a
// refresh token) signs a public client in and refreshes
// it: with no secret stored, the method is none where the server lists it.
// A method that needs a secret, with none stored, is refused before the
// browser opens (exit 3); a confidential client with its secret uses
// client_secret_basic, the one its registration allows. A connection with the issuer and explicit URLs
// still reads the metadata: its device endpoint is found.
func TestAMinimalConfigSignsInWithTheMethodItsServerTakes(t *testing.T) {
	h := setup(t)
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	b, _ := os.ReadFile(cfgPath)
	field := func(key string) string { return strings.Split(strings.Split(string(b), key+` = "`)[1], `"`)[0] }
	issuer, redirect := field("issuer"), field("redirect_uri")
	cfg := string(b) + fmt.Sprintf(`
[[connection]]
name = "pub"
provider = "generic"
issuer = %q
client_id = "tokentray-e2e-public"
redirect_uri = %q
# oidc-provider answers access_denied to a request without openid, and
# gives refresh tokens for offline_access.
scopes = ["openid", "offline_access"]

[[connection]]
name = "conf"
provider = "generic"
issuer = %q
client_id = "tokentray-e2e-basic"
redirect_uri = %q
scopes = ["openid", "offline_access", "api"]

[[connection]]
name = "confx"
provider = "generic"
issuer = %q
client_id = "tokentray-e2e-basic"
redirect_uri = %q
token_endpoint_auth_method = "client_secret_basic"
`, issuer, redirect, issuer, redirect, issuer, redirect)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(cfgPath, b, 0o600)
		for _, item := range []string{"pub", "conf", "conf/client-secret", "confx"} {
			_ = exec.Command("secret-tool", "clear", "service", "tokentray", "username", item).Run()
		}
	})

	// The public client: no secret, no method configured.
	h.must("", "login", "pub", "--timeout", "90s")
	h.waitBrowser("callback page: signed-in")
	if s := h.statusOf("pub"); s["auth_method"] != "none" || s["auth_method_from"] != "metadata" || s["usable"] != true {
		t.Fatalf("pub: %v", s)
	}
	h.sync()
	before := h.events.count("grant.success", "refresh_token")
	h.must("", "refresh", "pub")
	if h.sync(); h.events.count("grant.success", "refresh_token") != before+1 {
		t.Fatal("the public client did not refresh")
	}

	// A method that needs a secret (set here: the server lists none as
	// well, for its public clients), and no secret stored: refused before
	// the browser opens.
	pages, browserLog := h.signedInPages(), func() string { l, _ := os.ReadFile(h.browser); return string(l) }
	opened := browserLog()
	r := h.run("", "login", "confx", "--timeout", "90s")
	if r.code != 3 || !strings.Contains(r.stderr, "tokentray secret confx") {
		t.Fatalf("login confx without its secret: exit %d, %q; want 3 and the hint", r.code, r.stderr)
	}
	if browserLog() != opened {
		t.Fatal("the browser was opened for a sign-in that could not succeed")
	}
	// The confidential client with its secret: the method chosen from the
	// server's list is client_secret_basic, the one it is registered with.
	h.must("e2e-basic-secret-0123456789\n", "secret", "conf")
	h.must("", "login", "conf", "--timeout", "90s")
	for deadline := time.Now().Add(20 * time.Second); h.signedInPages() <= pages; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the browser did not finish the second sign-in:\n%s", browserLog())
		}
	}
	if s := h.statusOf("conf"); s["auth_method"] != "client_secret_basic" || s["usable"] != true {
		t.Fatalf("conf: %v", s)
	}
	h.must("", "refresh", "conf")

	// issuer with auth_url and token_url set (the harness's connection):
	// the metadata is read all the same, and names the device endpoint.
	h.must(clientSecret+"\n", "secret", "e2e")
	r = h.run("", "login", "e2e", "--device", "--timeout", "2s")
	if !strings.Contains(r.stderr, "enter the code") || strings.Contains(r.stderr, "no device sign-in") {
		t.Fatalf("login e2e --device: exit %d, %q; want the code shown", r.code, r.stderr)
	}
	if errs := h.events.errors(); len(errs) > 0 {
		t.Fatalf("server errors: %v", errs)
	}
}

// Agents that ask a running tokentray for a token valid 20 s longer, 200 of
// them over 5 s starting 11 s into a 30 s token, cost the provider exactly
// one refresh: the first window the token cannot cover refreshes; the
// new token covers every later one, and each promise moves tokentray's own
// refresh instead of costing another. Every token handed out lasts its
// window.
func TestABurstOfPromisesCostsOneRefresh(t *testing.T) {
	h := setup(t)
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	h.waitBrowser("callback page: signed-in")
	sock := h.startServe(t)
	at := obtained(t, "e2e")
	h.sync()
	before := h.events.count("grant.success", "refresh_token")

	api := socketClient(sock)
	const n, spread, window = 200, 5 * time.Second, 20 * time.Second
	errs := make([]string, n)
	spreadCalls(n, at.Add(11*time.Second), spread, func(i int) {
		asked := time.Now()
		resp, err := api.Get("http://tokentray/v1/connections/e2e/token?min_valid=20s")
		if err != nil {
			errs[i] = err.Error()
			return
		}
		defer resp.Body.Close()
		var tok struct {
			ExpiresAt time.Time `json:"expires_at"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
			errs[i] = fmt.Sprintf("HTTP %d, %v", resp.StatusCode, err)
		} else if tok.ExpiresAt.Before(asked.Add(window)) {
			errs[i] = fmt.Sprintf("a token that expires %s after it was asked for", tok.ExpiresAt.Sub(asked))
		}
	})
	for i, e := range errs {
		if e != "" {
			t.Fatalf("caller %d: %s", i, e)
		}
	}
	h.sync()
	if got := h.events.count("grant.success", "refresh_token") - before; got != 1 {
		t.Fatalf("%d callers over %s cost %d refreshes at the provider, want exactly 1", n, spread, got)
	}
}

// The same with no tokentray running: each caller is a process of its own
// that takes the connection's lock, and the promises are kept with the
// tokens. 50 processes over 4 s, each asking for 20 s: one refresh. A
// process is slower to start than a request to a running tokentray (over
// 5 s, the last window would end 0.5 s before the limit of a 30 s token),
// so the count is checked where every process's window, as measured from
// its end, lies within the limit of the refreshed token; a machine too
// busy for that says so.
func TestABurstOfPromisesCostsOneRefreshWithNoTokentrayRunning(t *testing.T) {
	h := setup(t)
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	h.waitBrowser("callback page: signed-in")
	at := obtained(t, "e2e")
	h.sync()
	before := h.events.count("grant.success", "refresh_token")

	const n, spread, window = 50, 4 * time.Second, 20 * time.Second
	start := at.Add(11 * time.Second)
	ends := make([]time.Time, n)
	results := make([]result, n)
	spreadCalls(n, start, spread, func(i int) {
		results[i] = h.runQuiet("", "token", "e2e", "--min-valid", "20s")
		ends[i] = time.Now()
	})
	for i, r := range results {
		if r.code != 0 || strings.TrimSpace(r.stdout) == "" {
			t.Fatalf("process %d: exit %d, %q", i, r.code, r.stderr)
		}
	}
	h.sync()
	got := h.events.count("grant.success", "refresh_token") - before
	// The first refresh's token came after the burst began: its limit
	// (expiry less 3 × lifetime/20) is no earlier than this.
	limit := start.Add(lifetime - 3*lifetime/20)
	last := ends[0]
	for _, e := range ends {
		if e.After(last) {
			last = e
		}
	}
	if last.Add(window).After(limit) {
		t.Logf("a busy machine: the last process ended %s after the burst began, its window past the refreshed token's limit by %s; %d refreshes (1 unless that)", last.Sub(start).Round(time.Millisecond), last.Add(window).Sub(limit).Round(time.Millisecond), got)
		return
	}
	if got != 1 {
		t.Fatalf("%d processes over %s cost %d refreshes at the provider, want exactly 1", n, spread, got)
	}
}
