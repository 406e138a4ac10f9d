package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/client/nextstep"
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

// A connection kept elsewhere (a [[remote]] server's) is seen as statuses,
// not events: it gets the same alerts, once per transition, and the server
// being out of sight is none.
func TestStatusesOfARemoteConnectionGiveTheSameAlerts(t *testing.T) {
	tr := NewTracker()
	st := func(state string, usable bool) apitype.Status {
		return apitype.Status{Name: "p@moby", State: state, Usable: usable}
	}
	steps := []struct {
		st   apitype.Status
		want Kind
	}{
		{st(apitype.StateConnected, true), ""},
		{st(apitype.StateRefreshing, true), ""},
		{st(apitype.StateDegraded, true), ""},
		{st(apitype.StateDegraded, false), Expired},
		{st(apitype.StateUnreachable, false), ""},
		{st(apitype.StateDegraded, false), ""},
		{st(apitype.StateNeedsReauth, false), NeedsReauth},
		{st(apitype.StateUnreachable, false), ""},
		{st(apitype.StateNeedsReauth, false), ""},
		{st(apitype.StateConnected, true), Recovered},
		{st(apitype.StateUnreachable, false), ""},
		{st(apitype.StateConnected, true), ""},
	}
	var before *apitype.Status
	for i, s := range steps {
		a, ok := tr.ObserveStatus(before, s.st, time.Time{})
		got := Kind("")
		if ok {
			got = a.Kind
		}
		if got != s.want {
			t.Fatalf("step %d (%s): alert %q, want %q", i, s.st.State, got, s.want)
		}
		before = &s.st
	}
	// First seen already needing a sign-in: told once.
	fresh := NewTracker()
	if a, ok := fresh.ObserveStatus(nil, st(apitype.StateNeedsReauth, false), time.Time{}); !ok || a.Kind != NeedsReauth {
		t.Fatalf("first seen in needs_reauth: %v %v", a, ok)
	}
}

// The API refusing fresh tokens is told once per change, beside the
// token's own state, and its end is told as a recovery.
func TestAnAPIThatRefusesFreshTokensIsToldOncePerChange(t *testing.T) {
	tr := NewTracker()
	refused := auth.Event{Connection: "p", Kind: auth.EventAPIRefused, Error: "HTTP 401"}
	if a, ok := tr.Observe(refused); !ok || a.Kind != APIRefused {
		t.Fatalf("first refusal: %v %v", a, ok)
	}
	if _, ok := tr.Observe(refused); ok {
		t.Fatal("a second refusal was told again")
	}
	if a, ok := tr.Observe(state(auth.StateConnected, auth.StateNeedsReauth)); !ok || a.Kind != NeedsReauth {
		t.Fatalf("the token's own alert is independent: %v %v", a, ok)
	}
	if a, ok := tr.Observe(auth.Event{Connection: "p", Kind: auth.EventAPIAccepted}); !ok || a.Kind != Recovered {
		t.Fatalf("accepted again: %v %v", a, ok)
	}
	if _, ok := tr.Observe(auth.Event{Connection: "p", Kind: auth.EventAPIAccepted}); ok {
		t.Fatal("an acceptance with nothing raised was told")
	}
}

// A keeper that failed before anyone listened is told of once, and its
// event, heard afterwards, is no second alert.
func TestAKeeperThatFailedBeforeAnyoneListenedIsToldOfOnce(t *testing.T) {
	tr := NewTracker()
	if _, ok := tr.Seed(auth.Status{Name: "p", State: auth.StateConnected, Usable: true}, time.Time{}); ok {
		t.Fatal("a connected keeper was alerted about")
	}
	tr = NewTracker()
	if a, ok := tr.Seed(auth.Status{Name: "p", State: auth.StateNeedsReauth}, time.Time{}); !ok || a.Kind != NeedsReauth {
		t.Fatalf("seeded in needs_reauth: %v %v", a, ok)
	}
	if _, ok := tr.Observe(state(auth.StateRefreshing, auth.StateNeedsReauth)); ok {
		t.Fatal("the event after the seed was a second alert")
	}
}

