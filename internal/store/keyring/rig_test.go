//go:build keyring

package keyring_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/demoprovider"
	"github.com/tokentray/tokentray/internal/store/keyring"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

func realStore(t *testing.T) *keyring.Store {
	if os.Getenv("TOKENTRAY_IN_SESSION") == "" {
		t.Fatal("run inside .ci/desktop-session: this test needs the real Secret Service")
	}
	s := keyring.New()
	s.Secrets.Timeout = 3 * time.Second
	return s
}

// rig is a keeper on the real Secret Service, signed in to the demo
// provider (a real authorization server with single-use refresh tokens
// and reuse detection) through its consent page. Its clock is fake: the
// tests move it to the refresh point.
type rig struct {
	t      *testing.T
	srv    *demoprovider.Server
	store  *keyring.Store
	clock  *fakeclock.Clock
	conn   *auth.Connection
	k      *auth.Keeper
	events <-chan auth.Event
	// at and rt are the tokens of the sign-in.
	at, rt auth.Secret
}

func signedIn(t *testing.T, s *keyring.Store) *rig {
	t.Helper()
	// A port found free may be taken by another process before the sign-in
	// listens on it (a busy machine): then another port, a few times.
	for attempt := 1; ; attempt++ {
		r, err := trySignIn(t, s)
		if err == nil {
			return r
		}
		if attempt == 5 || !strings.Contains(err.Error(), "is already in use") {
			t.Fatalf("sign in to the demo provider: %v", err)
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
}

func trySignIn(t *testing.T, s *keyring.Store) (*rig, error) {
	t.Helper()
	srv := &demoprovider.Server{AccessTTL: 90 * time.Minute, RedirectURI: "http://127.0.0.1:" + freePort(t) + "/callback"}
	base, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	generic, _ := auth.LookupPreset("generic")
	ru, err := auth.ParseRedirectURI(srv.RedirectURI)
	if err != nil {
		t.Fatal(err)
	}
	conn := &auth.Connection{Name: "keyring-test", Provider: generic, Grant: auth.GrantAuthorizationCode, ClientID: demoprovider.ClientID,
		RedirectURI: ru, RefreshAt: 0.8, Scopes: []string{"demo.read"},
		Endpoints: auth.Endpoints{AuthURL: base + "/authorize", TokenURL: base + "/token", RevokeURL: base + "/revoke"}}
	ctx := context.Background()
	if err := s.SetClientSecret(ctx, conn.Name, demoprovider.ClientSecret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.DeleteTokens(context.Background(), conn.Name)
		_ = s.DeleteClientSecret(context.Background(), conn.Name)
	})
	clock := fakeclock.New(time.Now())
	r := &rig{t: t, srv: srv, store: s, clock: clock, conn: conn}
	r.k = auth.NewKeeper(conn, auth.KeeperOptions{Store: s, Locker: &auth.ProcessLocker{}, Clock: clock,
		Jitter: func() float64 { return 0 }, RequestTimeout: time.Minute,
		OpenBrowser: func(u string) error {
			go func() {
				if err := demoprovider.Consent(u, "allow"); err != nil {
					t.Errorf("consent: %v", err)
				}
			}()
			return nil
		}})
	events, stop := r.k.Subscribe()
	t.Cleanup(stop)
	r.events = events
	if err := r.k.Login(ctx, auth.LoginOptions{Timeout: time.Minute}); err != nil {
		return nil, err
	}
	ts, err := s.LoadTokens(ctx, conn.Name)
	if err != nil || ts.RefreshToken == "" {
		t.Fatalf("the sign-in's tokens in the keyring: %v", err)
	}
	r.at, r.rt = ts.AccessToken, ts.RefreshToken
	return r, nil
}

// refreshes is how many refreshes the provider granted.
func (r *rig) refreshes() int { return r.srv.Stats().Refreshes }

// noReuse: the provider never saw a refresh token presented twice (nor any
// other grant it refused).
func (r *rig) noReuse() {
	r.t.Helper()
	if n := r.srv.Stats().Rejected; n > 0 {
		r.t.Fatalf("the provider refused %d token requests (a refresh token presented twice?)", n)
	}
}

func (r *rig) waitFor(kind auth.EventKind) auth.Event {
	r.t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case e := <-r.events:
			if e.Kind == kind {
				return e
			}
		case <-deadline:
			r.t.Fatalf("no %s event within a minute; status %+v", kind, r.k.Status())
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
