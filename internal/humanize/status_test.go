package humanize

import (
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
)

var now = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func status(name string, state string, usable bool) apitype.Status {
	return apitype.Status{Name: name, State: state, Usable: usable}
}

func TestOverallColour(t *testing.T) {
	tests := []struct {
		name string
		sts  []apitype.Status
		want Level
	}{
		{"no connections is grey", nil, Grey},
		{"nothing signed in is grey", []apitype.Status{status("a", apitype.StateDisconnected, false)}, Grey},
		{"all usable is green", []apitype.Status{status("a", apitype.StateConnected, true), status("b", apitype.StateRefreshing, true)}, Green},
		{"degraded with a valid token is still green", []apitype.Status{status("a", apitype.StateDegraded, true)}, Green},
		{"degraded with an expired token is red", []apitype.Status{status("a", apitype.StateConnected, true), status("b", apitype.StateDegraded, false)}, Red},
		{"needs_reauth is red even while the token lasts", []apitype.Status{status("a", apitype.StateNeedsReauth, true)}, Red},
		{"one signed in and one never signed in is red", []apitype.Status{status("a", apitype.StateConnected, true), status("b", apitype.StateDisconnected, false)}, Red},
		{"an unreachable server's connection is not red", []apitype.Status{status("a", apitype.StateConnected, true), status("b@moby", apitype.StateUnreachable, false)}, Green},
		{"only unreachable ones are grey", []apitype.Status{status("b@moby", apitype.StateUnreachable, false)}, Grey},
		{"a remote connection that needs a sign-in is red", []apitype.Status{status("a", apitype.StateConnected, true), status("b@moby", apitype.StateNeedsReauth, true)}, Red},
	}
	for _, tc := range tests {
		if got := Overall(tc.sts); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestMenuLines(t *testing.T) {
	st := apitype.Status{Name: "procore-sandbox", State: apitype.StateConnected, Usable: true, AccessExpiry: now.Add(72*time.Minute + 30*time.Second)}
	for _, tc := range []struct {
		st   apitype.Status
		want string
	}{
		{st, "procore-sandbox — 1 h 12 m left"},
		{apitype.Status{Name: "procore", State: apitype.StateNeedsReauth}, "procore — sign-in needed"},
		{apitype.Status{Name: "x", State: apitype.StateDegraded, Usable: true, AccessExpiry: now.Add(40 * time.Minute)}, "x — retrying, 40 m left"},
		{apitype.Status{Name: "x", State: apitype.StateDegraded}, "x — token expired, retrying"},
		{apitype.Status{Name: "x", State: apitype.StateDisconnected}, "x — not signed in"},
		{apitype.Status{Name: "svc", Grant: "client_credentials", State: apitype.StateNeedsReauth}, "svc — credentials refused"},
		{apitype.Status{Name: "svc", Grant: "client_credentials", State: apitype.StateDisconnected}, "svc — no token yet"},
		{apitype.Status{Name: "procore@moby-1", State: apitype.StateUnreachable, Remote: "moby-1", UnreachableSince: now.Add(-50 * time.Minute)}, "procore@moby-1 — moby-1 unreachable since 08:10"},
		{apitype.Status{Name: "*@moby-1", State: apitype.StateUnreachable, Remote: "moby-1", UnreachableSince: now.Add(-25 * time.Hour)}, "*@moby-1 — moby-1 unreachable since Mar 1 08:00"},
	} {
		if got := MenuLine(tc.st, now); got != tc.want {
			t.Errorf("MenuLine = %q, want %q", got, tc.want)
		}
	}
}

func TestTheSummaryChangesAtTheNextTurnOfAMinuteLeft(t *testing.T) {
	st := apitype.Status{Name: "a", State: apitype.StateConnected, Usable: true, AccessExpiry: now.Add(90*time.Minute + 30*time.Second)}
	next := NextSummary(st, now)
	if next != now.Add(30*time.Second+time.Millisecond) {
		t.Fatalf("next change in %s, want just after 30 s", next.Sub(now))
	}
	if Summary(st, now.Add(30*time.Second)) != Summary(st, now) || Summary(st, next) == Summary(st, now) {
		t.Fatalf("the summary reads %q, then %q at the change", Summary(st, now), Summary(st, next))
	}
	if !NextSummary(apitype.Status{State: apitype.StateNeedsReauth}, now).IsZero() {
		t.Fatal("a summary without a countdown has no next change")
	}
}

func TestTheRateLimitSaysWhatIsLeftAndUntilWhen(t *testing.T) {
	if got := RateLimit(&apitype.RateLimit{Limit: 600, Remaining: 412, Reset: now.Add(40 * time.Minute)}, now); got != "412 of 600 requests left until 09:40" {
		t.Fatalf("%q", got)
	}
	if got := RateLimit(&apitype.RateLimit{Limit: 600, Remaining: 0, Reset: now.Add(-time.Minute)}, now); got != "0 of 600 requests left" {
		t.Fatalf("a reset in the past: %q", got)
	}
	if RateLimit(nil, now) != "" {
		t.Fatal("nothing reported, nothing said")
	}
}

// The refresh token's forecast, in the words of the issue: "refresh
// token: about 58 days left".
func TestTheRefreshTokensForecast(t *testing.T) {
	st := status("x", apitype.StateConnected, true)
	if got := RefreshToken(st, now); got != "" {
		t.Errorf("unknown: %q", got)
	}
	st.RefreshTokenEnd, st.RefreshTokenEndAbout = now.Add(58*24*time.Hour-time.Hour), "Atlassian's rule"
	if got := RefreshToken(st, now); got != "refresh token: about 58 days left (Atlassian's rule)" {
		t.Errorf("fixed: %q", got)
	}
	st.RefreshTokenRenewable = true
	if got := RefreshToken(st, now); got != "refresh token: about 58 days left (Atlassian's rule; each refresh renews it)" {
		t.Errorf("renewable: %q", got)
	}
	st.RefreshTokenEnd = now.Add(20 * time.Hour)
	if got := RefreshTokenLeft(st, now); got != "about 20 hours left" {
		t.Errorf("hours: %q", got)
	}
	st.AccessExpiry, st.RefreshTokenEnding = now.Add(50*time.Minute), true
	if got := Summary(st, now); got != "50 m left, refresh token about 20 hours left" {
		t.Errorf("the menu while it ends: %q", got)
	}
	// A fixed end is always in the menu; a renewable one, tokentray's
	// business, only when it is told of.
	st.RefreshTokenEnding, st.RefreshTokenRenewable, st.RefreshTokenEnd = false, false, now.Add(58*24*time.Hour)
	if got := Summary(st, now); got != "50 m left, refresh token about 58 days left" {
		t.Errorf("a fixed end: %q", got)
	}
	st.RefreshTokenRenewable = true
	if got := Summary(st, now); got != "50 m left" {
		t.Errorf("a renewable end: %q", got)
	}
}

// The last refresh names the instance that made it where machines share
// the store, and only there.
func TestTheLastRefreshNamesItsInstanceWhenShared(t *testing.T) {
	ago := now.Add(-2 * time.Minute)
	for _, tc := range []struct {
		st   apitype.Status
		want string
	}{
		{apitype.Status{State: apitype.StateDisconnected}, "—"},
		{apitype.Status{State: apitype.StateConnected}, "none since sign-in"},
		{apitype.Status{State: apitype.StateConnected, LastRefresh: ago, LastRefreshOK: true}, Ago(ago, now) + " · ok"},
		{apitype.Status{State: apitype.StateConnected, LastRefresh: ago, LastRefreshOK: true, LastRefreshBy: "moby-2"}, Ago(ago, now) + " by moby-2 · ok"},
		{apitype.Status{State: apitype.StateDegraded, LastRefresh: ago, LastRefreshBy: "moby-3"}, Ago(ago, now) + " by moby-3 · failed"},
	} {
		if got := LastRefresh(tc.st, now); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestWhoSharesAConnectionIsSaidOnce(t *testing.T) {
	now := time.Date(2026, 12, 6, 2, 15, 0, 0, time.UTC)
	at := now.Add(-2 * time.Minute)
	for _, tc := range []struct {
		shared             *apitype.Shared
		instances, refresh string
	}{
		{nil, "", ""},
		{&apitype.Shared{Instance: "moby-1", Instances: []string{"moby-1", "moby-2"}}, "moby-1 (this one), moby-2", ""},
		{&apitype.Shared{Instance: "moby-1", Instances: []string{"moby-2"}, LeaseHolder: "moby-2"},
			"moby-2; this one (moby-1) is not listening to the store", "being refreshed by moby-2 now"},
		{&apitype.Shared{Instance: "moby-1", Instances: []string{"moby-1"}, IntentBy: "moby-3", IntentAt: at},
			"moby-1 (this one)", "a refresh by moby-3 left uncommitted (" + Ago(at, now) + "): it died or paused mid-refresh, and the next refresh waits out the rescue window"},
		{&apitype.Shared{Instance: "moby-1", Instances: []string{"moby-1"}, LeaseHolder: "moby-1", IntentBy: "moby-3", IntentAt: at},
			"moby-1 (this one)", "a refresh by moby-3 left uncommitted (" + Ago(at, now) + "): it died or paused mid-refresh, and the next refresh waits out the rescue window; moby-1 holds the lease now"},
	} {
		st := apitype.Status{Name: "p", Shared: tc.shared}
		if got := Instances(st); got != tc.instances {
			t.Errorf("Instances(%+v) = %q; want %q", tc.shared, got, tc.instances)
		}
		if got := SharedRefresh(st, now); got != tc.refresh {
			t.Errorf("SharedRefresh(%+v) = %q; want %q", tc.shared, got, tc.refresh)
		}
	}
}
