package auth

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokentray/tokentray/client/nextstep"
)

// When a refresh token will die, foreseen: from what the server said when
// it issued it, else from the provider's known rule, else unknown. A person
// hears of a death that no refresh can prevent a while before it; where
// the rule is idle time, the keeper refreshes in time instead.

// RefreshTokenRule is how long a provider lets a refresh token live, as its
// documentation says; the server's own word in a token response comes first.
type RefreshTokenRule struct {
	// Idle: a refresh token not used for this long dies. Every refresh
	// uses it, so a keeper that refreshes before then keeps the connection
	// alive without a person.
	Idle time.Duration
	// Absolute: the grant dies this long after the sign-in, however often
	// it is refreshed; only a new sign-in starts it again.
	Absolute time.Duration
	// Reset, if set, is the first time after t at which the provider ends
	// every grant made before it (Procore's monthly sandbox is overwritten
	// from production on the first working day of each month). A sign-in
	// before then does not help: one after it does.
	Reset func(after time.Time) time.Time
	// ResetWhat says what happens at Reset, for people.
	ResetWhat string
	// About names the rule for people: "Xero: 60 days unused".
	About string
}

// Known reports whether the rule says anything.
func (r RefreshTokenRule) Known() bool { return r.Idle > 0 || r.Absolute > 0 || r.Reset != nil }

// ForecastKind says what a refresh token's forecast end rests on.
type ForecastKind string

const (
	// ForecastServer: the server said how long the refresh token lives
	// (refresh_token_expires_in, x_refresh_token_expires_in).
	ForecastServer ForecastKind = "server"
	// ForecastIdle: the provider's rule for a refresh token left unused.
	ForecastIdle ForecastKind = "idle"
	// ForecastAbsolute: the provider's rule for the whole grant.
	ForecastAbsolute ForecastKind = "absolute"
	// ForecastReset: the provider ends every grant at a known time.
	ForecastReset ForecastKind = "reset"
)

// Forecast is when a connection's refresh token is expected to die.
type Forecast struct {
	// End is the expected end; zero when unknown.
	End  time.Time
	Kind ForecastKind
	// About says why, for people.
	About string
	// Renewable: a refresh before End moves it (an idle rule, or a server
	// whose new refresh tokens have lived as long again), so the keeper
	// refreshes in time and no person is needed while refreshes work.
	Renewable bool
	// renewFrom is the start of the span that ends at End: a renewal is
	// due in its last tenth (Connection.renewAt).
	renewFrom time.Time
}

// DefaultRefreshTokenWarning is how long before a refresh token's foreseen
// end a person hears of it, unless refresh_token_warning says otherwise.
const DefaultRefreshTokenWarning = 7 * 24 * time.Hour

// forecast is when t's refresh token is expected to die: the earliest of
// what the server said and what the rule says.
func (c *Connection) forecast(t *TokenSet) Forecast {
	if t == nil || t.RefreshToken == "" || t.Dead || c.Grant == GrantClientCredentials {
		return Forecast{}
	}
	var f Forecast
	consider := func(next Forecast) {
		if !next.End.IsZero() && (f.End.IsZero() || next.End.Before(f.End)) {
			f = next
		}
	}
	if !t.RefreshTokenExpiry.IsZero() {
		consider(Forecast{End: t.RefreshTokenExpiry, Kind: ForecastServer, About: "as the server said when it issued the refresh token",
			Renewable: !t.RefreshTokenExpiryFixed, renewFrom: t.RefreshTokenSince})
	}
	r := c.refreshTokenRule()
	if r.Idle > 0 {
		// Every refresh uses the refresh token: the last one that worked
		// is when it was last used.
		consider(Forecast{End: t.ObtainedAt.Add(r.Idle), Kind: ForecastIdle, About: r.About, Renewable: true, renewFrom: t.ObtainedAt})
	}
	if r.Absolute > 0 && !t.GrantSince.IsZero() {
		consider(Forecast{End: t.GrantSince.Add(r.Absolute), Kind: ForecastAbsolute, About: r.About})
	}
	if r.Reset != nil {
		since := t.GrantSince
		if since.IsZero() {
			since = t.RefreshTokenSince
		}
		if !since.IsZero() {
			consider(Forecast{End: r.Reset(since), Kind: ForecastReset, About: r.ResetWhat})
		}
	}
	return f
}

