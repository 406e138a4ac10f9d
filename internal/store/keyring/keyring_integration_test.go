//go:build keyring

// Run inside .ci/desktop-session: go test -tags keyring ./internal/store/keyring/
package keyring_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/keyring"
	"github.com/tokentray/tokentray/internal/store/storetest"
)

func TestRealKeyringKeepsLargeTokenSetsInChunks(t *testing.T) {
	s := realStore(t)
	s.Secrets.ChunkSize = 1000 // as on Windows and macOS, smaller
	ctx := context.Background()
	big := &auth.TokenSet{AccessToken: auth.Secret(strings.Repeat("eyJhbGciOi", 600)), RefreshToken: "rt-big", TokenType: "bearer",
		ObtainedAt: time.Now(), Lifetime: 90 * time.Minute}
	if err := s.SaveTokens(ctx, "chunky", big, auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadTokens(ctx, "chunky")
	if err != nil || got.AccessToken != big.AccessToken || got.RefreshToken != "rt-big" {
		t.Fatalf("round trip through the Secret Service: %v", err)
	}
	head, err := exec.Command("secret-tool", "lookup", "service", keyring.Service, "username", "chunky").Output()
	if err != nil || !strings.HasPrefix(string(head), "tokentray-chunked:v1:") {
		t.Fatalf("the main item should be a chunk header, got %.40q (%v)", head, err)
	}
	if err := s.DeleteTokens(ctx, "chunky"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadTokens(ctx, "chunky"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("after delete: %v", err)
	}
}

// TestKeyringStoppedMidRunLosesNothing stops gnome-keyring-daemon while a
// keeper runs, checks that every call fails fast with an error that says
// what to do and that no refresh is attempted, then restarts the daemon and
// finds the tokens intact.
func TestKeyringStoppedMidRunLosesNothing(t *testing.T) {
	s := realStore(t)
	r := signedIn(t, s)
	pid := secretsOwner(t)
	ctx := context.Background()

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop the keyring daemon: %v", err)
	}
	waitName(t, false)

	start := time.Now()
	_, err := s.LoadTokens(ctx, r.conn.Name)
	t.Logf("keyring read with the daemon stopped failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, keyring.ErrUnavailable) || !strings.Contains(err.Error(), "Secret Service") {
		t.Fatalf("want a clear 'keyring unavailable' error naming the Secret Service, got %v", err)
	}
	r.clock.Advance(80 * time.Minute)
	if err := r.k.Refresh(ctx); err == nil {
		t.Fatal("refresh succeeded without a keyring to save to")
	}
	if n := r.refreshes(); n != 0 {
		t.Fatalf("%d refreshes were sent while the keyring was down: the rotated token could not have been saved", n)
	}
	if st := r.k.Status(); st.State != auth.StateDegraded || st.Next == nil {
		t.Fatalf("status while the keyring is down: %+v", st)
	}

	restartKeyring(t)
	got, err := s.LoadTokens(ctx, r.conn.Name)
	if err != nil || got.RefreshToken != r.rt {
		t.Fatalf("after restarting the keyring: %v", err)
	}
	if err := r.k.Refresh(ctx); err != nil {
		t.Fatalf("refresh after the keyring came back: %v", err)
	}
	if n := r.refreshes(); n != 1 {
		t.Fatalf("%d refreshes after the keyring came back, want 1", n)
	}
	r.noReuse()
}

func waitName(t *testing.T, owned bool) {
	t.Helper()
	for range 100 {
		out, _ := exec.Command("dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
			"org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.secrets").Output()
		if strings.Contains(string(out), "boolean true") == owned {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("org.freedesktop.secrets owned=%t never happened", owned)
}

// restartKeyring starts a new unlocked daemon on the same keyring files. It
// outlives the test, for the tests after it; .ci/desktop-session stops
// whichever daemon owns the name when the session ends.
func restartKeyring(t *testing.T) {
	cmd := exec.Command("gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets")
	cmd.Stdin = strings.NewReader("tokentray-ci")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	waitName(t, true)
}

// The store contract on the real Secret Service: each run under a service
// name of its own, its items deleted afterwards.
func TestTheRealKeyringKeepsTheStoreContract(t *testing.T) {
	realStore(t) // inside the session, or a clear failure
	storetest.Run(t, func(t *testing.T) auth.Store {
		s := &keyring.Store{Secrets: keyring.NewItems(fmt.Sprintf("tokentray-storetest-%d", time.Now().UnixNano()))}
		s.Secrets.Timeout = 3 * time.Second
		t.Cleanup(func() {
			for _, name := range []string{"p", "a", "b", "none"} {
				_ = s.DeleteTokens(context.Background(), name)
				_ = s.DeleteClientSecret(context.Background(), name)
			}
		})
		return s
	})
}
