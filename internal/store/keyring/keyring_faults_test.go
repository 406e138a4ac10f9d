//go:build keyring

// Run inside .ci/desktop-session: go test -tags keyring -run KeyringFault ./internal/store/keyring/
package keyring_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	dbus "github.com/godbus/dbus/v5"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/keyring"
)

const faultTimeout = 2 * time.Second

// faultRig is a signed-in keeper on the real Secret Service, whose keyring
// calls give up after faultTimeout.
func faultRig(t *testing.T) *rig {
	t.Helper()
	s := realStore(t)
	r := signedIn(t, s)
	s.Secrets.Timeout = faultTimeout
	return r
}

// secretsOwner is the pid of the process that owns org.freedesktop.secrets.
func secretsOwner(t *testing.T) int {
	t.Helper()
	conn, err := dbus.SessionBus()
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, "org.freedesktop.secrets").Store(&pid); err != nil {
		t.Fatalf("who owns the Secret Service: %v", err)
	}
	return int(pid)
}

// replaceKeyring stops the running daemon and starts an unlocked one on the
// same keyring files: how a locked keyring is unlocked without a prompt.
func replaceKeyring(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(secretsOwner(t), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitName(t, false)
	restartKeyring(t)
}

// checkFault asserts what every keyring fault must look like: a clear error
// within the timeout, scripts still served from memory before the refresh
// point, no refresh sent (its rotated token could not be saved), and a
// degraded connection that says what to do.
func checkFault(t *testing.T, r *rig, want string) {
	t.Helper()
	s := r.store
	ctx := context.Background()
	start := time.Now()
	_, err := s.LoadTokens(ctx, r.conn.Name)
	took := time.Since(start)
	t.Logf("keyring read failed after %s: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, keyring.ErrUnavailable) || !strings.Contains(err.Error(), want) {
		t.Fatalf("want an 'unavailable' error saying %q, got %v", want, err)
	}
	// Bounded by the timeout, not by the daemon: a busy machine may add
	// seconds, a call without a bound would never end.
	if took > faultTimeout+30*time.Second {
		t.Fatalf("the error took %s; the %s timeout did not bound it", took, faultTimeout)
	}
	// A valid token held in memory is handed out without asking the keyring:
	// with the keyring's timeout raised to ten minutes, an answer within the
	// test's minute means it was not asked.
	s.Secrets.Timeout = 10 * time.Minute
	held, cancel := context.WithTimeout(ctx, time.Minute)
	tok, err := r.k.Token(held, 0)
	waited := held.Err() != nil
	cancel()
	s.Secrets.Timeout = faultTimeout
	if err != nil || tok.AccessToken != r.at || waited {
		t.Fatalf("a script asking before the refresh point: %v (waited for the keyring: %t)", err, waited)
	}
	r.clock.Advance(80 * time.Minute)
	start = time.Now()
	if err := r.k.Refresh(ctx); err == nil {
		t.Fatal("refresh succeeded without a keyring")
	}
	t.Logf("refresh with the keyring failing gave up after %s", time.Since(start).Round(time.Millisecond))
	if n := r.refreshes(); n != 0 {
		t.Fatalf("%d refreshes were sent while the keyring failed", n)
	}
	if st := r.k.Status(); st.State != auth.StateDegraded || !strings.Contains(st.LastError, "keyring") || st.Next == nil {
		t.Fatalf("status: %s, %q, next %+v", st.State, st.LastError, st.Next)
	}
}

// recovered checks that once the keyring works again, the connection
// refreshes with the refresh token it had, which was never lost.
func recovered(t *testing.T, r *rig) {
	t.Helper()
	ctx := context.Background()
	got, err := r.store.LoadTokens(ctx, r.conn.Name)
	if err != nil || got.RefreshToken != r.rt {
		t.Fatalf("after the keyring came back: %v", err)
	}
	if err := r.k.Refresh(ctx); err != nil {
		t.Fatalf("refresh after the keyring came back: %v", err)
	}
	if st := r.k.Status(); st.State != auth.StateConnected || r.refreshes() != 1 {
		t.Fatalf("state %s and %d refreshes after recovery, want connected and 1", st.State, r.refreshes())
	}
	r.noReuse()
}

func TestKeyringFaultLocked(t *testing.T) {
	r := faultRig(t)
	conn, err := dbus.SessionBus()
	if err != nil {
		t.Fatal(err)
	}
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := conn.Object("org.freedesktop.secrets", "/org/freedesktop/secrets").Call("org.freedesktop.Secret.Service.Lock", 0,
		[]dbus.ObjectPath{"/org/freedesktop/secrets/collection/login"}).Store(&locked, &prompt); err != nil || len(locked) != 1 {
		t.Fatalf("lock the login collection: %v %v", locked, err)
	}
	checkFault(t, r, "locked")
	replaceKeyring(t)
	recovered(t, r)
}

func TestKeyringFaultHungService(t *testing.T) {
	r := faultRig(t)
	pid := secretsOwner(t)
	// A stopped daemon still owns its name: every call waits for an answer
	// that does not come, as with a hung Secret Service.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	checkFault(t, r, "no answer within")
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	recovered(t, r)
}

func TestKeyringFaultItemDeletedBehindTokentraysBack(t *testing.T) {
	r := faultRig(t)
	if out, err := exec.Command("secret-tool", "clear", "service", keyring.Service, "username", r.conn.Name).CombinedOutput(); err != nil {
		t.Fatalf("secret-tool clear: %v %s", err, out)
	}
	r.clock.Advance(80 * time.Minute)
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh after the item was deleted: %v", err)
	}
	e := r.waitFor(auth.EventRestored)
	if !strings.Contains(e.Error, "deleted outside tokentray") {
		t.Fatalf("the restore says %q", e.Error)
	}
	item := keyringTokens(t, r.conn.Name)
	if st := r.k.Status(); st.State != auth.StateConnected || item.RefreshToken == "" || item.AccessToken == r.at {
		t.Fatalf("after the restore: state %s; the keyring must hold the new tokens", st.State)
	}
	r.noReuse()
}

