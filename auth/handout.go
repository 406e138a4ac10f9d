package auth

import (
	"context"
	"fmt"
	"time"
)

// Handing out access tokens: the margin a caller gets, when a held token
// will do, and the promises made to callers that a refresh must keep.

// margin is the validity a request for minValid asks of t.
func (k *Keeper) margin(t *TokenSet, minValid time.Duration) time.Duration {
	if minValid != DefaultMinValid {
		return minValid
	}
	if t == nil || t.Lifetime <= 0 {
		return defaultMargin
	}
	f := k.conn.RefreshAt
	if f <= 0 || f >= 1 {
		f = DefaultRefreshAt
	}
	return min(defaultMargin, time.Duration(float64(t.Lifetime)*(1-f)))
}

// meets reports whether t can be handed to a caller who needs it for d: it
// is valid that long, and the scheduled refresh does not fall inside that
// window. Some servers revoke the previous access token at every refresh, so
// a token handed out just before tokentray's own refresh would die early.
// A need as long as the time from a refresh to the next (refresh_at of the
// lifetime) has the scheduled refresh inside its window even with a new
// token: refreshing cannot help it, validity is all it can have.
func (k *Keeper) meets(t *TokenSet, now time.Time, d time.Duration) bool {
	if t == nil || !t.ValidFor(now, d) {
		return false
	}
	refreshAt := k.conn.refreshAt(t.ObtainedAt, t.Lifetime)
	return now.Add(d).Before(refreshAt) || d >= refreshAt.Sub(t.ObtainedAt)
}

// Token returns an access token that stays valid for at least minValid, or
// for the default margin with DefaultMinValid. It refreshes first when the
// token would not last that long, or when the scheduled refresh falls
// within that time (the new token is handed out instead). Such a refresh
// waits until the tokens handed out before have had the time they were
// promised: some servers revoke the previous access token at every refresh.
//
// When no such token can be had (an outage, a refused client, a sign-in
// needed):
//   - with DefaultMinValid, the held token is handed out while it is valid
//     at all, with a Warning that says why it was not refreshed;
//   - with an explicit minValid, the held token is handed out only if it
//     lasts minValid; otherwise the error says why (ErrUnreachable,
//     ErrNeedsSignIn, ErrCredentialsRefused).
//
// A minValid no token of this provider can meet is ErrMinValidUnmeetable,
// unless a sign-in is needed anyway, which is said first.
func (k *Keeper) Token(ctx context.Context, minValid time.Duration) (*Handout, error) {
	if err := k.ensureLoaded(ctx); err != nil {
		return nil, err
	}
	held := false // waited for earlier promises once already
	for attempt := 0; ; attempt++ {
		k.mu.Lock()
		now := k.opt.Clock.Now()
		t, state := k.token, k.state
		waiting := state == StateDegraded && now.Before(k.retryAt)
		k.mu.Unlock()
		need := k.margin(t, minValid)

		if state == StateDisconnected && k.conn.Grant != GrantClientCredentials {
			return nil, fmt.Errorf("%s is not signed in: run `tokentray login %s`: %w", k.conn.Name, k.conn.Name, ErrNeedsSignIn)
		}
		if t != nil && minValid != DefaultMinValid && minValid >= t.Lifetime {
			if state == StateNeedsReauth {
				return nil, k.unavailableError(t, 0)
			}
			// No refresh can help; do not spend a refresh token finding out.
			return nil, fmt.Errorf("%s: the provider issues access tokens valid for %s, so --min-valid %s can never be met; ask for less, or leave --min-valid out for a margin that fits: %w",
				k.conn.Name, t.Lifetime.Round(time.Second), minValid, ErrMinValidUnmeetable)
		}
		if k.meets(t, now, need) {
			k.promise(t, now.Add(need))
			return &Handout{TokenSet: *t}, nil
		}
		// One refresh try, unless the connection cannot refresh now: the
		// grant is dead, or a failing provider asked for time (a burst of
		// callers must not hammer it).
		if attempt == 0 && state != StateNeedsReauth && !waiting {
			// A refresh revokes the current access token at some servers:
			// when the current token would do but for the scheduled refresh
			// inside the window, first let the tokens handed out before run
			// their course. A caller that needs more than the token has left
			// is served at once.
			if end := k.promisesEnd(t, now); !held && t.ValidFor(now, need) && end.After(now) {
				held = true
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-k.opt.Clock.After(end.Sub(now)):
				}
				attempt-- // waiting was not the try
				continue
			}
			if err := k.refresh(ctx, false, need, nil); err != nil && ctx.Err() != nil {
				return nil, err
			}
			continue
		}
		switch {
		case t.ValidFor(now, need):
			// Valid long enough; only the scheduled refresh inside the window
			// could not be avoided (it failed, or the caller asks for more than
			// the time between two refreshes).
			k.promise(t, now.Add(need))
			return &Handout{TokenSet: *t, Warning: k.warning()}, nil
		case minValid == DefaultMinValid && t.ValidFor(now, 0):
			k.promise(t, t.Expiry())
			return &Handout{TokenSet: *t, Warning: k.warning()}, nil
		}
		return nil, k.unavailableError(t, need)
	}
}

