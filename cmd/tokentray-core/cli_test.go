package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

var now = time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)

// cli runs tokentray commands against a config, a memory store and a token
// endpoint that the test controls.
type cli struct {
	t        *testing.T
	store    *auth.MemoryStore
	clock    *fakeclock.Clock
	endpoint *httptest.Server
	status   atomic.Int32 // the token endpoint's answer: 200 or an error status
	refresh  atomic.Int32
	cfgText  string
	// local are this machine's other stores (store copy), by kind.
	local map[string]auth.Store
}

func newCLI(t *testing.T) *cli {
	c := &cli{t: t, store: auth.NewMemoryStore(), clock: fakeclock.New(now)}
	c.status.Store(200)
	c.endpoint = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.refresh.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if s := int(c.status.Load()); s != 200 {
			w.WriteHeader(s)
			if s == 400 {
				fmt.Fprint(w, `{"error":"invalid_grant"}`)
			}
			return
		}
		fmt.Fprintf(w, `{"access_token":"at-new-%d","token_type":"bearer","expires_in":5400,"refresh_token":"rt-new"}`, c.refresh.Load())
	}))
	t.Cleanup(c.endpoint.Close)
	c.cfgText = fmt.Sprintf(`[[connection]]
name = "p"
provider = "procore"
environment = "sandbox"
client_id = "id"
redirect_uri = "http://localhost:9876/callback"
token_url = "%s/token"
`, c.endpoint.URL)
	_ = c.store.SetClientSecret(context.Background(), "p", "secret")
	return c
}

func (c *cli) signedIn(obtained time.Time) {
	_ = c.store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-old", TokenType: "bearer",
		RefreshToken: "rt-old", ObtainedAt: obtained, Lifetime: 90 * time.Minute}, auth.AnyGeneration)
}

func (c *cli) run(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	io := streams{in: strings.NewReader(stdin), out: &out, err: &errb}
	mk := func(_ context.Context, _ globalOptions, io streams) (*env, error) {
		cfg, err := config.Parse("config.toml", []byte(c.cfgText))
		if err != nil {
			return nil, err
		}
		return &env{cfg: cfg, store: c.store, locker: &auth.ProcessLocker{}, clock: c.clock,
			log: slog.New(slog.DiscardHandler), streams: io, localStores: c.local}, nil
	}
	code := run(context.Background(), args, io, deps{env: mk})
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(c *cli)
		args    []string
		code    int
		errHas  string
		outWant string
		stdin   string
	}{
		{"a fresh token prints only the token", func(c *cli) { c.signedIn(now) }, []string{"token", "p"}, 0, "", "at-old\n", ""},
		{"a token past its refresh point is refreshed first", func(c *cli) { c.signedIn(now.Add(-80 * time.Minute)) }, []string{"token", "p"}, 0, "", "at-new-1\n", ""},
		{"not signed in is exit 3 with the command to run", func(*cli) {}, []string{"token", "p"}, 3, "tokentray login p", "", ""},
		{"a dead refresh token is exit 3", func(c *cli) { c.signedIn(now.Add(-100 * time.Minute)); c.status.Store(400) }, []string{"token", "p"}, 3, "invalid_grant", "", ""},
		{"an unreachable provider and an expired token is exit 4", func(c *cli) { c.signedIn(now.Add(-100 * time.Minute)); c.status.Store(503) }, []string{"token", "p"}, 4, "HTTP 503", "", ""},
		{"an unreachable provider with a valid token still prints it", func(c *cli) { c.signedIn(now.Add(-80 * time.Minute)); c.status.Store(503) }, []string{"token", "p"}, 0, "", "at-old\n", ""},
		{"during an outage the held token is printed with a warning on stderr", func(c *cli) { c.signedIn(now.Add(-85 * time.Minute)); c.status.Store(503) }, []string{"token", "p"}, 0, "warning: p was not refreshed (refresh failed: HTTP 503", "at-old\n", ""},
		{"an explicit min-valid the held token cannot keep during an outage is exit 4", func(c *cli) { c.signedIn(now.Add(-85 * time.Minute)); c.status.Store(503) }, []string{"token", "p", "--min-valid", "6m"}, 4, "HTTP 503", "", ""},
		{"a min-valid longer than the lifetime is a usage error naming it", func(c *cli) { c.signedIn(now) }, []string{"token", "p", "--min-valid", "2h"}, 2, "valid for 1h30m0s", "", ""},
		{"a value of the wrong type in the config is exit 2 with the fix", func(c *cli) { c.cfgText += "scopes = 42\n" }, []string{"token", "p"}, 2, `connection "p": scopes`, "", ""},
		{"a refused client is exit 3 saying how to set the secret", func(c *cli) { c.signedIn(now.Add(-80 * time.Minute)); c.status.Store(401) }, []string{"token", "p", "--min-valid", "15m"}, 3, "tokentray secret p", "", ""},
		{"an unknown connection is a usage error listing the names", func(*cli) {}, []string{"token", "nope"}, 2, "configured: p", "", ""},
		{"a missing name is a usage error", func(*cli) {}, []string{"token"}, 2, "exactly one connection name", "", ""},
		{"an unknown flag is a usage error", func(*cli) {}, []string{"token", "p", "--bogus"}, 2, "unknown flag", "", ""},
		{"a bad duration is a usage error", func(*cli) {}, []string{"token", "p", "--min-valid", "soon"}, 2, "invalid argument", "", ""},
		{"a bad config is exit 2 naming the field", func(c *cli) { c.cfgText = strings.Replace(c.cfgText, "sandbox", "staging", 1) }, []string{"status"}, 2, "environment", "", ""},
		{"no secret on stdin says how to pipe one", func(*cli) {}, []string{"secret", "p"}, 2, "no secret on stdin", "", ""},
		{"an empty secret is refused", func(*cli) {}, []string{"secret", "p"}, 2, "empty", "", "\n"},
		{"a secret with stray spaces is refused", func(*cli) {}, []string{"secret", "p"}, 2, "spaces", "", " abc \n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t)
			tc.setup(c)
			code, out, errs := c.run(tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errs)
			}
			if !strings.Contains(errs, tc.errHas) {
				t.Fatalf("stderr %q lacks %q", errs, tc.errHas)
			}
			if out != tc.outWant {
				t.Fatalf("stdout %q, want %q", out, tc.outWant)
			}
		})
	}
}

