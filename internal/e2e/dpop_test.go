//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// A server of a high-security profile (FAPI, the AT Protocol), as
// oidc-provider plays it: the authorization request must be pushed first
// (RFC 9126) and the tokens are DPoP-bound (RFC 9449), with nonces the
// server changes. Signed in through the browser, refreshed, refused to a
// script as a bare token, and used through tokentray's proxy, which proves
// possession of the key with each call; a proof sent twice is refused.
func TestDPoPBoundTokensWithPushedAuthorizationRequests(t *testing.T) {
	h := setup(t)
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	b, _ := os.ReadFile(cfgPath)
	base := strings.TrimSuffix(strings.Split(strings.Split(string(b), `token_url = "`)[1], `"`)[0], "/token")
	redirect := strings.Split(strings.Split(string(b), `redirect_uri = "`)[1], `"`)[0]
	cfg := string(b) + `
[[connection]]
name = "e2e-dpop"
provider = "generic"
client_id = "tokentray-e2e-dpop"
redirect_uri = "` + redirect + `"
scopes = "openid offline_access api"
token_endpoint_auth_method = "client_secret_post"
auth_url = "` + base + `/auth"
token_url = "` + base + `/token"
par_url = "` + base + `/request"
api_base = "` + base + `"
check_url = "` + base + `/me"
dpop = true
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(cfgPath, b, 0o600)
		for _, item := range []string{"e2e-dpop", "e2e-dpop/client-secret"} {
			_ = exec.Command("secret-tool", "clear", "service", "tokentray", "username", item).Run()
		}
	})
	h.must("e2e-dpop-secret-0123456789\n", "secret", "e2e-dpop")
	h.must("", "login", "e2e-dpop")
	h.sync()
	if n := h.events.count("par.success", ""); n != 1 {
		t.Fatalf("%d pushed authorization requests, want 1", n)
	}
	item := keyringItem(t, "e2e-dpop")
	if item["token_type"] != "DPoP" || item["dpop_key"] == nil || item["dpop_key"] == "" {
		t.Fatalf("the kept tokens: type %v, a key kept: %t", item["token_type"], item["dpop_key"] != nil)
	}

	// A script gets no bare bound token: it is told to use the proxy.
	if r := h.run("", "token", "e2e-dpop"); r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "DPoP-bound") || !strings.Contains(r.stderr, "/api/") {
		t.Fatalf("token of a DPoP-bound connection: exit %d, want 2 and the proxy named:\n%s", r.code, r.stderr)
	}
	// Refreshes prove possession of the same key, with the server's nonce.
	for range 2 {
		h.must("", "refresh", "e2e-dpop")
	}
	if h.sync(); h.events.count("grant.success", "refresh_token") < 2 {
		t.Fatal("the DPoP-bound refresh token did not refresh")
	}
	if after := keyringItem(t, "e2e-dpop"); after["dpop_key"] != item["dpop_key"] {
		t.Fatal("the key changed at a refresh: the refresh token is bound to the first")
	}

	// Agents call the API through the running tokentray.
	sock := h.startServe(t)
	agent := socketClient(sock)
	for i := range 3 {
		resp, err := agent.Get("http://tokentray/v1/connections/e2e-dpop/api/me")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"sub"`) {
			t.Fatalf("call %d through the proxy: HTTP %d %s\n%v", i, resp.StatusCode, body, h.events.errors())
		}
	}
	h.sync()
	h.events.mu.Lock()
	proved := 0
	for _, e := range h.events.lines {
		if e["event"] == "api" && e["dpop"] == true && e["authorized"] == true {
			proved++
		}
	}
	h.events.mu.Unlock()
	if proved < 3 {
		t.Fatalf("%d API calls came with a DPoP proof, want every one of the 3", proved)
	}
	if errs := h.events.count("userinfo.error", ""); errs > 1 {
		// One refusal for the API's nonce is how a client learns it.
		t.Fatalf("%d refused API calls, want at most the one that asked for the nonce", errs)
	}

	// The server refuses a proof it has seen: each of tokentray's is new.
	item = keyringItem(t, "e2e-dpop")
	key, err := auth.ParseDPoPKey(auth.Secret(item["dpop_key"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	at := auth.Secret(item["access_token"].(string))
	me := base + "/me"
	call := func(proof string) (int, http.Header) {
		req, _ := http.NewRequest(http.MethodGet, me, nil)
		req.Header.Set("Authorization", "DPoP "+at.Reveal())
		req.Header.Set("DPoP", proof)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	p0, _ := key.Proof(http.MethodGet, me, "", at, time.Now())
	_, hdr := call(p0)
	p1, _ := key.Proof(http.MethodGet, me, hdr.Get("DPoP-Nonce"), at, time.Now())
	if status, _ := call(p1); status != http.StatusOK {
		t.Fatalf("a fresh proof with the nonce: HTTP %d", status)
	}
	replays := h.events.detailed("userinfo.error", "Replay")
	if status, hdr := call(p1); status != http.StatusUnauthorized {
		t.Fatalf("the same proof again: HTTP %d %s, want 401", status, hdr.Get("WWW-Authenticate"))
	}
	if h.sync(); h.events.detailed("userinfo.error", "Replay") != replays+1 {
		t.Fatalf("the second use of a proof was not refused as a replay: %v", h.events.errors())
	}
	log, _ := os.ReadFile(filepath.Join(h.dir, "serve.log"))
	if strings.Contains(string(log), at.Reveal()) || strings.Contains(string(log), item["dpop_key"].(string)) {
		t.Fatal("a token or the key is in serve's log")
	}
}