// A refresh token coming to its end is told once per foreseen end: from
// the keeper's event, and from a remote's reported status alike.
func TestARefreshTokenComingToItsEndIsToldOncePerEnd(t *testing.T) {
	tr := NewTracker()
	if a, ok := tr.Observe(auth.Event{Connection: "c", Kind: auth.EventRefreshTokenExpiring, Error: "ends in about 6 days"}); !ok || a.Kind != RefreshTokenExpiring {
		t.Fatalf("the keeper's event: %+v %t", a, ok)
	}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	end := at.Add(6 * 24 * time.Hour)
	st := apitype.Status{Name: "c@moby", State: apitype.StateConnected, Usable: true, RefreshTokenEnd: end, RefreshTokenEndAbout: "Atlassian's rule"}
	if _, ok := tr.ObserveStatus(nil, st, at); ok {
		t.Fatal("an end not yet within the warning is told")
	}
	ending := st
	ending.RefreshTokenEnding = true
	a, ok := tr.ObserveStatus(&st, ending, at)
	if !ok || a.Kind != RefreshTokenExpiring || !strings.Contains(a.Error, "about 6 days left") || !strings.Contains(a.Error, "Atlassian's rule") {
		t.Fatalf("a remote's ending refresh token: %+v %t", a, ok)
	}
	if _, ok := tr.ObserveStatus(&ending, ending, at.Add(time.Hour)); ok {
		t.Fatal("told twice")
	}
	if _, ok := tr.ObserveStatus(nil, ending, at.Add(time.Hour)); ok {
		t.Fatal("told again when the remote was seen anew (unreachable, then back)")
	}
	later := ending
	later.RefreshTokenEnd = end.Add(365 * 24 * time.Hour)
	if _, ok := tr.ObserveStatus(&ending, later, at.Add(time.Hour)); !ok {
		t.Fatal("a new end (after a sign-in) is not told")
	}
	// The keeper's status when a tray starts: the end was told by the
	// process before, with the tokens; not again.
	if _, ok := NewTracker().Seed(auth.Status{Name: "c", State: auth.StateConnected, Usable: true, RefreshTokenEnd: end, RefreshTokenEnding: true}, at); ok {
		t.Fatal("told again at start")
	}
}

// The on_alert script reads the step said for a terminal ("hint") and as
// data ("next"); words an older tokentray kept come as they are.
func TestAnAlertSaysTheStepForAScript(t *testing.T) {
	next := &nextstep.Step{Kind: nextstep.SignInAgain, Connection: "p"}
	a, ok := NewTracker().Observe(auth.Event{Connection: "p", Kind: auth.EventState, To: auth.StateNeedsReauth, Error: "refresh failed: invalid_grant", Next: next})
	if !ok || a.Next != next || a.Hint != "Sign in again with `tokentray login p`." {
		t.Fatalf("alert %+v", a)
	}
	a, ok = NewTracker().Observe(auth.Event{Connection: "p", Kind: auth.EventState, To: auth.StateNeedsReauth, Hint: "Sign in again (older words)."})
	if !ok || a.Next != nil || a.Hint != "Sign in again (older words)." {
		t.Fatalf("alert %+v", a)
	}
}

// The occurrence an alert names is alike on every instance that sees it
// (the kind and the tokens' generation, whatever state each came from),
// and tells a token's recovery from the API's, which can come with the
// same tokens.
func TestAnAlertsOccurrenceIsAlikeOnEveryInstance(t *testing.T) {
	// Instance A refreshed and was refused; instance B adopted the dead
	// tokens of the same generation from the store.
	a, _ := NewTracker().Observe(auth.Event{Connection: "p", Kind: auth.EventState, From: auth.StateRefreshing, To: auth.StateNeedsReauth, Generation: 7})
	b, _ := NewTracker().Observe(auth.Event{Connection: "p", Kind: auth.EventState, From: auth.StateConnected, To: auth.StateNeedsReauth, Generation: 7})
	ka, ga, oka := a.Occurrence()
	kb, gb, okb := b.Occurrence()
	if !oka || !okb || ka != kb || ga != gb || ka != "needs_reauth" || ga != 7 {
		t.Fatalf("occurrences %q/%d/%v and %q/%d/%v; want needs_reauth/7 on both", ka, ga, oka, kb, gb, okb)
	}

	tr := NewTracker()
	tr.Observe(auth.Event{Connection: "p", Kind: auth.EventAPIRefused, Generation: 9})
	api, _ := tr.Observe(auth.Event{Connection: "p", Kind: auth.EventAPIAccepted, Generation: 9})
	tr.Observe(auth.Event{Connection: "p", Kind: auth.EventState, From: auth.StateConnected, To: auth.StateNeedsReauth, Generation: 9})
	token, _ := tr.Observe(auth.Event{Connection: "p", Kind: auth.EventState, From: auth.StateNeedsReauth, To: auth.StateConnected, Generation: 9})
	if k, _, _ := api.Occurrence(); k != "recovered_api" {
		t.Fatalf("the API's recovery: %q", k)
	}
	if k, _, _ := token.Occurrence(); k != "recovered" {
		t.Fatalf("the token's recovery: %q", k)
	}

	// Not knowing the generation is no occurrence: told wherever seen.
	if _, _, ok := (Alert{Kind: NeedsReauth}).Occurrence(); ok {
		t.Fatal("an alert without a generation names an occurrence")
	}
}
