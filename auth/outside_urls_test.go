package auth

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostsSeen records the host of every request a client sends.
type hostsSeen struct {
	mu    sync.Mutex
	hosts []string
}

func (h *hostsSeen) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts = append(h.hosts, r.URL.Host)
	h.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// An issuer's metadata is checked whole, as configured URLs are: a
// plain-http device or pushed-authorization endpoint on another machine
// would receive the client secret in clear.
func TestDiscoveredEndpointsPassTheChecksOfConfiguredOnes(t *testing.T) {
	for _, field := range []string{"device_authorization_endpoint", "pushed_authorization_request_endpoint"} {
		t.Run(field, func(t *testing.T) {
			m := newMethodServer(t, AuthMethodPost)
			m.meta[field] = "http://idp.example.com/" + field
			m.meta["require_pushed_authorization_requests"] = true
			if _, err := Discover(context.Background(), http.DefaultClient, m.issuer); !errors.Is(err, ErrDiscovery) || !strings.Contains(err.Error(), "plain http") {
				t.Fatalf("Discover: %v; want it refused for plain http", err)
			}
			conn := genericConn("d")
			conn.Discover = true
			conn.Endpoints = Endpoints{Issuer: m.issuer}
			store := newMemStore()
			_ = store.SetClientSecret(context.Background(), conn.Name, "s3cret")
			seen := &hostsSeen{}
			k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}, HTTPClient: &http.Client{Transport: seen}})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := k.Login(ctx, LoginOptions{Device: true, ShowCode: func(DeviceCode) {}})
			if err == nil {
				t.Fatal("a device sign-in with that metadata went ahead")
			}
			seen.mu.Lock()
			defer seen.mu.Unlock()
			for _, h := range seen.hosts {
				if h == "idp.example.com" {
					t.Fatalf("a request reached the plain-http endpoint (hosts: %v)", seen.hosts)
				}
			}
		})
	}
}

// What tokentray opens in the browser is a web page, wherever the URL
// came from.
func TestOnlyWebPagesAreOpened(t *testing.T) {
	for _, tc := range []struct {
		url, refused string // refused: what the error says, "" if opened
	}{
		{"https://login.procore.com/oauth/authorize?state=x", ""},
		{"http://localhost:8765/callback", ""},
		{"http://127.0.0.1:9/authorize?state=x", ""},
		{"http://[::1]:9/device", ""},
		{"HTTPS://login.example.com/device", ""},
		{"file:///home/me/payload.desktop?state=x", "file: URL"},
		{"javascript:alert(1)//?state=x", "not an absolute https URL"},
		{"http://192.168.1.5/authorize?state=x", "plain http to another machine"},
		{"ms-settings:?state=x", "ms-settings: URL"},
		{"smb://attacker/share?state=x", "smb: URL"},
		{"https:/no-host?state=x", "not an absolute https URL"},
		{" file:///etc/passwd", "not an absolute https URL"},
	} {
		err := CheckBrowserURL(tc.url)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%q refused: %v", tc.url, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%q: %v; want it refused saying %q", tc.url, err, tc.refused)
		}
	}
}

// A server (through the relay) that sends a sign-in URL of another scheme
// gets nothing opened and the sign-in refused with why.
func TestTheRelayOpensNoURLOfAnotherScheme(t *testing.T) {
	ru, _ := ParseRedirectURI("http://localhost:" + strconv.Itoa(freePort(t)) + "/callback")
	for _, u := range []string{"file:///tmp/payload.desktop?state=x", "javascript:alert(document.cookie)//?state=x"} {
		opened := false
		r := &Relay{Name: "procore@moby", RedirectURI: ru, AuthorizeURL: u,
			OpenBrowser: func(string) error { opened = true; return nil },
			Forward:     func(context.Context, string) error { return nil }}
		err := r.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "is not opened") || opened {
			t.Fatalf("%s: %v (opened: %v); want it refused, nothing opened", u, err, opened)
		}
	}
}
