package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/demoprovider"
)

// consentBrowser plays a person who clicks "Sign in as demo-user" (or Deny).
func consentBrowser(t *testing.T, decision string) func(string) error {
	return func(authURL string) error {
		go func() {
			if err := demoprovider.Consent(authURL, decision); err != nil {
				t.Error(err)
			}
		}()
		return nil
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDemoSignsInAndRefreshesWithRotation(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // its local API
	var out syncBuffer
	io := streams{in: strings.NewReader(""), out: &out, err: &out}
	code := run(context.Background(), []string{"demo", "--terminal", "--lifetime", "2s", "--until-refreshes", "2"}, io,
		deps{env: noEnv(t), openBrowser: consentBrowser(t, "allow")})
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	got := out.String()
	for _, want := range []string{"signed in", "refreshed: new access token", "Done after 2 refreshes; the demo server saw 2 refresh requests"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "demo-at-") || strings.Contains(got, "demo-rt-") {
		t.Fatal("a token was printed")
	}
}

func TestDemoDeniedSignInSaysSo(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // the demo's local API
	var out syncBuffer
	io := streams{in: strings.NewReader(""), out: &out, err: &out}
	code := run(context.Background(), []string{"demo", "--terminal"}, io, deps{env: noEnv(t), openBrowser: consentBrowser(t, "deny")})
	if code == 0 || !strings.Contains(out.String(), "access_denied") {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
}

func TestDemoBrokenGrantNeedsSignInAndEnterSignsInAgain(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // the demo's local API
	var out syncBuffer
	pr, pw := io.Pipe()
	defer pw.Close()
	streams := streams{in: pr, out: &out, err: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--terminal", "--lifetime", "2s", "--break-after", "100ms", "--until-refreshes", "1"}, streams,
			deps{env: noEnv(t), openBrowser: consentBrowser(t, "allow")})
	}()
	waitFor(t, &out, "press Enter to sign in again")
	fmt.Fprintln(pw)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out.String())
		}
	case <-ctx.Done():
		t.Fatalf("demo did not finish:\n%s", out.String())
	}
	got := out.String()
	for _, want := range []string{"revoked the grant", "needs_reauth", "invalid_grant", "Done after 1 refreshes"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// --break-after counts from the sign-in: it is seen connected first.
	if i, j := strings.Index(got, "signed in"), strings.Index(got, "revoked the grant"); i < 0 || j < i {
		t.Errorf("the grant was revoked before the sign-in:\n%s", got)
	}
}

func waitFor(t *testing.T, out *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noEnv fails the test if a command needs the config: the demo must not.
func noEnv(t *testing.T) envFactory {
	return func(context.Context, globalOptions, streams) (*env, error) {
		t.Fatal("the demo must not read the config or the keyring")
		return nil, nil
	}
}

// The terminal demo exists to show that scripts get fresh tokens: a second
// terminal's plain `tokentray token demo` asks it, although there is no
// config file at all.
func TestTheTerminalDemoServesScripts(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", home) // no config.toml there
	t.Setenv("HOME", home)
	var out syncBuffer
	io := streams{in: strings.NewReader(""), out: &out, err: &out}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--terminal", "--lifetime", "30s"}, io, deps{env: noEnv(t), openBrowser: consentBrowser(t, "allow")})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "signed in") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not sign in:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var tokOut, tokErr bytes.Buffer
	code := run(context.Background(), []string{"token", "demo"}, streams{in: strings.NewReader(""), out: &tokOut, err: &tokErr}, deps{env: newEnv})
	if code != 0 || len(strings.TrimSpace(tokOut.String())) < 10 {
		t.Fatalf("token demo: exit %d, stdout %q, stderr %q", code, tokOut.String(), tokErr.String())
	}
	if tokErr.String() != "" {
		t.Fatalf("stderr %q: a missing config file is normal next to the demo", tokErr.String())
	}
	// A half-edited file does not break it either: the command asks the
	// running tokentray and never reads the file (the resident process
	// reports a file it cannot apply, when it changes).
	if err := os.MkdirAll(home+"/tokentray", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(home+"/tokentray/config.toml", []byte("[[connection]]\nname = \"half"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokOut.Reset()
	tokErr.Reset()
	code = run(context.Background(), []string{"token", "demo"}, streams{in: strings.NewReader(""), out: &tokOut, err: &tokErr}, deps{env: newEnv})
	if code != 0 || tokErr.String() != "" {
		t.Fatalf("with a broken file: exit %d, stderr %q", code, tokErr.String())
	}
	cancel()
	<-done
}
