//go:build unix

package localapi

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
)

// remoteActions records what the API asked of the servers.
type remoteActions struct {
	mu  sync.Mutex
	did []string
}

func (a *remoteActions) SignIn(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.did = append(a.did, "sign in "+name)
}

func (a *remoteActions) Refresh(_ context.Context, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.did = append(a.did, "refresh "+name)
	return nil
}

// A [[remote]] server's connections are on the list and in the event
// stream beside the local ones; they can be signed in and refreshed from
// here, and their tokens are not handed out here (exit 2, and where to ask).
func TestAServersConnectionsAreListedAndSignedInButTheirTokensStayThere(t *testing.T) {
	actions := &remoteActions{}
	f := serve(t, true, func(s *Server) { s.Remotes = actions })
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
	if _, err := f.client.Refresh(ctx, "agent@moby"); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if err := f.client.StartLogin(ctx, "agent@moby"); err != nil {
		t.Fatalf("login: %v", err)
	}
	actions.mu.Lock()
	did := append([]string(nil), actions.did...)
	actions.mu.Unlock()
	if len(did) != 2 || did[0] != "refresh agent@moby" || did[1] != "sign in agent@moby" {
		t.Fatalf("asked of the server: %q", did)
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
