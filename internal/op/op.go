// Package op turns the core's values into the local API's wire types
// (client/apitype), and its errors into the API's errors (ErrorOf), once:
// the service's operations (internal/service) answer with them over the
// socket and in a command's own process alike, so that a command means
// the same either way. It also holds the steps of an operation on one
// keeper that the service's methods are made of.
package op

import (
	"context"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/humanize"
)

// NewToken is the API's answer for a token handed out at now.
func NewToken(t *auth.Handout, k *auth.Keeper, now time.Time) apitype.Token {
	return apitype.Token{AccessToken: t.AccessToken.Reveal(), TokenType: t.TokenType, ExpiresAt: t.Expiry().UTC(),
		ExpiresIn: int64(t.Expiry().Sub(now) / time.Second), APIBase: k.Connection().Endpoints.APIBase,
		Provider: k.Connection().Provider.Name, Warning: t.Warning}
}

// Describe is the API's entry for a connection, now.
func Describe(k *auth.Keeper) apitype.Connection {
	c := k.Connection()
	return apitype.Connection{Status: Status(k.Status()), Provider: c.Provider.Name, Environment: c.Environment, APIBase: c.Endpoints.APIBase,
		CodeSignIn: c.RedirectURI.Raw == "" && c.Endpoints.DeviceAuthURL != ""}
}

// DescribeBroken is the API's entry for a connection whose table cannot
// be used: listed, so that a person sees it, with what to change.
func DescribeBroken(b config.Broken, path string) apitype.Connection {
	name := b.Name
	if name == "" {
		name = b.Label // a table without a name of its own
	}
	return apitype.Connection{Status: apitype.Status{Name: name, State: apitype.StateInvalidConfig,
		LastError: b.Error(), Hint: BrokenHint(path), Problems: b.Problems.ByKey()}}
}

// BrokenHint is what to do about a table that cannot be used.
func BrokenHint(path string) string {
	return "Fix its [[connection]] table in " + path + " (the other connections run on); it is applied without a restart."
}

// Check is a check's result as the API shows it.
func Check(c *auth.CheckResult) *apitype.CheckResult {
	if c == nil {
		return nil
	}
	out := &apitype.CheckResult{Time: c.Time, Status: c.Status, Who: c.Who, Error: c.Error, Hint: Hint(c.Next, ""), Next: c.Next}
	if i := c.TokenInfo; i != nil {
		out.TokenInfo = &apitype.TokenInfo{ExpiresIn: i.ExpiresIn, Scopes: i.Scopes, ResourceOwnerID: i.Owner,
			ApplicationUID: i.Application, Error: i.Error}
	}
	return out
}

// Status is a status as the API and `status --json` show it.
func Status(st auth.Status) apitype.Status {
	out := apitype.Status{
		Name: st.Name, Grant: string(st.Grant), State: string(st.State), Usable: st.Usable,
		AccessObtained: st.AccessObtained, AccessExpiry: st.AccessExpiry, LifetimeGuessed: st.LifetimeGuessed,
		NextRefresh: st.NextRefresh, LastRefresh: st.LastRefresh, LastRefreshOK: st.LastRefreshOK, LastRefreshBy: st.LastRefreshBy,
		HasRefreshToken: st.HasRefreshToken, RefreshTokenSince: st.RefreshTokenSince,
		LastError: st.LastError, Hint: Hint(st.Next, st.Hint), Next: st.Next,
		Endpoints: apitype.Endpoints(st.Endpoints),
	}
	out.LastCheck = Check(st.LastCheck)
	out.AuthMethod, out.AuthMethodFrom, out.MetadataWarning = st.AuthMethod, st.AuthMethodFrom, st.MetadataWarning
	out.APIRefused = st.APIRefused
	out.RefreshTokenEnd, out.RefreshTokenEndAbout = st.RefreshTokenEnd, st.RefreshTokenEndAbout
	out.RefreshTokenRenewable, out.RefreshTokenEnding = st.RefreshTokenRenewable, st.RefreshTokenEnding
	if rl := st.RateLimit; rl != nil {
		out.RateLimit = &apitype.RateLimit{Limit: rl.Limit, Remaining: rl.Remaining, Reset: rl.Reset, Time: rl.Time}
	}
	return out
}

// Hint is the "hint" beside a step on the wire: the step said for a
// terminal, which scripts and older clients read; without one, the advice
// in words an older tokentray kept (said), as it is.
func Hint(next *nextstep.Step, said string) string {
	return humanize.Advice(next, said, humanize.Terminal)
}

// Token hands out k's access token, valid for at least minValid, as the
// API answers it at now.
func Token(ctx context.Context, k *auth.Keeper, minValid time.Duration, now func() time.Time) (apitype.Token, error) {
	t, err := k.BareToken(ctx, minValid)
	if err != nil {
		return apitype.Token{}, err
	}
	return NewToken(t, k, now()), nil
}

// Refresh refreshes k now. With stale (apitype.TokenHash of the access
// token a client saw refused), it refreshes only if that token is still
// the current one: a burst of 401s costs one refresh, not one each.
func Refresh(ctx context.Context, k *auth.Keeper, stale string) (apitype.Connection, error) {
	refresh := k.Refresh
	if stale != "" {
		refresh = func(ctx context.Context) error {
			return k.RefreshRefused(ctx, func(token string) bool { return apitype.TokenHash(token) == stale })
		}
	}
	if err := refresh(ctx); err != nil {
		return apitype.Connection{}, err
	}
	return Describe(k), nil
}

// Logout signs k's connection out: the tokens revoked at the provider
// (unless localOnly) and deleted here.
func Logout(ctx context.Context, k *auth.Keeper, localOnly bool) (apitype.SignedOut, error) {
	out, err := k.Logout(ctx, localOnly)
	if err != nil {
		return apitype.SignedOut{}, err
	}
	return apitype.SignedOut{Connection: Describe(k), Revoked: out.Revoked, NotRevoked: out.NotRevoked}, nil
}
