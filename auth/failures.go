package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/humanize/duration"
	"github.com/tokentray/tokentray/internal/safetext"
)

// What a failed refresh means for the connection: the state it leaves the
// keeper in, what is recorded in the store so that every process tells the
// truth, and when to try again. The classification of the provider's
// answers is errors.go's.

// refreshFailed records a failed token call. invalid_grant kills the
// refresh token; the client's own problems (invalid_client and the other
// permanent errors) keep it for when the client settings are fixed;
// transient failures are retried with backoff and jitter.
func (k *Keeper) refreshFailed(ctx context.Context, conn *Connection, current *TokenSet, fingerprint string, err error, lost *Intent) error {
	te := classify(k.opName(), err, conn)
	k.mu.Lock()
	prevMaybeProcessed := k.lastErr != nil && k.lastErr.MaybeProcessed
	k.mu.Unlock()
	switch {
	case te.Class == Permanent && te.Code == "invalid_grant":
		return k.grantRejected(current, te, prevMaybeProcessed, lost)
	case te.Class == Permanent:
		k.mu.Lock()
		k.lastErr = te
		k.mu.Unlock()
		next := k.clientRefused(te.Error(), te.Next)
		if current != nil {
			refused := *current
			refused.RefusedClient = fingerprint
			refused.keepNext(next)
			k.record(ctx, &refused, te.Error())
		}
		return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrCredentialsRefused)
	}
	return k.recordFailure(current, te)
}

// grantRejected: the refresh token is dead. It is recorded as such, so that
// every process and a restart know a sign-in is needed.
func (k *Keeper) grantRejected(current *TokenSet, te *TokenError, prevMaybeProcessed bool, lost *Intent) error {
	k.mu.Lock()
	k.lastErr = te
	next := *step(nextstep.SignInAgain, k.conn.Name)
	if te.Next != nil {
		next = *te.Next
	}
	switch {
	case lost != nil:
		// Another instance presented this refresh token and never
		// committed what came back (it died, or its answer was lost):
		// the one case a shared grant cannot survive at a provider with
		// no reuse grace. Said once: the token is recorded dead below.
		next = next.With(fmt.Sprintf("The refresh answer was lost with instance %s at %s: it presented the refresh token and never saved what the provider sent back, and the provider has since retired that refresh token (it is single-use).",
			safetext.Clean(lost.Instance), lost.At.Local().Format("2006-01-02 15:04:05 MST")))
	case prevMaybeProcessed:
		next = next.With("The previous refresh reached the provider but its answer was lost, and the provider has since retired that refresh token (it is single-use).")
	}
	if f := k.conn.forecast(current); !f.End.IsZero() && !k.opt.Clock.Now().Before(f.End.Add(-time.Hour)) {
		// Foreseen: say so, so nobody looks for another cause.
		next = next.With(fmt.Sprintf("Its foreseen end came on %s (%s).", duration.EndDate(f.End), f.About))
	}
	k.adviseLocked(te.Error(), &next)
	k.failures = 0
	k.setStateLocked(StateNeedsReauth)
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: k.errText, Next: k.next})
	k.mu.Unlock()
	k.log.Warn("refresh rejected", "err", te)
	if current != nil && k.conn.Grant != GrantClientCredentials {
		dead := *current
		dead.Dead = true
		dead.keepNext(&next) // its reason too, for every process's status
		k.record(context.Background(), &dead, te.Error())
	}
	if k.conn.Grant == GrantClientCredentials {
		return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrCredentialsRefused)
	}
	return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrNeedsSignIn)
}

// clientRefused puts the connection in StateClientRefused: a person must fix
// the client settings or secret; the refresh token is kept. Without a step
// of its own (next nil), the step is to fix the client. It returns the
// step told.
func (k *Keeper) clientRefused(errText string, next *nextstep.Step) *nextstep.Step {
	if next == nil {
		next = step(nextstep.FixClient, k.conn.Name)
	}
	if next.Kind == nextstep.FixClient && k.conn.Grant != GrantClientCredentials {
		kept := *next
		kept.KeepsRefreshToken = true
		next = &kept
	}
	k.mu.Lock()
	k.failures = 0
	k.adviseLocked(errText, next)
	k.setStateLocked(StateClientRefused)
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: errText, Next: next})
	k.mu.Unlock()
	k.log.Warn("client refused", "err", errText)
	return next
}

// clientRefusedError is clientRefused's outcome as the caller's error.
func (k *Keeper) clientRefusedError(errText string, next *nextstep.Step) error {
	next = k.clientRefused(errText, next)
	return withStep(fmt.Errorf("%s: %s: %w", k.conn.Name, errText, ErrCredentialsRefused), next)
}

// recordFailure records a transient failure: degraded, retried with backoff
// and jitter, never sooner than the provider's Retry-After.
func (k *Keeper) recordFailure(current *TokenSet, te *TokenError) error {
	now := k.opt.Clock.Now()
	k.mu.Lock()
	k.lastErr = te
	k.adviseLocked(te.Error(), te.Next)
	k.failures++
	delay := k.backoffLocked(te.RetryAfter)
	k.retryAt = now.Add(delay)
	retryAt := k.retryAt
	k.setStateLocked(StateDegraded)
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: k.errText, Next: k.next})
	k.mu.Unlock()
	k.log.Warn("refresh failed; retrying", "err", te, "retry_in", delay)
	if current != nil {
		failed := *current
		failed.RetryAt = retryAt
		failed.keepNext(te.Next)
		k.record(context.Background(), &failed, te.Error())
	}
	return fmt.Errorf("%s: %w: %w", k.conn.Name, te, ErrUnreachable)
}

// record saves the outcome of a failed refresh with the tokens it leaves
// unchanged, so that `tokentray status` in any process tells the truth. It
// runs under the refresh lock, on the token set just read from the store.
func (k *Keeper) record(ctx context.Context, t *TokenSet, errText string) {
	t.LastError, t.LastRefresh, t.LastRefreshOK, t.LastRefreshBy = errText, k.opt.Clock.Now(), false, k.opt.Instance
	if err := k.saveBookkeeping(context.WithoutCancel(ctx), t); err != nil {
		k.log.Warn("could not record the failed refresh", "err", err)
		return
	}
	k.mu.Lock()
	k.token = t
	k.emitLocked(Event{Kind: EventRecorded, From: k.state, To: k.state})
	k.mu.Unlock()
}

func (k *Keeper) opName() string {
	if k.conn.Grant == GrantClientCredentials {
		return "client credentials"
	}
	return "refresh"
}

// localFailure records a failure on this machine (keyring, lock, missing
// secret): the connection is degraded and retried, the grant is untouched.
func (k *Keeper) localFailure(err error, next *nextstep.Step) error {
	now := k.opt.Clock.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failures++
	k.retryAt = now.Add(k.backoffLocked(0))
	k.lastErr = nil
	k.adviseLocked(err.Error(), next)
	if k.state != StateNeedsReauth && k.state != StateDisconnected {
		k.setStateLocked(StateDegraded)
	}
	k.emitLocked(Event{Kind: EventRefreshFailed, Error: k.errText, Next: k.next})
	return err
}

// backoffLocked is exponential from 5 s to 5 min with jitter in [d/2, d),
// and never shorter than a server's Retry-After.
func (k *Keeper) backoffLocked(retryAfter time.Duration) time.Duration {
	d := backoffBase
	for i := 1; i < k.failures && d < backoffMax; i++ {
		d *= 2
	}
	d = min(d, backoffMax)
	d = d/2 + time.Duration(k.opt.Jitter()*float64(d/2))
	return max(d, min(retryAfter, time.Hour))
}
