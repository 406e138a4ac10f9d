package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// deviceServer is an RFC 8628 authorization server: it hands out one code,
// and answers polls as script says (authorization_pending, slow_down,
// access_denied), then with tokens.
type deviceServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []string
	polls  int
	forms  []map[string]string
}

func newDeviceServer(t *testing.T, script ...string) *deviceServer {
	d := &deviceServer{script: script}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		w.Header().Set("Content-Type", "application/json")
		d.mu.Lock()
		defer d.mu.Unlock()
		d.forms = append(d.forms, form)
		switch r.URL.Path {
		case "/device":
			_ = json.NewEncoder(w).Encode(map[string]any{"device_code": "dc-1", "user_code": "WDJB-MJHT", "verification_uri": d.srv.URL + "/activate",
				"verification_uri_complete": d.srv.URL + "/activate?user_code=WDJB-MJHT", "expires_in": 600, "interval": 1})
		case "/token":
			if form["grant_type"] != "urn:ietf:params:oauth:grant-type:device_code" || form["device_code"] != "dc-1" {
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
				return
			}
			d.polls++
			if len(d.script) > 0 {
				next := d.script[0]
				d.script = d.script[1:]
				if next == "unavailable" {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": next})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-device", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-device"})
		}
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func deviceKeeper(t *testing.T, d *deviceServer) (*Keeper, *memStore) {
	t.Helper()
	conn := &Connection{Name: "gh", Provider: &github, Grant: GrantAuthorizationCode, ClientID: "Iv1.abc", Scopes: []string{"repo"}, RefreshAt: 0.8,
		Endpoints: Endpoints{TokenURL: d.srv.URL + "/token", DeviceAuthURL: d.srv.URL + "/device"}}
	store := newMemStore()
	_ = store.SetClientSecret(context.Background(), conn.Name, "s3cret")
	return NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}, Clock: fakeclock.New(t0)}), store
}

// A device sign-in shows the code, waits while the person has not finished
// (through a server error in between), and saves the tokens as a new
// grant. (x/oauth2 polls at the server's interval, in real seconds, and
// slows down when asked.)
func TestADeviceSignInShowsTheCodeAndWaitsForThePerson(t *testing.T) {
	d := newDeviceServer(t, "unavailable", "authorization_pending")
	k, store := deviceKeeper(t, d)
	var shown DeviceCode
	err := k.Login(context.Background(), LoginOptions{Device: true, ShowCode: func(c DeviceCode) { shown = c }})
	if err != nil {
		t.Fatal(err)
	}
	if shown.UserCode != "WDJB-MJHT" || !strings.HasSuffix(shown.VerificationURI, "/activate") || !shown.Expires.After(t0) {
		t.Fatalf("shown %+v", shown)
	}
	tokens := store.stored("gh")
	if tokens == nil || tokens.RefreshToken != "rt-device" || !tokens.GrantSince.Equal(t0) || k.Status().State != StateConnected {
		t.Fatalf("saved %v, state %s", tokens, k.Status().State)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.polls != 3 {
		t.Errorf("%d polls, want 3 (a server error, pending, then tokens)", d.polls)
	}
	// GitHub's client authenticates in the form, at both endpoints.
	if d.forms[0]["client_secret"] != "s3cret" || d.forms[0]["scope"] != "repo" || d.forms[1]["client_secret"] != "s3cret" {
		t.Errorf("requests %v", d.forms)
	}
}

// A person who refuses on the provider's page ends the sign-in at once,
// with what to do.
func TestADeviceSignInRefusedOnThePageSaysSo(t *testing.T) {
	d := newDeviceServer(t, "access_denied")
	k, store := deviceKeeper(t, d)
	err := k.Login(context.Background(), LoginOptions{Device: true})
	if next := NextStepOf(err); !errors.Is(err, ErrNeedsSignIn) || !strings.Contains(err.Error(), "refused on the provider's page") || next == nil || next.Kind != nextstep.RetrySignIn {
		t.Fatalf("error %v (next %+v)", err, NextStepOf(err))
	}
	if store.stored("gh") != nil {
		t.Fatal("tokens saved after a refusal")
	}
}

// A provider without a device endpoint: the error says what to use instead,
// before anything is sent.
func TestADeviceSignInWithoutADeviceEndpointSaysWhatToDo(t *testing.T) {
	d := newDeviceServer(t)
	k, _ := deviceKeeper(t, d)
	k.conn.Endpoints.DeviceAuthURL = ""
	err := k.Login(context.Background(), LoginOptions{Device: true})
	if next := NextStepOf(err); !errors.Is(err, ErrNeedsSignIn) || next == nil || next.Kind != nextstep.SetDeviceAuthURL || next.Connection != "gh" {
		t.Fatalf("error %v (next %+v)", err, NextStepOf(err))
	}
	if len(d.forms) != 0 {
		t.Fatalf("requests sent: %v", d.forms)
	}
}

// A sign-in with a code does not join a browser sign-in that waits (nor a
// service account's token fetch): it says what is going on.
func TestADeviceSignInDoesNotJoinAnotherKindOfSignIn(t *testing.T) {
	d := newDeviceServer(t)
	k, _ := deviceKeeper(t, d)
	k.mu.Lock()
	k.signIn = &flight{done: make(chan struct{})} // a browser sign-in waits
	k.mu.Unlock()
	if err := k.Login(context.Background(), LoginOptions{Device: true}); !errors.Is(err, ErrSignInBusy) {
		t.Fatalf("joined a browser sign-in: %v", err)
	}
	k.conn.Grant = GrantClientCredentials
	if err := k.Login(context.Background(), LoginOptions{Device: true}); !errors.Is(err, ErrNoSignIn) {
		t.Fatalf("a service account signed in with a code: %v", err)
	}
}
