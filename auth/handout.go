package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
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

// Promises. A caller with an explicit min-valid is promised its window: the
// access token handed out is not revoked by tokentray's own refresh before
// the window ends (some servers, Ory Hydra, revoke the previous access token
// at every refresh). Where the token covers the window (it ends no later
// than the expiry less refreshMargin), the promise moves the scheduled
// refresh to the window's end instead of costing a refresh now; a burst of
// callers then costs one refresh, not one per caller whose window crosses
// the schedule. The latest promise is kept with the tokens (TokenSet.
// Promised), so every process over the store keeps it.

// requestTimeout is the time one refresh of a token like t is planned to
// take at most. Unless set in KeeperOptions, it scales with the lifetime,
// L/20 between 1 s and 30 s, so that refreshMargin fits short lifetimes
// too (30 s tokens: 1.5 s).
func (k *Keeper) requestTimeout(t *TokenSet) time.Duration {
	if !k.scaleTimeout || t == nil || t.Lifetime <= 0 {
		return k.opt.RequestTimeout
	}
	return min(max(t.Lifetime/20, time.Second), k.opt.RequestTimeout)
}

// minCallTimeout is the least a refresh's request is given before it is
// abandoned when requestTimeout scaled down.
const minCallTimeout = 10 * time.Second

// callTimeout is how long a refresh's request may take before it is
// abandoned: requestTimeout, but not less than minCallTimeout where that
// was scaled down. A request abandoned after the server refreshed has
// spent the refresh token, and at a strict provider the grant with it; a
// slow answer only eats into the margin, while the old token stays valid.
func (k *Keeper) callTimeout(t *TokenSet) time.Duration {
	if !k.scaleTimeout {
		return k.opt.RequestTimeout
	}
	return max(k.requestTimeout(t), minCallTimeout)
}

// refreshMargin is the time before t's expiry that a promise leaves free:
// room for the refresh (one request, requestTimeout), a pause of at most as
// long, and one retry (nextDueLocked brings that retry forward).
func (k *Keeper) refreshMargin(t *TokenSet) time.Duration {
	return 3 * k.requestTimeout(t)
}

// promiseCap is the latest a promise may move t's refresh to: its expiry
// less the margin. At or before refreshAt (a lifetime too short for the
// margin, or refresh_at close to 1), no promise moves the refresh.
func (k *Keeper) promiseCap(t *TokenSet) time.Time {
	return t.Expiry().Add(-k.refreshMargin(t))
}

// scheduled is when t is due for refresh: refresh_at of its lifetime, or
// the end of the latest promise made for it when that is later, never past
// promiseCap.
func (k *Keeper) scheduled(t *TokenSet) time.Time {
	due := k.conn.refreshAt(t.ObtainedAt, t.Lifetime)
	if t.Promised.After(due) {
		due = latest(due, earliest(t.Promised, k.promiseCap(t)))
	}
	return due
}