func TestTokenJSON(t *testing.T) {
	c := newCLI(t)
	c.signedIn(now)
	code, out, _ := c.run("", "token", "p", "--json")
	if code != 0 {
		t.Fatal(code)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"access_token": "at-old", "token_type": "bearer", "expires_at": "2026-11-23T03:30:00Z",
		"expires_in": float64(5400), "api_base": "https://sandbox.procore.com", "provider": "procore"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, leaked := got["refresh_token"]; leaked || len(got) != len(want) {
		t.Fatalf("unexpected fields: %v", got)
	}
}

func TestStatus(t *testing.T) {
	c := newCLI(t)
	c.signedIn(now.Add(-18 * time.Minute))
	code, out, _ := c.run("", "status")
	if code != 0 || !strings.Contains(out, "procore/sandbox") || !strings.Contains(out, "1 h 12 m left") || !strings.Contains(out, "in 54 m 00 s") {
		t.Fatalf("status (exit %d):\n%s", code, out)
	}
	code, out, _ = c.run("", "status", "--json")
	var all []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &all) != nil || len(all) != 1 || all[0]["state"] != "connected" || all[0]["usable"] != true {
		t.Fatalf("status --json:\n%s", out)
	}
	if strings.Contains(out, "at-old") || strings.Contains(out, "rt-old") {
		t.Fatal("status printed a token")
	}
}

func TestSecretGoesToTheStoreOnly(t *testing.T) {
	c := newCLI(t)
	code, out, errs := c.run("n3w-s3cret\n", "secret", "p")
	if code != 0 || out != "" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errs)
	}
	if s, _ := c.store.ClientSecret(context.Background(), "p"); s.Reveal() != "n3w-s3cret" {
		t.Fatalf("stored %q", s.Reveal())
	}
	if strings.Contains(errs, "n3w-s3cret") {
		t.Fatal("the secret was echoed")
	}
}

func TestLogoutLocalOnly(t *testing.T) {
	c := newCLI(t)
	c.signedIn(now)
	if code, _, errs := c.run("", "logout", "p", "--local-only"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if code, _, _ := c.run("", "token", "p"); code != 3 {
		t.Fatalf("after logout: exit %d, want 3", code)
	}
}

func TestExecPutsTheTokenInTheEnvironment(t *testing.T) {
	c := newCLI(t)
	c.signedIn(now)
	code, out, errs := c.run("", "exec", "p", "--", "sh", "-c", `printf '%s %s %s' "$PROCORE_ACCESS_TOKEN" "$PROCORE_API_BASE" "$TOKENTRAY_CONNECTION"; exit 7`)
	if code != 7 || out != "at-old https://sandbox.procore.com p" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	c.cfgText += "token_env = \"MY_TOKEN\"\n"
	if code, out, _ := c.run("", "exec", "p", "--", "sh", "-c", `printf '%s %s' "$MY_TOKEN" "$MY_API_BASE"`); code != 0 || out != "at-old https://sandbox.procore.com" {
		t.Fatalf("token_env: exit %d, %q", code, out)
	}
	for _, args := range [][]string{{"exec", "p", "sh"}, {"exec", "p", "--"}, {"exec", "--", "sh"}} {
		if code, _, errs := c.run("", args...); code != 2 || !strings.Contains(errs, "tokentray exec NAME -- COMMAND") {
			t.Fatalf("%v: exit %d %q", args, code, errs)
		}
	}
	if code, _, errs := c.run("", "exec", "p", "--", "no-such-command-xyz"); code != 2 || !strings.Contains(errs, "cannot run") {
		t.Fatalf("missing command: exit %d %q", code, errs)
	}
}

func TestExportFileFollowsRefreshAndSignOut(t *testing.T) {
	c := newCLI(t)
	path := filepath.Join(t.TempDir(), "procore_token.json")
	c.cfgText += fmt.Sprintf("export_file = %q\n", path)
	c.signedIn(now.Add(-80 * time.Minute)) // past the refresh point
	if code, out, errs := c.run("", "token", "p"); code != 0 || out != "at-new-1\n" {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"access_token": "at-new-1"`) || strings.Contains(string(b), "rt-") {
		t.Fatalf("export after refresh: %v\n%s", err, b)
	}
	if code, _, errs := c.run("", "logout", "p", "--local-only"); code != 0 {
		t.Fatalf("logout: %s", errs)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("the export file outlived the sign-out")
	}
}
