// Package alerts decides when a person must hear about a connection: once
// when it needs a sign-in, once when its access token has expired while
// tokentray cannot get a new one, and once when it recovers. Never once per
// retry. The tray's notifications and the on_alert hook both follow it.
package alerts

import (
	"context"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/humanize"
)

// Kind is what the alert is about.
type Kind string

const (
	// NeedsReauth: the refresh token was refused; a person must sign in.
	NeedsReauth Kind = "needs_reauth"
	// Expired: the access token expired while refreshing keeps failing.
	Expired Kind = "expired"
	// ClientRefused: the provider refused the client (its secret, id or
	// authentication method); the refresh token is kept for when it is fixed.
	ClientRefused Kind = "client_refused"
	// APIRefused: the API refuses even a freshly refreshed access token
	// (seen by the proxy); no refresh helps, a person must look.
	APIRefused Kind = "api_refused"
	// RefreshTokenExpiring: the refresh token's foreseen end is within
	// refresh_token_warning and no refresh will move it; a sign-in will
	// be needed. Once per foreseen end.
	RefreshTokenExpiring Kind = "refresh_token_expiring"
	// InvalidConfig: the connection's table in the config file cannot be
	// used as it is; the other connections run on. Once per breakage.
	InvalidConfig Kind = "invalid_config"
	// Recovered: a connection that was alerted about works again.
	Recovered Kind = "recovered"
)

// Alert is one thing to tell a person.
type Alert struct {
	Connection string    `json:"connection"`
	Kind       Kind      `json:"kind"`
	From       string    `json:"old_state,omitempty"`
	To         string    `json:"new_state,omitempty"`
	Error      string    `json:"error,omitempty"`
	Hint       string    `json:"hint,omitempty"` // Next said for a terminal, for the on_alert script
	Time       time.Time `json:"time"`
	// Next is what a person does next, as data (client/nextstep).
	Next *nextstep.Step `json:"next,omitempty"`
	// Generation is the generation of the tokens it is about
	// (auth.Event.Generation); 0 when not known. Not in the hook's JSON:
	// it serves Occurrence.
	Generation uint64 `json:"-"`
}

// Occurrence names the happening that a tells of, alike on every instance
// that shares the connection's store: what is claimed (Claimer) so that
// one instance tells it. kind is the alert's kind, with what recovered
// ("recovered" from a token's state, "recovered_api" from the API's
// refusal, which can end with the same tokens); ok is false when the
// generation is not known, and a is told wherever it is seen.
func (a Alert) Occurrence() (kind string, generation uint64, ok bool) {
	kind = string(a.Kind)
	if a.Kind == Recovered && a.From == "" {
		kind = "recovered_api"
	}
	return kind, a.Generation, a.Generation != 0
}

// Claimer is a store that several instances share, which picks the one
// instance that tells an occurrence (Alert.Occurrence): the first to claim
// it, by a compare-and-set in the store's engine (internal/store/postgres).
// On one machine there is nothing to pick.
type Claimer interface {
	// ClaimAlert records that this instance tells alert kind of name for
	// generation, unless the same kind was claimed for that generation or
	// a later one. won: tell it; otherwise by is the instance that did.
	ClaimAlert(ctx context.Context, name, kind string, generation uint64) (won bool, by string, err error)
}

// Tracker turns keeper events into alerts. It is not safe for concurrent
// use; give each event stream its own, or serialise.
type Tracker struct {
	raised map[string]Kind // connection -> the alert in force
	// apiRefused are the connections whose API refuses their tokens: an
	// alert of its own, beside the token's state.
	apiRefused map[string]bool
	// ending are the foreseen ends told of, by connection.
	ending map[string]time.Time
}

// NewTracker returns a tracker with nothing raised.
func NewTracker() *Tracker {
	return &Tracker{raised: map[string]Kind{}, apiRefused: map[string]bool{}, ending: map[string]time.Time{}}
}

