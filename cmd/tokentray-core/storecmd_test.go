package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// The file store of the machine before, moved into the configured store
// (the keyring here) by `store copy --from file`, with no flag but that.
func TestStoreCopyMovesAConnectionIntoTheConfiguredStore(t *testing.T) {
	c := newCLI(t)
	file := auth.NewMemoryStore()
	c.local = map[string]auth.Store{"file": file}
	_ = c.store.DeleteClientSecret(context.Background(), "p")
	_ = file.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-file", TokenType: "bearer",
		RefreshToken: "rt-file", ObtainedAt: now.Add(-10 * time.Minute), Lifetime: 90 * time.Minute}, auth.AnyGeneration)
	_ = file.SetClientSecret(context.Background(), "p", "secret")

	code, out, errOut := c.run("", "store", "copy", "--from", "file")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "p: moved its tokens and client secret from the file store to the keyring") {
		t.Fatalf("stderr %q", errOut)
	}
	if _, err := file.LoadTokens(context.Background(), "p"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("the file store still holds tokens (%v)", err)
	}
	// The moved connection works without a sign-in.
	code, out, errOut = c.run("", "token", "p")
	if code != 0 || out != "at-file\n" {
		t.Fatalf("token after the move: exit %d, %q, %q", code, out, errOut)
	}

	// Nothing left to move is no failure.
	code, _, errOut = c.run("", "store", "copy", "--from", "file", "p")
	if code != 0 || !strings.Contains(errOut, "p: nothing stored in the file store") {
		t.Fatalf("second run: exit %d, %q", code, errOut)
	}
}

// Moving out of the configured store says what must change in the config.
func TestStoreCopyToAnotherStoreSaysToChangeTheConfig(t *testing.T) {
	c := newCLI(t)
	c.signedIn(now.Add(-10 * time.Minute))
	file := auth.NewMemoryStore()
	c.local = map[string]auth.Store{"file": file}

	code, _, errOut := c.run("", "store", "copy", "--to", "file")
	if code != 0 || !strings.Contains(errOut, `Set store = "file" in config.toml before tokentray starts again`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if ts, err := file.LoadTokens(context.Background(), "p"); err != nil || ts.RefreshToken != "rt-old" {
		t.Fatalf("file store: %v, %v", ts, err)
	}
	if _, err := c.store.LoadTokens(context.Background(), "p"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("the configured store still holds tokens (%v)", err)
	}
}

// Signed in on both sides: nothing is chosen for the person, nothing
// changes, and the message says how to choose.
func TestStoreCopyNeverOverwritesTokens(t *testing.T) {
	c := newCLI(t)
	c.signedIn(now.Add(-10 * time.Minute))
	file := auth.NewMemoryStore()
	c.local = map[string]auth.Store{"file": file}
	_ = file.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-file", RefreshToken: "rt-file",
		ObtainedAt: now.Add(-3 * time.Hour), Lifetime: 90 * time.Minute}, auth.AnyGeneration)

	code, _, errOut := c.run("", "store", "copy", "--from", "file")
	if code != 1 {
		t.Fatalf("exit %d; want 1. stderr %q", code, errOut)
	}
	for _, want := range []string{"p: not moved, nothing changed: the keyring already holds tokens of its own", "tokentray logout p --local-only", "1 of 1 connections not moved"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("stderr %q; want %q", errOut, want)
		}
	}
	if ts, _ := file.LoadTokens(context.Background(), "p"); ts == nil || ts.RefreshToken != "rt-file" {
		t.Fatal("the file store's tokens changed")
	}
	if ts, _ := c.store.LoadTokens(context.Background(), "p"); ts == nil || ts.RefreshToken != "rt-old" {
		t.Fatal("the keyring's tokens changed")
	}
}

func TestStoreCopyUsageErrors(t *testing.T) {
	c := newCLI(t)
	c.local = map[string]auth.Store{"file": auth.NewMemoryStore()}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"store", "copy"}, "needs one of --from KIND"},
		{[]string{"store", "copy", "--from", "file", "--to", "file"}, "needs one of --from KIND"},
		{[]string{"store", "copy", "--from", "keyring"}, "the config already chooses the keyring"},
		{[]string{"store", "copy", "--from", "postgres"}, "can only be the configured one"},
		{[]string{"store", "copy", "--from", "vault"}, `unknown store "vault"`},
		{[]string{"store", "copy", "--from", "file", "nope"}, "nope is not a connection of the config"},
		{[]string{"store"}, "store needs a command"},
	} {
		code, _, errOut := c.run("", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}