// renewAt is when a keeper refreshes t to move its renewable end: in the
// last tenth of the span that ends there. Zero when the end is not
// renewable, or when t was received after that point already: a refresh
// that did not move the end is not repeated.
func (c *Connection) renewAt(t *TokenSet) time.Time {
	f := c.forecast(t)
	if !f.Renewable || f.End.IsZero() {
		return time.Time{}
	}
	at := f.End
	if span := f.End.Sub(f.renewFrom); !f.renewFrom.IsZero() && span > 0 {
		at = f.End.Add(-span / 10)
	}
	if !at.After(t.ObtainedAt) {
		return time.Time{}
	}
	return at
}

// warnAt is when a person hears of f's end: warning before it.
func (c *Connection) warnAt(f Forecast) time.Time {
	if f.End.IsZero() {
		return time.Time{}
	}
	w := c.RefreshTokenWarning
	if w <= 0 {
		w = DefaultRefreshTokenWarning
	}
	return f.End.Add(-w)
}

// ForecastStep is what a person does about an end that is near: sign in
// before it, or, for an end that a sign-in cannot outlive (an environment
// reset), after it.
func ForecastStep(name string, f Forecast) *nextstep.Step {
	if f.Kind == ForecastReset {
		return &nextstep.Step{Kind: nextstep.SignInAfter, Connection: name, At: f.End}
	}
	return &nextstep.Step{Kind: nextstep.SignInBefore, Connection: name, At: f.End}
}

// refreshTokenLifetime reads how long the server says the refresh token in
// tok lives: refresh_token_expires_in (GitHub, Atlassian's and others'
// RFC-style extension) or x_refresh_token_expires_in (Intuit), a number or
// a string of digits (form-encoded answers and some JSON ones send
// strings). Zero when it says nothing.
func refreshTokenLifetime(tok *oauth2.Token) time.Duration {
	for _, key := range []string{"refresh_token_expires_in", "x_refresh_token_expires_in"} {
		var secs float64
		switch v := tok.Extra(key).(type) {
		case float64:
			secs = v
		case int64: // a form-encoded answer's digits, as x/oauth2 reads them
			secs = float64(v)
		case json.Number:
			secs, _ = v.Float64()
		case string:
			secs, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if secs > 0 {
			return time.Duration(secs) * time.Second
		}
	}
	return 0
}

// noteRefreshTokenEnd sets the server's word on how long ts's refresh token
// lives, and whether it moved since prev: a new refresh token whose end
// did not move is one of a grant with a fixed end.
func noteRefreshTokenEnd(ts, prev *TokenSet, lifetime time.Duration, now time.Time) {
	if lifetime > 0 {
		// Whole seconds, as the server counts: an end it keeps fixed must
		// read the same at every refresh, not move by the answer's delay.
		ts.RefreshTokenExpiry = now.Add(lifetime).Truncate(time.Second)
	}
	if prev == nil {
		return
	}
	switch {
	case lifetime <= 0 && ts.RefreshToken == prev.RefreshToken:
		// The same refresh token, nothing said: what was said still holds.
		ts.RefreshTokenExpiry, ts.RefreshTokenExpiryFixed = prev.RefreshTokenExpiry, prev.RefreshTokenExpiryFixed
	case lifetime <= 0 || prev.RefreshTokenExpiry.IsZero():
	case now.Sub(prev.ObtainedAt) < time.Minute:
		// Too soon after the last answer to tell a moving end from a
		// fixed one.
		ts.RefreshTokenExpiryFixed = prev.RefreshTokenExpiryFixed
	default:
		// An end that moved by less than half the time since the last
		// answer is the grant's, not the refresh token's: refreshing does
		// not move it.
		moved := ts.RefreshTokenExpiry.Sub(prev.RefreshTokenExpiry)
		ts.RefreshTokenExpiryFixed = moved < now.Sub(prev.ObtainedAt)/2
	}
	if ts.RefreshTokenExpiryFixed && SameEnd(ts.RefreshTokenExpiry, prev.RefreshTokenExpiry) {
		ts.RefreshTokenExpiry = prev.RefreshTokenExpiry // the same end, read a second apart
	}
}

// SameEnd reports whether two foreseen ends are one: a server that counts
// the seconds left to a fixed end is read a second or so apart.
func SameEnd(a, b time.Time) bool {
	d := a.Sub(b)
	return !a.IsZero() && !b.IsZero() && d < time.Minute && d > -time.Minute
}