func TestKeyringFaultItemTooLarge(t *testing.T) {
	r := faultRig(t)
	ctx := context.Background()
	s := r.store
	s.Secrets.Timeout = 30 * time.Second // writing tens of MiB takes seconds
	huge := &auth.TokenSet{AccessToken: auth.Secret(strings.Repeat("eyJhbGciOi", 34<<20/10)), RefreshToken: "rt-huge", TokenType: "bearer",
		ObtainedAt: r.clock.Now(), Lifetime: time.Hour}

	s.Secrets.ChunkSize = 64 << 20 // as one item: more than a D-Bus message may carry
	start := time.Now()
	err := s.SaveTokens(ctx, r.conn.Name, huge, auth.AnyGeneration)
	t.Logf("a 34 MiB item failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, keyring.ErrUnavailable) || !strings.Contains(err.Error(), "bytes") || !strings.Contains(err.Error(), "ChunkSize") {
		t.Fatalf("want an error naming the size and what to do, got %v", err)
	}
	if got, err := s.LoadTokens(ctx, r.conn.Name); err != nil || got.RefreshToken != r.rt {
		t.Fatalf("the failed write damaged the stored tokens: %v", err)
	}

	s.Secrets.ChunkSize = keyring.DefaultChunkSize() // the default splits it
	start = time.Now()
	if err := s.SaveTokens(ctx, r.conn.Name, huge, auth.AnyGeneration); err != nil {
		t.Fatalf("chunked: %v", err)
	}
	got, err := s.LoadTokens(ctx, r.conn.Name)
	if err != nil || got.AccessToken != huge.AccessToken {
		t.Fatalf("chunked round trip: %v", err)
	}
	t.Logf("the same 34 MiB in %d MiB chunks: saved and read back in %s", keyring.DefaultChunkSize()>>20, time.Since(start).Round(time.Millisecond))
}

// keyringTokens reads a token item with secret-tool, not through tokentray.
func keyringTokens(t *testing.T, name string) *auth.TokenSet {
	t.Helper()
	out, err := exec.Command("secret-tool", "lookup", "service", keyring.Service, "username", name).Output()
	if err != nil {
		t.Fatalf("secret-tool lookup %s: %v", name, err)
	}
	ts, err := auth.UnmarshalTokenSet(out)
	if err != nil {
		t.Fatalf("item %s: %v", name, err)
	}
	return ts
}