// Observe returns the alert that e calls for, if any.
func (t *Tracker) Observe(e auth.Event) (Alert, bool) {
	a := Alert{Connection: e.Connection, From: string(e.From), To: string(e.To), Error: e.Error,
		Hint: humanize.Advice(e.Next, e.Hint, humanize.Terminal), Next: e.Next, Time: e.Time, Generation: e.Generation}
	in := t.raised[e.Connection]
	switch {
	case e.Kind == auth.EventState && e.To == auth.StateNeedsReauth:
		if in == NeedsReauth {
			return Alert{}, false
		}
		t.raised[e.Connection] = NeedsReauth
		a.Kind = NeedsReauth
		return a, true
	case e.Kind == auth.EventState && e.To == auth.StateClientRefused:
		if in == ClientRefused {
			return Alert{}, false
		}
		t.raised[e.Connection] = ClientRefused
		a.Kind = ClientRefused
		return a, true
	case e.Kind == auth.EventAccessExpired:
		if in != "" {
			return Alert{}, false // already told; needs_reauth says more
		}
		t.raised[e.Connection] = Expired
		a.Kind = Expired
		a.To = string(auth.StateDegraded)
		return a, true
	case e.Kind == auth.EventState && e.To == auth.StateConnected:
		if in == "" {
			return Alert{}, false
		}
		delete(t.raised, e.Connection)
		a.Kind = Recovered
		return a, true
	case e.Kind == auth.EventAPIRefused:
		if t.apiRefused[e.Connection] {
			return Alert{}, false
		}
		t.apiRefused[e.Connection] = true
		a.Kind = APIRefused
		return a, true
	case e.Kind == auth.EventRefreshTokenExpiring:
		// The keeper tells each foreseen end once; a second event is a
		// new end.
		a.Kind = RefreshTokenExpiring
		return a, true
	case e.Kind == auth.EventAPIAccepted:
		if !t.apiRefused[e.Connection] {
			return Alert{}, false
		}
		delete(t.apiRefused, e.Connection)
		a.Kind = Recovered
		return a, true
	case e.Kind == auth.EventState && e.To == auth.StateDisconnected:
		delete(t.raised, e.Connection) // signed out on purpose: nothing to recover from
	}
	return Alert{}, false
}

// Seed returns the alert that a connection already in st calls for when
// it is first followed: a keeper that failed before anyone listened (at
// start-up, a dead refresh token fails within milliseconds) is told of
// all the same, and its event, if it comes after, is no second alert.
func (t *Tracker) Seed(st auth.Status, at time.Time) (Alert, bool) {
	return t.ObserveStatus(nil, apitype.Status{Name: st.Name, State: string(st.State), Usable: st.Usable, LastError: st.LastError, Hint: st.Hint, Next: st.Next}, at)
}

// ObserveStatus returns the alert that a change of a connection's reported
// status from before (nil: first seen) to now calls for: the alerts its
// keeper's events give, for a connection whose keeper runs elsewhere (a
// [[remote]] server's). Not knowing (unreachable) is no change.
func (t *Tracker) ObserveStatus(before *apitype.Status, now apitype.Status, at time.Time) (Alert, bool) {
	if now.State == apitype.StateUnreachable {
		return Alert{}, false
	}
	from := ""
	if before != nil {
		from = before.State
	}
	if from != now.State {
		if a, ok := t.Observe(auth.Event{Connection: now.Name, Kind: auth.EventState, From: auth.State(from), To: auth.State(now.State),
			Error: now.LastError, Hint: now.Hint, Next: now.Next, Time: at}); ok {
			return a, true
		}
	}
	if now.State == apitype.StateDegraded && !now.Usable && (before == nil || before.Usable) {
		return t.Observe(auth.Event{Connection: now.Name, Kind: auth.EventAccessExpired, Error: now.LastError, Hint: now.Hint, Next: now.Next, Time: at})
	}
	if now.RefreshTokenEnding && !auth.SameEnd(t.ending[now.Name], now.RefreshTokenEnd) {
		t.ending[now.Name] = now.RefreshTokenEnd
		return Alert{Connection: now.Name, Kind: RefreshTokenExpiring, From: now.State, To: now.State,
			Error: humanize.RefreshToken(now, at), Hint: humanize.Advice(now.Next, now.Hint, humanize.Terminal), Next: now.Next, Time: at}, true
	}
	return Alert{}, false
}
