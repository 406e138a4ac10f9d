package alerts

import (
	"testing"

	"github.com/tokentray/tokentray/auth"
)

func state(from, to auth.State) auth.Event {
	return auth.Event{Connection: "p", Kind: auth.EventState, From: from, To: to}
}

func TestOneAlertPerTransitionNotPerRetry(t *testing.T) {
	tr := NewTracker()
	steps := []struct {
		e    auth.Event
		want Kind // "" for no alert
	}{
		{state(auth.StateConnected, auth.StateRefreshing), ""},
		{state(auth.StateRefreshing, auth.StateDegraded), ""},
		{auth.Event{Connection: "p", Kind: auth.EventRefreshFailed}, ""},
		{auth.Event{Connection: "p", Kind: auth.EventAccessExpired}, Expired},
		{auth.Event{Connection: "p", Kind: auth.EventRefreshFailed}, ""},
		{auth.Event{Connection: "p", Kind: auth.EventAccessExpired}, ""},
		{state(auth.StateDegraded, auth.StateNeedsReauth), NeedsReauth},
		{state(auth.StateNeedsReauth, auth.StateNeedsReauth), ""},
		{state(auth.StateNeedsReauth, auth.StateConnected), Recovered},
		{state(auth.StateConnected, auth.StateRefreshing), ""},
		{state(auth.StateRefreshing, auth.StateConnected), ""},
		{state(auth.StateRefreshing, auth.StateNeedsReauth), NeedsReauth},
		{state(auth.StateNeedsReauth, auth.StateDisconnected), ""},
		{state(auth.StateDisconnected, auth.StateConnected), ""},
		{state(auth.StateRefreshing, auth.StateClientRefused), ClientRefused},
		{state(auth.StateClientRefused, auth.StateClientRefused), ""},
		{auth.Event{Connection: "p", Kind: auth.EventAccessExpired}, ""},
		{state(auth.StateClientRefused, auth.StateConnected), Recovered},
	}
	for i, s := range steps {
		a, ok := tr.Observe(s.e)
		got := Kind("")
		if ok {
			got = a.Kind
		}
		if got != s.want {
			t.Fatalf("step %d (%s %s→%s): alert %q, want %q", i, s.e.Kind, s.e.From, s.e.To, got, s.want)
		}
	}
}

func TestConnectionsAreIndependent(t *testing.T) {
	tr := NewTracker()
	a := auth.Event{Connection: "a", Kind: auth.EventState, To: auth.StateNeedsReauth}
	b := auth.Event{Connection: "b", Kind: auth.EventState, To: auth.StateNeedsReauth}
	if _, ok := tr.Observe(a); !ok {
		t.Fatal("a not alerted")
	}
	if _, ok := tr.Observe(b); !ok {
		t.Fatal("b not alerted after a")
	}
}
