package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// discoveringServer is an oauthServer that also publishes its metadata,
// listing methods as its token_endpoint_auth_methods_supported, and counts
// the metadata requests.
type discoveringServer struct {
	*oauthServer
	issuer string

	mu        sync.Mutex
	metaGets  int
	metaError bool // answer 500
}

func newDiscoveringServer(t *testing.T, accepts string, methods ...string) *discoveringServer {
	s := &discoveringServer{oauthServer: newOAuthServer(t)}
	s.oauthServer.method = accepts
	s.issuer = s.srv.URL + "/"
	s.srv.Config.Handler.(*http.ServeMux).HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.metaGets++
		failing := s.metaError
		s.mu.Unlock()
		if failing {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": s.issuer,
			"authorization_endpoint": s.srv.URL + "/authorize", "token_endpoint": s.srv.URL + "/token",
			"revocation_endpoint": s.srv.URL + "/revoke", "device_authorization_endpoint": s.srv.URL + "/device",
			"token_endpoint_auth_methods_supported": methods})
	})
	return s
}

func (s *discoveringServer) metadataRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metaGets
}

// issuerOnly is the README's minimal generic connection: an issuer, a
// client id and a loopback redirect URI.
func issuerOnly(t *testing.T, name, issuer string) *Connection {
	conn := genericConn(name)
	conn.Discover = true
	conn.Endpoints = Endpoints{Issuer: issuer}
	conn.RedirectURI, _ = ParseRedirectURI(fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t)))
	return conn
}

func TestDiscoveryChoosesTheMethodByWhetherASecretIsStored(t *testing.T) {
	listed := []string{AuthMethodBasic, AuthMethodPost, AuthMethodNone}
	for _, tc := range []struct {
		name   string
		secret Secret
		want   string
	}{
		{"a public client without a secret signs in with none", "", AuthMethodNone},
		{"a client with a secret signs in with client_secret_basic as before", "s1", AuthMethodBasic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newDiscoveringServer(t, tc.want, listed...)
			conn := issuerOnly(t, "pub", srv.issuer)
			store := newMemStore()
			if tc.secret != "" {
				_ = store.SetClientSecret(context.Background(), conn.Name, tc.secret)
			}
			open := func(u string) error { go func() { _, _, _ = browse(u) }(); return nil }
			k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}, OpenBrowser: open})
			// The server answers invalid_client to any other method.
			if err := k.Login(context.Background(), LoginOptions{Timeout: time.Minute}); err != nil {
				t.Fatalf("sign-in: %v", err)
			}
			srv.oauthServer.mu.Lock()
			form := srv.forms[len(srv.forms)-1]
			srv.oauthServer.mu.Unlock()
			if form["grant_type"] != "authorization_code" || form["client_secret"] != "" {
				t.Fatalf("code exchange form %v", form)
			}
			if st := k.Status(); st.AuthMethod != tc.want || st.AuthMethodFrom != AuthMethodFromMetadata {
				t.Fatalf("status shows %q from %q, want %q from the metadata", st.AuthMethod, st.AuthMethodFrom, tc.want)
			}
		})
	}
}

func TestASecretStoredAfterAPublicSignInIsUsedFromTheNextRefresh(t *testing.T) {
	srv := newDiscoveringServer(t, AuthMethodNone, AuthMethodBasic, AuthMethodPost, AuthMethodNone)
	conn := issuerOnly(t, "later", srv.issuer)
	store := newMemStore()
	open := func(u string) error { go func() { _, _, _ = browse(u) }(); return nil }
	k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}, OpenBrowser: open})
	if err := k.Login(context.Background(), LoginOptions{Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// The client is made confidential at the provider, and its secret stored.
	srv.oauthServer.mu.Lock()
	srv.oauthServer.method = AuthMethodBasic
	srv.oauthServer.mu.Unlock()
	_ = store.SetClientSecret(context.Background(), conn.Name, "s1")
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh with the secret stored since: %v", err)
	}
	if st := k.Status(); st.AuthMethod != AuthMethodBasic {
		t.Fatalf("status shows %q after the secret was stored", st.AuthMethod)
	}
}

func TestASignInThatNeedsASecretNotStoredStopsBeforeTheBrowser(t *testing.T) {
	srv := newDiscoveringServer(t, AuthMethodBasic, AuthMethodBasic)
	conn := issuerOnly(t, "conf", srv.issuer)
	opened := 0
	k := NewKeeper(conn, KeeperOptions{Store: newMemStore(), Locker: &memLocker{},
		OpenBrowser: func(string) error { opened++; return nil }})
	for _, device := range []bool{false, true} {
		err := k.Login(context.Background(), LoginOptions{Timeout: 2 * time.Second, Device: device})
		if next := NextStepOf(err); !errors.Is(err, ErrCredentialsRefused) || next == nil || *next != (nextstep.Step{Kind: nextstep.StoreSecret, Connection: "conf"}) ||
			!strings.Contains(err.Error(), "client_secret_basic, not none") {
			t.Fatalf("device %t: err = %v (next %+v); want the missing secret, with the step to store it", device, err, NextStepOf(err))
		}
	}
	if opened != 0 || srv.exchangeCount() != 0 {
		t.Fatalf("browser opened %d times, %d code exchanges", opened, srv.exchangeCount())
	}
	// A refresh is refused the same way, before it is sent, and keeps the
	// refresh token for when the secret is stored.
	store := newMemStore()
	store.put(conn.Name, &TokenSet{AccessToken: "at-old", RefreshToken: Secret(srv.issueRefreshToken()), ObtainedAt: time.Now().Add(-time.Hour), Lifetime: time.Hour})
	k2 := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}})
	if err := k2.Refresh(context.Background()); !errors.Is(err, ErrCredentialsRefused) || k2.Status().State != StateClientRefused {
		t.Fatalf("refresh without the secret: %v, %s", err, k2.Status().State)
	}
	if srv.refreshCount() != 0 || store.stored(conn.Name).Dead {
		t.Fatalf("%d refreshes sent; stored %+v", srv.refreshCount(), store.stored(conn.Name))
	}
}