// meets reports whether t can be handed to a caller who needs it for d: it
// is valid that long, and the scheduled refresh does not fall inside that
// window, or (promise, an explicit min-valid) it can be moved past it: the
// window ends by promiseCap. Without promise (the default margin, plain
// calls in a loop) nothing moves. A need as long as the time from a refresh
// to the next (refresh_at of the lifetime) has the scheduled refresh inside
// its window even with a new token: refreshing cannot help it, validity is
// all it can have.
func (k *Keeper) meets(t *TokenSet, now time.Time, d time.Duration, promise bool) bool {
	if t == nil || !t.ValidFor(now, d) {
		return false
	}
	end := now.Add(d)
	if end.Before(k.scheduled(t)) || (promise && !end.After(k.promiseCap(t))) {
		return true
	}
	refreshAt := k.conn.refreshAt(t.ObtainedAt, t.Lifetime)
	return d >= refreshAt.Sub(t.ObtainedAt)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// errTokensChanged: the stored tokens are no longer those a promise was to
// be made for (another process refreshed); they were adopted, look again.
var errTokensChanged = errors.New("the stored tokens changed")

// keepPromise moves t's scheduled refresh to end, the end of a window just
// promised, when that is later than it is now. The write is bookkeeping: a
// read-modify-write under the connection's lock of the token set as stored,
// which changes only Promised and PromiseVersion and only when the stored
// access token is still t's; so no process refreshes into the window
// after it was kept, and no new token set is made. end is rounded up to
// the second (a burst of callers moves it a few times, not once each) and
// capped at promiseCap, which the caller checked the window against.
func (k *Keeper) keepPromise(ctx context.Context, t *TokenSet, end time.Time) error {
	if r := end.Truncate(time.Second); r.Before(end) {
		end = r.Add(time.Second)
	}
	end = earliest(end, k.promiseCap(t))
	k.mu.Lock()
	moved := k.token != nil && k.token.AccessToken == t.AccessToken && end.After(k.scheduled(k.token))
	k.mu.Unlock()
	if !moved {
		return nil
	}
	lockCtx, cancel := context.WithTimeout(ctx, k.opt.LockTimeout)
	unlock, err := k.opt.Locker.Lock(lockCtx, k.conn.Name)
	cancel()
	if err != nil {
		return fmt.Errorf("keep the promise for %s: %w", k.conn.Name, err)
	}
	defer unlock()
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if err != nil {
		return fmt.Errorf("keep the promise for %s: %w", k.conn.Name, err)
	}
	if stored.AccessToken != t.AccessToken {
		k.mu.Lock()
		if changedElsewhere(k.token, stored) {
			k.adoptLocked(stored)
		}
		k.mu.Unlock()
		return errTokensChanged
	}
	next := stored
	if end.After(stored.Promised) {
		next = new(TokenSet)
		*next = *stored
		next.Promised, next.PromiseVersion = end, stored.PromiseVersion+1
		if err := k.saveBookkeeping(context.WithoutCancel(ctx), next); err != nil {
			return fmt.Errorf("keep the promise for %s: %w", k.conn.Name, err)
		}
	}
	k.mu.Lock()
	if k.token != nil && !changedElsewhere(k.token, next) {
		k.token = next
	}
	k.mu.Unlock()
	select { // the scheduler looks at its new deadline
	case k.kick <- struct{}{}:
	default:
	}
	return nil
}

// Token returns an access token that stays valid for at least minValid, or
// for the default margin with DefaultMinValid. An explicit minValid is a
// promise: the token handed out is not revoked by a refresh of tokentray's
// before the window ends.
//
//  1. A token whose scheduled refresh falls after the window is handed out.
//  2. With an explicit minValid, a token that covers the window (it ends by
//     the expiry less refreshMargin) is handed out, and the scheduled
//     refresh moves to the window's end (keepPromise).
//  3. Otherwise it refreshes first and hands out the new token. When the
//     current token would last long enough, that refresh first waits until
//     the tokens handed out before have had the time they were promised.
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
	promise := minValid != DefaultMinValid
	held := false // waited for earlier promises once already
	keep := false // the held token lasts the need: earlier promises run their course first
	changes := 0  // times the stored tokens changed under a promise
	for attempt := 0; ; attempt++ {
		k.mu.Lock()
		now := k.opt.Clock.Now()
		t, state := k.token, k.state
		waiting := state == StateDegraded && now.Before(k.retryAt)
		k.mu.Unlock()
		need := k.margin(t, minValid)

		if state == StateDisconnected && k.conn.Grant != GrantClientCredentials {
			return nil, withStep(fmt.Errorf("%s is not signed in: %w", k.conn.Name, ErrNeedsSignIn), step(nextstep.SignIn, k.conn.Name))
		}
		if t != nil && promise && minValid >= t.Lifetime {
			if state == StateNeedsReauth {
				return nil, k.unavailableError(t, 0)
			}
			// No refresh can help; do not spend a refresh token finding out.
			return nil, fmt.Errorf("%s: the provider issues access tokens valid for %s, so a minimum validity of %s can never be met; ask for less, or for none, which leaves a margin that fits: %w",
				k.conn.Name, t.Lifetime.Round(time.Second), minValid, ErrMinValidUnmeetable)
		}
		if k.meets(t, now, need, promise) {
			if promise {
				err := k.keepPromise(ctx, t, now.Add(need))
				if errors.Is(err, errTokensChanged) && changes < 3 {
					changes++
					attempt-- // another process refreshed: look at its tokens
					continue
				}
				if err != nil {
					// Handed out all the same: this process keeps it
					// (promise, below); other processes cannot see it.
					k.log.Warn("the promise could not be kept with the tokens", "err", err)
				}
			}
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
			keep = keep || t.ValidFor(now, need)
			if end := k.promisesEnd(t, now); !held && keep && end.After(now) {
				held = true
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-k.opt.Clock.After(end.Sub(now)):
				}
				attempt-- // waiting was not the try
				continue
			}
			err := k.refreshFor(ctx, false, need, promise, keep, nil)
			if errors.Is(err, errPromisesPending) {
				// Another process promised the token longer than this one
				// knew: wait for that too.
				held = false
				attempt--
				continue
			}
			if err != nil && ctx.Err() != nil {
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

// promise records in memory that t was handed out to be valid until end
// (every handout, plain ones too): a refresh a caller asks for waits for it.
// Only the keeper that hands out every token knows them all.
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
	if r := k.scheduled(t); end.After(r) {
		end = r
	}
	if end.After(k.promisedUntil) {
		k.promisedUntil = end
	}
}

// promisesEnd is when every promise made for the access token of t ends:
// what this keeper promised, when it hands out every token, and the latest
// explicit promise kept with the tokens; otherwise its scheduled refresh
// (which that promise moved), up to which any process may have handed it
// out. Zero when t is not valid (nothing to keep).
func (k *Keeper) promisesEnd(t *TokenSet, now time.Time) time.Time {
	if !t.ValidFor(now, 0) {
		return time.Time{}
	}
	if !k.opt.OnlyHolder {
		return k.scheduled(t)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	end := earliest(t.Promised, k.promiseCap(t))
	if k.promisedFor == t.AccessToken {
		end = latest(end, k.promisedUntil)
	}
	return end
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
	err := k.unavailableLocked(t, minValid)
	switch {
	case k.next != nil:
		return withStep(err, k.next)
	case k.conn.Grant == GrantClientCredentials:
	case k.state == StateNeedsReauth:
		return withStep(err, step(nextstep.SignInAgain, k.conn.Name))
	case k.state == StateDisconnected:
		return withStep(err, step(nextstep.SignIn, k.conn.Name))
	}
	return err
}

func (k *Keeper) unavailableLocked(t *TokenSet, minValid time.Duration) error {
	switch {
	case k.state == StateClientRefused || (k.conn.Grant == GrantClientCredentials && (k.state == StateNeedsReauth || k.state == StateDisconnected)):
		return fmt.Errorf("%s has no usable access token: %s: %w", k.conn.Name, orUnknown(k.errText), ErrCredentialsRefused)
	case k.state == StateNeedsReauth || k.state == StateDisconnected:
		return fmt.Errorf("%s needs a new sign-in (%s): %w", k.conn.Name, orUnknown(k.errText), ErrNeedsSignIn)
	case k.state == StateDegraded:
		valid := "no valid access token"
		if t.ValidFor(k.opt.Clock.Now(), 0) {
			valid = fmt.Sprintf("the access token held expires at %s, sooner than the %s asked for,", t.Expiry().Format(time.RFC3339), minValid)
		}
		cause := ErrUnreachable
		if k.storeDown {
			cause = ErrStoreUnreachable // the provider was not even asked
		}
		return fmt.Errorf("%s: %s and the last refresh failed: %s: %w", k.conn.Name, valid, orUnknown(k.errText), cause)
	}
	return fmt.Errorf("%s: no access token valid for %s could be obtained", k.conn.Name, minValid)
}

func orUnknown(s string) string {
	if s == "" {
		return "reason unknown"
	}
	return s
}
