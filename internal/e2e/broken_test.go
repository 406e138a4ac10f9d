//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A typo in one table leaves every other connection working: `serve`
// starts with the good connection and hands out its tokens, lists the
// broken one with its problems, refuses it by name (exit 2), alerts once;
// fixing the table applies without a restart.
func TestOneBrokenTableStopsNoOther(t *testing.T) {
	h := setup(t)
	h.useFileStore()
	h.must(clientSecret+"\n", "secret", "e2e")
	h.must("", "login", "e2e", "--timeout", "90s")
	h.waitBrowser("callback page: signed-in")

	cfgPath := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml")
	good, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	alerts := filepath.Join(h.dir, "alerts.jsonl")
	half := "\n[[connection]]\nname = \"half\"\nprovider = \"generic\"\nclient_id = \"c\"\n"
	write := func(tables string) {
		text := "on_alert = \"cat >> '" + alerts + "'\"\n" + string(good) + tables
		if err := os.WriteFile(cfgPath+".new", []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfgPath+".new", cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	write(half)
	// With nothing running, as a cron job after a reboot would.
	if r := h.run("", "token", "half"); r.code != 2 || !strings.Contains(r.stderr, "redirect_uri: missing") {
		t.Fatalf("token half, nothing running: exit %d, %q", r.code, r.stderr)
	}
	if tok := strings.TrimSpace(h.must("", "token", "e2e").stdout); tok == "" {
		t.Fatal("no token for the good connection, nothing running")
	}
	h.startServe(t)

	if tok := strings.TrimSpace(h.must("", "token", "e2e").stdout); tok == "" {
		t.Fatal("no token for the good connection")
	}
	r := h.run("", "token", "half")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "redirect_uri: missing") || !strings.Contains(r.stderr, "auth_url: missing") {
		t.Fatalf("token half: exit %d, %q; want 2 with its problems", r.code, r.stderr)
	}
	if r := h.must("", "status"); !strings.Contains(r.stdout, "invalid_config") || !strings.Contains(r.stdout, "redirect_uri: missing") {
		t.Fatalf("status:\n%s", r.stdout)
	}
	state := func() map[string]map[string]any {
		var list []map[string]any
		if err := json.Unmarshal([]byte(h.must("", "status", "--json").stdout), &list); err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]any{}
		for _, c := range list {
			out[c["name"].(string)] = c
		}
		return out
	}
	if s := state(); s["e2e"]["usable"] != true || s["half"]["state"] != "invalid_config" {
		t.Fatalf("status --json: %v", s)
	} else if p, _ := s["half"]["problems"].(map[string]any); p["redirect_uri"] == nil || p["auth_url"] == nil {
		t.Fatalf("half's problems by key: %v", s["half"]["problems"])
	}
	told := func() []string {
		b, _ := os.ReadFile(alerts)
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.Contains(l, `"kind":"invalid_config"`) {
				lines = append(lines, l)
			}
		}
		return lines
	}
	for deadline := time.Now().Add(30 * time.Second); len(told()) == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if a := told(); len(a) != 1 || !strings.Contains(a[0], `"connection":"half"`) {
		t.Fatalf("alerts: %q; want one for half", a)
	}

	// Fixed by hand while serve runs: it is a connection like the others.
	fixed := strings.Replace(half, "client_id = \"c\"\n", "client_id = \"c\"\nredirect_uri = \"http://localhost:8799/callback\"\nauth_url = \"https://idp.example.com/authorize\"\ntoken_url = \"https://idp.example.com/token\"\n", 1)
	write(fixed)
	for deadline := time.Now().Add(30 * time.Second); state()["half"]["state"] != "disconnected"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the fixed table was not applied: %v", state()["half"])
		}
	}
	if tok := strings.TrimSpace(h.must("", "token", "e2e").stdout); tok == "" {
		t.Fatal("no token for the good connection after the fix")
	}
	if a := told(); len(a) != 1 {
		t.Fatalf("alerts after the fix: %q", a)
	}
}
