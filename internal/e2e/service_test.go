//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const serviceSecret = "e2e-service-secret-9876543210"

// A client-credentials connection against oidc-provider: tokens without a
// browser or a refresh token, fetched again on demand and when due, shown by
// status like any other connection.
func TestClientCredentialsConnection(t *testing.T) {
	h := setup(t)
	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	b, _ := os.ReadFile(cfgPath)
	base := strings.TrimSuffix(strings.Split(strings.Split(string(b), `token_url = "`)[1], `"`)[0], "/token")
	cfg := string(b) + `
[[connection]]
name = "e2e-service"
provider = "generic"
grant = "client_credentials"
client_id = "tokentray-e2e-service"
token_endpoint_auth_method = "client_secret_post"
token_url = "` + base + `/token"
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(cfgPath, b, 0o600) })

	if r := h.run("", "token", "e2e-service"); r.code != 3 || !strings.Contains(r.stderr, "tokentray secret e2e-service") || strings.Contains(r.stderr, "login") {
		t.Fatalf("token without a client secret: exit %d, want 3 and a hint to set the secret:\n%s", r.code, r.stderr)
	}
	h.must(serviceSecret+"\n", "secret", "e2e-service")

	first := strings.TrimSpace(h.must("", "token", "e2e-service").stdout)
	if h.sync(); first == "" || h.events.count("grant.success", "client_credentials") != 1 {
		t.Fatalf("the first token: %q, %d client-credentials grants", first, h.events.count("grant.success", "client_credentials"))
	}
	item := keyringItem(t, "e2e-service")
	if item["access_token"] != first || item["refresh_token"] != nil && item["refresh_token"] != "" {
		t.Fatalf("keyring item: access token stored %t, refresh token %v (want none)", item["access_token"] == first, item["refresh_token"])
	}
	got := obtained(t, "e2e-service")
	again := strings.TrimSpace(h.must("", "token", "e2e-service").stdout)
	if h.sync(); kept(t, got) && (again != first || h.events.count("grant.success", "client_credentials") != 1) {
		t.Fatal("a second process fetched a new token although the first was still fresh")
	}
	if h.browserCount("open ") != 0 {
		t.Fatal("a service account opened a browser")
	}

	grants := h.events.count("grant.success", "client_credentials")
	h.must("", "refresh", "e2e-service")
	if h.sync(); h.events.count("grant.success", "client_credentials") != grants+1 {
		t.Fatalf("refresh made %d grants, want 1", h.events.count("grant.success", "client_credentials")-grants)
	}
	if next := strings.TrimSpace(h.must("", "token", "e2e-service").stdout); next == first {
		t.Fatal("refresh did not fetch a new access token")
	}

	var st []struct {
		Name   string `json:"name"`
		State  string `json:"state"`
		Usable bool   `json:"usable"`
		Grant  string `json:"grant"`
	}
	if err := json.Unmarshal([]byte(h.must("", "status", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range st {
		if c.Name == "e2e-service" {
			found = true
			if c.State != "connected" || !c.Usable {
				t.Fatalf("status of the service account: %+v", c)
			}
		}
	}
	if !found {
		t.Fatal("status does not list the service account")
	}

	// A wrong secret is the provider's invalid_client: a person must act.
	h.must("not-the-secret\n", "secret", "e2e-service")
	r := h.run("", "refresh", "e2e-service")
	if r.code != 3 || !strings.Contains(r.stderr, "invalid_client") || strings.Contains(r.stderr, "sign") || strings.Contains(r.stderr, "authorize ,") {
		t.Fatalf("refresh with a wrong secret: exit %d, want 3 naming invalid_client:\n%s", r.code, r.stderr)
	}
}
