//go:build unix

package localapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
)

// A [[remote]] server's connections are on the list and in the event
// stream beside the local ones; they can be signed in and refreshed from
// here (the service's followers: ui/desktop's tests ask a server over ssh),
// and their tokens are not handed out here (exit 2, and where to ask).
func TestAServersConnectionsAreListedAndSignedInButTheirTokensStayThere(t *testing.T) {
	f := serve(t, true)
	ctx := context.Background()
	row := apitype.Connection{Status: apitype.Status{Name: "agent@moby", State: apitype.StateConnected, Usable: true, Remote: "moby"}, Provider: "procore"}
	f.hub.SetRemote("moby", []apitype.Connection{row})

	all, err := f.client.Connections(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "p" || all[1].Name != "agent@moby" || all[1].Remote != "moby" {
		t.Fatalf("list: %+v %v", all, err)
	}
	one, err := f.client.Connection(ctx, "agent@moby")
	if err != nil || one.State != apitype.StateConnected {
		t.Fatalf("one: %+v %v", one, err)
	}
	_, err = f.client.Token(ctx, "agent@moby", 0)
	var apiErr *apiclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Body.Code != apitype.CodeRemoteConnection || apiErr.ExitCode() != apitype.ExitUsage ||
		apiErr.Hint() == "" {
		t.Fatalf("token of a server's connection: %v", err)
	}
	// This tokentray does not follow moby itself (the rows were put in
	// its hub): a refresh or a sign-in of the row says where it is kept.
	if _, err := f.client.Refresh(ctx, "agent@moby"); !errors.As(err, &apiErr) || apiErr.Body.Code != apitype.CodeRemoteConnection {
		t.Fatalf("refresh of a server's row not followed here: %v", err)
	}
	if err := f.client.StartLogin(ctx, "agent@moby"); !errors.As(err, &apiErr) || apiErr.Body.Code != apitype.CodeRemoteConnection {
		t.Fatalf("sign-in of a server's row not followed here: %v", err)
	}

	// The event stream: the row in the opening snapshot, then its changes,
	// then its removal when the server leaves the config.
	stream, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan apitype.Event, 16)
	go func() {
		_ = f.client.Events(stream, func(e apitype.Event) error { got <- e; return nil })
	}()
	next := func(want func(apitype.Event) bool, what string) {
		t.Helper()
		for deadline := time.After(10 * time.Second); ; {
			select {
			case e := <-got:
				if want(e) {
					return
				}
			case <-deadline:
				t.Fatalf("no event: %s", what)
			}
		}
	}
	next(func(e apitype.Event) bool { return e.Type == apitype.EventStatus && e.Connection == "agent@moby" }, "the row in the snapshot")
	next(func(e apitype.Event) bool { return e.Type == apitype.EventReady }, "ready")
	row.State, row.Usable = apitype.StateNeedsReauth, false
	f.hub.SetRemote("moby", []apitype.Connection{row})
	next(func(e apitype.Event) bool {
		return e.Type == apitype.EventStatus && e.Connection == "agent@moby" && e.Status.State == apitype.StateNeedsReauth
	}, "the row's change")
	f.hub.SetRemote("moby", nil)
	next(func(e apitype.Event) bool { return e.Type == apitype.EventRemoved && e.Connection == "agent@moby" }, "the row's removal")
	if all, _ := f.client.Connections(ctx); len(all) != 1 {
		t.Fatalf("after the server left: %+v", all)
	}
}

// An agent calls the API through the socket with no token of its own: the
// proxy adds it, and the answer comes back without it. A server's
// connection has no proxy here: its tokens stay there.
func TestTheSocketProxiesTheConnectionsAPI(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"))
	}))
	defer api.Close()
	f := serveConn(t, true, func(c *auth.Connection) { c.Endpoints.APIBase = api.URL + "/rest" })
	f.hub.SetRemote("moby", []apitype.Connection{{Status: apitype.Status{Name: "agent@moby", Remote: "moby"}}})
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", f.path)
	}}}
	resp, err := client.Get("http://tokentray/v1/connections/p/api/v1.0/me?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "GET /rest/v1.0/me?x=1 Bearer ") || strings.Contains(string(body), "at-") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	for path, code := range map[string]string{
		"/v1/connections/p/api/../../x":    apitype.CodeUnknownConnection, // resolved by the router first: /v1/connections/x
		"/v1/connections/p/api/a/%2e%2e/x": apitype.CodeBadRequest,
		"/v1/connections/agent@moby/api/x": apitype.CodeRemoteConnection,
		"/v1/connections/nope/api/x":       apitype.CodeUnknownConnection,
	} {
		req, _ := http.NewRequest("GET", "http://tokentray/", nil)
		req.URL.Opaque = path // as sent, not cleaned by the client
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e apitype.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if e.Code != code {
			t.Errorf("%s: %d %+v, want %s", path, resp.StatusCode, e, code)
		}
	}
}
