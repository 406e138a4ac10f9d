package file

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

var ctx = context.Background()

func tokens(rt string) *auth.TokenSet {
	return &auth.TokenSet{AccessToken: "at-" + auth.Secret(rt), TokenType: "bearer", RefreshToken: auth.Secret(rt),
		ObtainedAt: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), Lifetime: time.Hour}
}

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestRoundTripAndNothingStored(t *testing.T) {
	dir := filepath.Join(tempdir.New(t), "state", "tokentray")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Windows has no mode bits: the profile's ACL keeps the files private.
	unix := runtime.GOOS != "windows"
	if info, err := os.Stat(dir); err != nil || unix && info.Mode().Perm() != 0o700 {
		t.Fatalf("the directory: %v %v, want 0700", info.Mode(), err)
	}
	if _, err := s.LoadTokens(ctx, "p"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("nothing stored yet: %v", err)
	}
	if _, err := s.ClientSecret(ctx, "p"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("no secret yet: %v", err)
	}
	if err := s.SaveTokens(ctx, "p", tokens("rt-1"), auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClientSecret(ctx, "p", "s3cret"); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadTokens(ctx, "p")
	if err != nil || got.RefreshToken != "rt-1" || got.AccessToken != "at-rt-1" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if sec, err := s.ClientSecret(ctx, "p"); err != nil || sec != "s3cret" {
		t.Fatalf("secret: %v", err)
	}
	for _, f := range []string{"p.tokens", "p.client-secret"} {
		if info, err := os.Stat(filepath.Join(dir, f)); err != nil || unix && info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want 0600", f, info.Mode(), err)
		}
	}
	if err := s.DeleteTokens(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTokens(ctx, "p"); err != nil {
		t.Fatalf("deleting what is gone: %v", err)
	}
	if _, err := s.LoadTokens(ctx, "p"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("after delete: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left in the directory: %v, want the secret only", entries)
	}
}

func TestNamesThatAreNotPlainFileNamesAreRefused(t *testing.T) {
	s, err := Open(filepath.Join(tempdir.New(t), "tokentray"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../p", ".hidden", "", "a/b", `a\b`, `..\p`} {
		if err := s.SaveTokens(ctx, name, tokens("x"), auth.AnyGeneration); err == nil {
			t.Errorf("%q was accepted as a connection's file name", name)
		}
	}
}

func TestSealedFiles(t *testing.T) {
	dir := filepath.Join(tempdir.New(t), "tokentray")
	s, err := Open(dir, key(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTokens(ctx, "p", tokens("rt-secret-value"), auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClientSecret(ctx, "p", "client-secret-value"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "p.tokens"))
	sec, _ := os.ReadFile(filepath.Join(dir, "p.client-secret"))
	if !bytes.HasPrefix(raw, []byte(sealedPrefix)) || bytes.Contains(raw, []byte("rt-secret-value")) || bytes.Contains(sec, []byte("client-secret-value")) {
		t.Fatalf("the files are not sealed: %q", raw)
	}
	if got, err := s.LoadTokens(ctx, "p"); err != nil || got.RefreshToken != "rt-secret-value" {
		t.Fatalf("sealed round trip: %v", err)
	}
	// Two writes of one value differ: a nonce of their own.
	_ = s.SaveTokens(ctx, "p", tokens("rt-secret-value"), auth.AnyGeneration)
	if again, _ := os.ReadFile(filepath.Join(dir, "p.tokens")); bytes.Equal(again, raw) {
		t.Fatal("two writes sealed alike: the nonce was reused")
	}

	wrong, _ := Open(dir, key(2))
	if _, err := wrong.LoadTokens(ctx, "p"); err == nil || !strings.Contains(err.Error(), "does not decrypt with this key") {
		t.Fatalf("another key: %v", err)
	}
	keyless, _ := Open(dir, nil)
	if _, err := keyless.LoadTokens(ctx, "p"); err == nil || !strings.Contains(err.Error(), "no key") || !strings.Contains(err.Error(), KeyCredential) {
		t.Fatalf("no key: %v", err)
	}
	if got, err := s.LoadTokens(ctx, "p"); err != nil || got.RefreshToken != "rt-secret-value" {
		t.Fatalf("the failed reads changed the file: %v", err)
	}

	// Another connection's file copied over this one's does not open.
	_ = s.SaveTokens(ctx, "q", tokens("rt-q"), auth.AnyGeneration)
	q, _ := os.ReadFile(filepath.Join(dir, "q.tokens"))
	if err := os.WriteFile(filepath.Join(dir, "p.tokens"), q, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadTokens(ctx, "p"); err == nil {
		t.Fatal("q's sealed tokens opened as p's")
	}

	// A file written before the key was given is read, and sealed when next written.
	if err := keyless.SaveTokens(ctx, "r", tokens("rt-r"), auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadTokens(ctx, "r"); err != nil || got.RefreshToken != "rt-r" {
		t.Fatalf("a plain file with a key: %v", err)
	}
	_ = s.SaveTokens(ctx, "r", tokens("rt-r2"), auth.AnyGeneration)
	if raw, _ := os.ReadFile(filepath.Join(dir, "r.tokens")); !bytes.HasPrefix(raw, []byte(sealedPrefix)) {
		t.Fatal("the plain file was not sealed at its next write")
	}

	if _, err := Open(dir, []byte("too short")); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("a short key: %v", err)
	}
}

// A crash between the temporary file and the rename leaves the old value in
// place and a temporary file that nothing reads; an old one is removed.
func TestACrashMidWriteLosesNothing(t *testing.T) {
	dir := filepath.Join(tempdir.New(t), "tokentray")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTokens(ctx, "p", tokens("rt-1"), auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, ".p.tokens.tmp-123")
	fresh := filepath.Join(dir, ".p.tokens.tmp-456")
	for _, f := range []string{half, fresh} {
		if err := os.WriteFile(f, []byte(`{"access_token":"at-2","refr`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(half, old, old); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadTokens(ctx, "p"); err != nil || got.RefreshToken != "rt-1" {
		t.Fatalf("after a cut write: %+v %v", got, err)
	}
	if _, err := Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(half); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the crash's leftover is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a write that may be under way in another process was removed: %v", err)
	}
}

func TestKeyFromCredentials(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	if k, err := KeyFromCredentials(); k != nil || err != nil {
		t.Fatalf("not a service: %v %v", k, err)
	}
	dir := tempdir.New(t)
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if k, err := KeyFromCredentials(); k != nil || err != nil {
		t.Fatalf("a service without the credential: %v %v", k, err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyCredential), key(7), 0o400); err != nil {
		t.Fatal(err)
	}
	if k, err := KeyFromCredentials(); !bytes.Equal(k, key(7)) || err != nil {
		t.Fatalf("the credential: %v", err)
	}
}