// promise records that t was handed out to be valid until end.
func (k *Keeper) promise(t *TokenSet, end time.Time) {
	if !k.opt.OnlyHolder {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.promisedFor != t.AccessToken {
		k.promisedFor, k.promisedUntil = t.AccessToken, time.Time{}
	}
	// The scheduled refresh comes at its time whatever was promised; only a
	// refresh a caller asks for earlier waits for the promises.
	if r := k.conn.refreshAt(t.ObtainedAt, t.Lifetime); end.After(r) {
		end = r
	}
	if end.After(k.promisedUntil) {
		k.promisedUntil = end
	}
}

// promisesEnd is when every promise made for the access token of t ends:
// what this keeper promised, when it hands out every token; otherwise its
// scheduled refresh, up to which any process may have handed it out. Zero
// when t is not valid (nothing to keep).
func (k *Keeper) promisesEnd(t *TokenSet, now time.Time) time.Time {
	if !t.ValidFor(now, 0) {
		return time.Time{}
	}
	if !k.opt.OnlyHolder {
		return k.conn.refreshAt(t.ObtainedAt, t.Lifetime)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.promisedFor != t.AccessToken {
		return time.Time{}
	}
	return k.promisedUntil
}

// warning says why the token handed out was not refreshed; empty when the
// connection is fine.
func (k *Keeper) warning() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch k.state {
	case StateDegraded, StateNeedsReauth, StateClientRefused:
		return orUnknown(k.errText)
	}
	return ""
}

// unavailableError explains why no token lasting minValid can be had.
func (k *Keeper) unavailableError(t *TokenSet, minValid time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return withHint(k.unavailableLocked(t, minValid), k.hint)
}

func (k *Keeper) unavailableLocked(t *TokenSet, minValid time.Duration) error {
	switch {
	case k.state == StateClientRefused || (k.conn.Grant == GrantClientCredentials && (k.state == StateNeedsReauth || k.state == StateDisconnected)):
		return fmt.Errorf("%s has no usable access token: %s: %w", k.conn.Name, orUnknown(k.errText), ErrCredentialsRefused)
	case k.state == StateNeedsReauth || k.state == StateDisconnected:
		return fmt.Errorf("%s needs a new sign-in (%s): run `tokentray login %s`: %w", k.conn.Name, orUnknown(k.errText), k.conn.Name, ErrNeedsSignIn)
	case k.state == StateDegraded:
		valid := "no valid access token"
		if t.ValidFor(k.opt.Clock.Now(), 0) {
			valid = fmt.Sprintf("the access token held expires at %s, sooner than the %s asked for,", t.Expiry().Format(time.RFC3339), minValid)
		}
		return fmt.Errorf("%s: %s and the last refresh failed: %s: %w", k.conn.Name, valid, orUnknown(k.errText), ErrUnreachable)
	}
	return fmt.Errorf("%s: no access token valid for %s could be obtained", k.conn.Name, minValid)
}

func orUnknown(s string) string {
	if s == "" {
		return "reason unknown"
	}
	return s
}
