package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

const testDID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"

// atprotoNetwork is a small AT Protocol network: the PLC directory, a
// personal data server and its authorization server on one test server,
// and DNS that says which handle is whose.
type atprotoNetwork struct {
	srv   *httptest.Server
	txt   map[string][]string
	alias []string // the DID document's alsoKnownAs
}

func newATProtoNetwork(t *testing.T) *atprotoNetwork {
	n := &atprotoNetwork{txt: map[string][]string{"_atproto.alice.example.com": {"did=" + testDID}}, alias: []string{"at://alice.example.com"}}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		base := n.srv.URL
		switch r.URL.Path {
		case "/plc/" + testDID:
			_ = json.NewEncoder(w).Encode(map[string]any{"id": testDID, "alsoKnownAs": n.alias,
				"service": []map[string]string{{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": base + "/pds"}}})
		case "/pds/.well-known/oauth-protected-resource":
			_ = json.NewEncoder(w).Encode(map[string]any{"resource": base + "/pds", "authorization_servers": []string{base + "/as"}})
		case "/.well-known/oauth-authorization-server/as":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": base + "/as", "authorization_endpoint": base + "/as/authorize", "token_endpoint": base + "/as/token",
				"pushed_authorization_request_endpoint": base + "/as/par", "require_pushed_authorization_requests": true,
				"token_endpoint_auth_methods_supported": []string{"none", "private_key_jwt"}, "dpop_signing_alg_values_supported": []string{"ES256"}})
		case "/.well-known/atproto-did":
			// https://HANDLE/.well-known/atproto-did, for handles without DNS.
			_, _ = w.Write([]byte(testDID + "\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(n.srv.Close)
	oldTXT, oldPLC := lookupTXT, plcDirectory
	lookupTXT = func(_ context.Context, name string) ([]string, error) {
		if v, ok := n.txt[name]; ok {
			return v, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	plcDirectory = n.srv.URL + "/plc"
	t.Cleanup(func() { lookupTXT, plcDirectory = oldTXT, oldPLC })
	return n
}

// client sends every request, whatever its host, to the network's server
// (a handle's https://HANDLE/.well-known/atproto-did among them).
func (n *atprotoNetwork) client() *http.Client {
	target, _ := url.Parse(n.srv.URL)
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A handle resolves, by DNS or by HTTPS, to its DID, its personal data
// server and the authorization server that one names; a DID document that
// does not name the handle back is refused.
func TestAnATProtoHandleResolvesToItsServers(t *testing.T) {
	n := newATProtoNetwork(t)
	id, err := ResolveIdentity(context.Background(), n.client(), "@Alice.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if id.DID != testDID || id.PDS != n.srv.URL+"/pds" || id.Issuer != n.srv.URL+"/as" || id.Handle != "alice.example.com" {
		t.Fatalf("identity %+v", id)
	}
	// Without the DNS record: the handle's own well-known document.
	delete(n.txt, "_atproto.alice.example.com")
	if id, err := ResolveIdentity(context.Background(), n.client(), "alice.example.com"); err != nil || id.DID != testDID {
		t.Fatalf("by HTTPS: %+v %v", id, err)
	}
	n.alias = []string{"at://mallory.example.com"}
	if _, err := ResolveIdentity(context.Background(), n.client(), "alice.example.com"); err == nil || !strings.Contains(err.Error(), "does not name the handle") {
		t.Fatalf("a DID document of another handle: %v", err)
	}
	if _, err := ResolveIdentity(context.Background(), n.client(), "not a handle"); err == nil {
		t.Fatal("a malformed handle resolved")
	}
}

// A connection of the atproto preset finds its URLs from the handle: the
// personal data server is the API, the authorization server's metadata
// brings its endpoints and its demand for pushed requests; its tokens are
// DPoP-bound; and a sign-in that brings another account is refused.
func TestAnATProtoConnectionIsFoundFromItsHandle(t *testing.T) {
	n := newATProtoNetwork(t)
	ru, _ := ParseRedirectURI("http://127.0.0.1:8765/callback")
	conn := &Connection{Name: "bsky", Provider: &atproto, Environment: "network", Grant: GrantAuthorizationCode, Handle: "alice.example.com",
		ClientID: LoopbackClientID(ru.Raw, []string{"atproto", "transition:generic"}), RedirectURI: ru, Scopes: []string{"atproto", "transition:generic"}, Discover: true}
	k := NewKeeper(conn, KeeperOptions{Store: newMemStore(), Locker: &memLocker{}, Clock: fakeclock.New(t0), HTTPClient: n.client()})
	if err := k.Resolve(context.Background()); err != nil {
		t.Fatal(err)
	}
	ep := k.Endpoints()
	base := n.srv.URL
	if ep.APIBase != base+"/pds" || ep.PARURL != base+"/as/par" || ep.TokenURL != base+"/as/token" || ep.Issuer != base+"/as" ||
		ep.CheckURL != base+"/pds/xrpc/com.atproto.server.getSession" {
		t.Fatalf("endpoints %+v", ep)
	}
	if !conn.dpop() || conn.authParams()["login_hint"] != "alice.example.com" {
		t.Fatalf("dpop %t, auth params %v", conn.dpop(), conn.authParams())
	}
	if c, _ := k.resolved(context.Background()); c.authMethod("") != AuthMethodNone {
		t.Fatalf("a native app authenticates with %s", c.authMethod(""))
	}
	if !strings.HasPrefix(conn.ClientID, "http://localhost?") || !strings.Contains(conn.ClientID, "redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback") {
		t.Fatalf("client id %s", conn.ClientID)
	}
	other := (&oauth2.Token{AccessToken: "at", TokenType: "DPoP", RefreshToken: "rt"}).WithExtra(map[string]any{"sub": "did:plc:someoneelse2222222222222"})
	if err := k.signedIn(context.Background(), other, ""); !errors.Is(err, errWrongAccount) {
		t.Fatalf("tokens of another account: %v", err)
	}
	mine := (&oauth2.Token{AccessToken: "at", TokenType: "DPoP", RefreshToken: "rt"}).WithExtra(map[string]any{"sub": testDID})
	if err := k.signedIn(context.Background(), mine, ""); err != nil {
		t.Fatalf("the handle's own tokens: %v", err)
	}
	if st := k.Status(); st.RefreshTokenEnd.IsZero() || !strings.Contains(st.RefreshTokenEndAbout, "2 weeks") {
		t.Fatalf("the session's end: %v (%s)", st.RefreshTokenEnd, st.RefreshTokenEndAbout)
	}
}
