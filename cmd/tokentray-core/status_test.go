package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/store/keyring"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// unreadableStore fails every read of tokens, as the keyring does when it
// is unavailable; cause gives the store's error for a connection.
type unreadableStore struct {
	*auth.MemoryStore
	cause func(name string) error
}

func (s unreadableStore) LoadTokens(_ context.Context, name string) (*auth.TokenSet, error) {
	return nil, fmt.Errorf("read tokens of %s: %w", name, s.cause(name))
}

func runStatusOn(t *testing.T, store auth.Store, args ...string) (int, string, string) {
	t.Helper()
	var cfgText string
	for i, name := range []string{"a", "b"} {
		cfgText += fmt.Sprintf(`[[connection]]
name = %q
provider = "generic"
client_id = "id"
auth_url = "https://auth.example.com/authorize"
token_url = "https://auth.example.com/token"
redirect_uri = "http://localhost:%d/callback"
`, name, 8765+i)
	}
	var out, errb bytes.Buffer
	io := streams{in: strings.NewReader(""), out: &out, err: &errb}
	mk := func(_ context.Context, _ globalOptions, io streams) (*env, error) {
		cfg, err := config.Parse("config.toml", []byte(cfgText))
		if err != nil {
			return nil, err
		}
		return &env{cfg: cfg, store: store, locker: &auth.ProcessLocker{}, clock: fakeclock.New(now),
			log: slog.New(slog.DiscardHandler), streams: io}, nil
	}
	code := run(context.Background(), args, io, deps{env: mk})
	return code, out.String(), errb.String()
}

// A keyring that cannot be read is a failure (exit 1, README), not a
// status: status still prints every connection, and says a cause that all
// of them share once.
func TestStatusExitsOneWhenAStoreCannotBeRead(t *testing.T) {
	noBus := fmt.Errorf("%w: no Secret Service in this session: there is no D-Bus session bus", keyring.ErrUnavailable)
	shared := unreadableStore{auth.NewMemoryStore(), func(string) error { return noBus }}
	for _, args := range [][]string{{"status"}, {"status", "--json"}} {
		code, out, errs := runStatusOn(t, shared, args...)
		if code != apitype.ExitFailure {
			t.Fatalf("%v: exit %d, want %d; stderr: %s", args, code, apitype.ExitFailure, errs)
		}
		if n := strings.Count(errs, "no D-Bus session bus"); n != 1 || !strings.Contains(errs, "a, b") {
			t.Fatalf("%v: stderr says the shared cause %d times, want once naming both connections:\n%s", args, n, errs)
		}
		if args[len(args)-1] == "--json" {
			var all []map[string]any
			if err := json.Unmarshal([]byte(out), &all); err != nil || len(all) != 2 || all[1]["state"] != "unknown" || all[1]["last_error"] == "" {
				t.Fatalf("status --json must still list every connection: %v\n%s", err, out)
			}
		} else if !strings.Contains(out, "a ") || !strings.Contains(out, "b ") || !strings.Contains(out, "unknown") {
			t.Fatalf("status must still list every connection:\n%s", out)
		}
	}

	// Causes that differ are each said.
	own := unreadableStore{auth.NewMemoryStore(), func(name string) error {
		return fmt.Errorf("%w: read %q: the keyring is locked", keyring.ErrUnavailable, name)
	}}
	code, _, errs := runStatusOn(t, own, "status")
	if code != apitype.ExitFailure || !strings.Contains(errs, `read "a"`) || !strings.Contains(errs, `read "b"`) {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
}

func TestCommonCauseIgnoresTheBareSentinel(t *testing.T) {
	a := fmt.Errorf("read tokens of a: %w", fmt.Errorf("%w: read %q: locked", keyring.ErrUnavailable, "a"))
	b := fmt.Errorf("read tokens of b: %w", fmt.Errorf("%w: read %q: locked", keyring.ErrUnavailable, "b"))
	if c := commonCause([]error{a, b}); c != nil {
		t.Fatalf("common cause %q: only the category is shared", c)
	}
	if err := (&unreadStores{names: []string{"a", "b"}, errs: []error{a, b}}).err(); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("joined error %v lost its category (the exit code depends on it)", err)
	}
}

// A sign-out on a shared store signs every instance out: it says so, and
// which; on one machine it says "here".
func TestASignOutSaysWhereTheTokensWent(t *testing.T) {
	one := signedOutText("p", &apitype.SignedOut{Revoked: true})
	shared := signedOutText("p", &apitype.SignedOut{Connection: apitype.Connection{Status: apitype.Status{Shared: &apitype.Shared{Instance: "moby-1", Instances: []string{"moby-1", "moby-2"}}}},
		NotRevoked: "--local-only: the provider was not contacted"})
	if one != "Signed out of p: the provider revoked the refresh token, and the tokens are deleted here." {
		t.Errorf("one machine: %q", one)
	}
	if shared != "Signed out of p; nothing was revoked at the provider (--local-only: the provider was not contacted), and the tokens are deleted from the shared store, so every instance is signed out (moby-1, moby-2)." {
		t.Errorf("a shared store: %q", shared)
	}
}