func TestAnIssuerWithURLsSetAddsWhatTheyDoNotSay(t *testing.T) {
	srv := newDiscoveringServer(t, AuthMethodPost, AuthMethodPost)
	elsewhere := newOAuthServer(t) // the URLs set: they win over the metadata's
	elsewhere.method = AuthMethodPost
	conn := issuerOnly(t, "both", srv.issuer)
	conn.Endpoints.AuthURL, conn.Endpoints.TokenURL = elsewhere.srv.URL+"/authorize", elsewhere.srv.URL+"/token"
	store := newMemStore()
	_ = store.SetClientSecret(context.Background(), conn.Name, "s1")
	store.put(conn.Name, &TokenSet{AccessToken: "at-old", RefreshToken: Secret(elsewhere.issueRefreshToken()), ObtainedAt: time.Now().Add(-time.Hour), Lifetime: time.Hour})
	k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}})
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ep := k.Endpoints()
	if ep.DeviceAuthURL != srv.srv.URL+"/device" || ep.RevokeURL != srv.srv.URL+"/revoke" ||
		ep.TokenURL != elsewhere.srv.URL+"/token" || ep.AuthURL != elsewhere.srv.URL+"/authorize" {
		t.Fatalf("endpoints %+v: want the device and revocation endpoints of the metadata, the URLs set kept", ep)
	}
	if elsewhere.refreshCount() != 1 || srv.refreshCount() != 0 {
		t.Fatalf("refreshes: %d at the URL set, %d at the metadata's", elsewhere.refreshCount(), srv.refreshCount())
	}
	// The method the server lists, with no method configured.
	if st := k.Status(); st.AuthMethod != AuthMethodPost || st.AuthMethodFrom != AuthMethodFromMetadata || st.MetadataWarning != "" {
		t.Fatalf("status %q from %q, warning %q", st.AuthMethod, st.AuthMethodFrom, st.MetadataWarning)
	}
}

func TestAnIssuerThatDoesNotAnswerIsAWarningWhenTheURLsSetAreEnough(t *testing.T) {
	srv := newDiscoveringServer(t, AuthMethodBasic, AuthMethodBasic)
	srv.metaError = true
	conn := issuerOnly(t, "down", srv.issuer)
	conn.Endpoints.AuthURL, conn.Endpoints.TokenURL = srv.srv.URL+"/authorize", srv.srv.URL+"/token"
	store := newMemStore()
	_ = store.SetClientSecret(context.Background(), conn.Name, "s1")
	clock := fakeclock.New(t0)
	k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}, Clock: clock})
	store.put(conn.Name, &TokenSet{AccessToken: "at-old", RefreshToken: Secret(srv.issueRefreshToken()), ObtainedAt: t0.Add(-time.Hour), Lifetime: time.Hour})
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh with the URLs set while the issuer fails: %v", err)
	}
	st := k.Status()
	if st.State != StateConnected || !strings.Contains(st.MetadataWarning, "HTTP 500") || st.AuthMethod != AuthMethodBasic {
		t.Fatalf("state %s, warning %q, method %q", st.State, st.MetadataWarning, st.AuthMethod)
	}
	// Not asked again at every request, but again after discoveryRetry.
	asked := srv.metadataRequests()
	if err := k.Refresh(context.Background()); err != nil || srv.metadataRequests() != asked {
		t.Fatalf("second refresh: %v; metadata asked %d times, then %d", err, asked, srv.metadataRequests())
	}
	srv.mu.Lock()
	srv.metaError = false
	srv.mu.Unlock()
	clock.Advance(discoveryRetry)
	if err := k.Resolve(context.Background()); err != nil || k.Endpoints().DeviceAuthURL == "" || k.Status().MetadataWarning != "" {
		t.Fatalf("after the issuer is back: %v, %+v, warning %q", err, k.Endpoints(), k.Status().MetadataWarning)
	}
}

func TestAnIssuerAloneThatDoesNotAnswerIsStillAnError(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := dead.Addr().String()
	_ = dead.Close()
	conn := issuerOnly(t, "alone", "http://"+addr+"/")
	opened := 0
	k := NewKeeper(conn, KeeperOptions{Store: newMemStore(), Locker: &memLocker{}, OpenBrowser: func(string) error { opened++; return nil }})
	if err := k.Login(context.Background(), LoginOptions{Timeout: time.Minute}); !errors.Is(err, ErrUnreachable) || opened != 0 {
		t.Fatalf("sign-in without metadata or URLs: %v, browser opened %d times", err, opened)
	}
}
