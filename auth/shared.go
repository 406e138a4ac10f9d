package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// A connection kept by several machines through a shared store: one
// refresher at a time by the store's Lease, its intent, and the token
// set's generation (Lease; doc.go, "Many machines, one grant").

// DefaultLeaseTTL is a shared store's lease's time to live unless set
// (store_lease_ttl). It must exceed the longest token request the keeper
// sends (DefaultRequestTimeout, and never less than 10 s): the keeper
// presents a refresh token only while the lease has more than that left
// (Lease), and Intend renews the lease to a full TTL as it answers. So
//
//	TTL > request timeout, and TTL − request timeout is the longest pause
//	between the keeper's check and its request leaving that the lease
//	still covers (15 s with these defaults).
const DefaultLeaseTTL = 45 * time.Second

// NewHolder names a holder of a shared store's lease: the instance, this
// process's id and a random id ("moby-2/4242/9f3ac1d2e8b7"), so that two
// machines with the same host name, or two processes on one machine, are
// never the same holder.
func NewHolder(instance string) (string, error) {
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("a random id for this process's leases: %w", err)
	}
	if instance == "" {
		instance = "unnamed"
	}
	return fmt.Sprintf("%s/%d/%s", instance, os.Getpid(), hex.EncodeToString(id)), nil
}

// InstanceOf is the instance name in a holder (NewHolder).
func InstanceOf(holder string) string {
	s := holder
	for range 2 {
		if i := strings.LastIndexByte(s, '/'); i >= 0 {
			s = s[:i]
		}
	}
	return s
}

// rescueWindow is how long after a holder recorded its intent to present
// t's refresh token another holder waits before it may present the same
// token: the holder's request (callTimeout), then as long again to commit
// what came back (commitRetry). Within it, the two never both act.
func (k *Keeper) rescueWindow(t *TokenSet) time.Duration {
	return 2 * k.callTimeout(t)
}

// commitRetry is how often a refresh's commit to a shared store is tried
// again within the rescue window while the engine does not answer.
const commitRetry = time.Second

// awaitIntent looks, before this holder presents current's refresh token,
// for the intent of another holder that presented it and has not
// committed (Lease, step 1). It returns the token set to refresh from
// (current, or current under a generation of this holder's once it took
// the refresh over), the intent taken over (nil when none was), and
// adopted when the other holder's commit came meanwhile and was adopted:
// then there is nothing to refresh.
func (k *Keeper) awaitIntent(ctx context.Context, lease Lease, current *TokenSet) (_ *TokenSet, taken *Intent, adopted bool, _ error) {
	if k.conn.Grant == GrantClientCredentials || current == nil {
		return current, nil, false, nil // no single-use token at stake
	}
	for {
		gen := StoredGeneration(current)
		in, err := lease.Intent(ctx, k.conn.Name)
		if err != nil {
			return nil, nil, false, k.localFailure(fmt.Errorf("%s: not refreshed: %w", k.conn.Name, err),
				stepWith(nextstep.Wait, k.conn.Name, "the shared store did not say whether another tokentray is refreshing this connection"))
		}
		if in == nil || in.Mine || in.Generation != gen {
			// None, this process's own (its request had no answer: it
			// presents the token again, as on one machine), or one
			// whose outcome was committed since.
			return current, nil, false, nil
		}
		if wait := k.rescueWindow(current) - in.Age; wait > 0 {
			k.log.Warn("another instance is refreshing this connection and has not committed yet; waiting out the rescue window before presenting the refresh token",
				"instance", in.Instance, "since", in.At, "wait", wait.Round(time.Millisecond))
			select {
			case <-k.opt.Clock.After(wait):
			case <-k.stopping:
				// Nothing was presented: the next start, or another
				// instance, finds the intent and goes on from there.
				return nil, nil, false, fmt.Errorf("%s: not refreshed: tokentray stopped while another instance's refresh was being waited out", k.conn.Name)
			}
			next, changed, err := k.reloadAfterOther(ctx, current)
			if err != nil || (changed && next == nil) {
				return nil, nil, true, err
			}
			if changed {
				current = next
				continue
			}
		}
		// Take the refresh over: the same tokens under a new generation,
		// so that the other holder's late commit fails its
		// compare-and-set and never lands over what this refresh gets.
		over := *current
		over.Generation = NextGeneration(gen, k.opt.Clock.Now())
		err = k.opt.Store.SaveTokens(ctx, k.conn.Name, &over, gen)
		if errors.Is(err, ErrGenerationMoved) {
			next, _, err := k.reloadAfterOther(ctx, current)
			if err != nil || next == nil {
				return nil, nil, true, err
			}
			current = next
			continue
		}
		if err != nil {
			return nil, nil, false, k.localFailure(fmt.Errorf("%s: not refreshed: take over the refresh of instance %s: %w", k.conn.Name, in.Instance, err),
				stepWith(nextstep.Wait, k.conn.Name, "the shared store could not be written"))
		}
		k.log.Warn("took over the refresh of another instance that never committed its outcome", "instance", in.Instance, "since", in.At)
		k.mu.Lock()
		k.token = &over
		k.mu.Unlock()
		return &over, in, false, nil
	}
}

// reloadAfterOther re-reads the token set, which another holder may have
// written while this one waited, and adopts it if it changed. Unless it is
// usable (then nothing is to be refreshed: next is nil and err too), next
// is the token set to refresh from; nothing stored is an error.
func (k *Keeper) reloadAfterOther(ctx context.Context, current *TokenSet) (next *TokenSet, changed bool, err error) {
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if err != nil && !errors.Is(err, ErrNotStored) {
		return nil, false, k.localFailure(err, stepWith(nextstep.Wait, k.conn.Name, "the shared store could not be read"))
	}
	if !changedElsewhere(current, stored) {
		return current, false, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.adoptOthersLocked(stored):
		return nil, true, nil
	case stored == nil:
		return nil, true, withStep(fmt.Errorf("%s is not signed in (signed out elsewhere?): %w", k.conn.Name, ErrNeedsSignIn), step(nextstep.SignIn, k.conn.Name))
	}
	return stored, true, nil
}

// adoptOthersLocked adopts stored, which another process or machine
// wrote, and reports whether it is usable now; a usable one ends this
// keeper's failures.
func (k *Keeper) adoptOthersLocked(stored *TokenSet) bool {
	k.log.Info("adopting tokens written by another instance")
	k.adoptLocked(stored)
	if stored == nil || stored.Dead || !stored.ValidFor(k.opt.Clock.Now(), 0) {
		return false
	}
	k.failures, k.lastErr = 0, nil
	k.setStateLocked(StateConnected)
	return true
}

// checkTimings says once per lifetime, in the log, that a shared store's
// timings do not fit current's lifetime. A holder that dies mid-refresh
// delays the next refresh by up to the lease's TTL and the rescue window,
// and the access token in hand must outlive that and the next request:
//
//	lease TTL + rescue window + request timeout < lifetime × (1 − refresh_at)
//
// One refresher at a time holds either way; what does not fit is an access
// token that may run out before the next refresh.
func (k *Keeper) checkTimings(lease Lease, current *TokenSet) {
	l, ok := lease.(interface{ TTL() time.Duration })
	if !ok || current == nil || current.Lifetime <= 0 {
		return
	}
	need := l.TTL() + k.rescueWindow(current) + k.callTimeout(current)
	room := current.Expiry().Sub(k.conn.refreshAt(current.ObtainedAt, current.Lifetime))
	k.mu.Lock()
	told := k.timingsTold == current.Lifetime
	if need >= room {
		k.timingsTold = current.Lifetime
	}
	k.mu.Unlock()
	if need < room || told {
		return
	}
	k.log.Warn("the shared store's timings do not fit this connection's token lifetime: if the instance refreshing dies mid-refresh, the access token can run out before another refreshes; a shorter request timeout and lease make room",
		"lease_ttl", l.TTL(), "rescue_window", k.rescueWindow(current), "request_timeout", k.callTimeout(current), "room_after_refresh_at", room)
}

// intend records this holder's intent to present current's refresh token,
// or says why it may not (Lease, step 2).
func (k *Keeper) intend(ctx context.Context, lease Lease, current *TokenSet) error {
	k.checkTimings(lease, current)
	if err := lease.Intend(ctx, k.conn.Name, StoredGeneration(current), k.callTimeout(current)); err != nil {
		return fmt.Errorf("%s: not refreshed, since the lease may be another's now: %w", k.conn.Name, err)
	}
	return nil
}

// settle clears this holder's intent (Lease, step 3). One that stays makes
// the next holder wait out the rescue window for nothing: worth a line in
// the log, never a failure.
func (k *Keeper) settle(lease Lease) {
	if err := lease.Settle(context.Background(), k.conn.Name); err != nil {
		k.log.Warn("the refresh intent was not cleared: the next instance to refresh waits out the rescue window first", "err", err)
	}
}

// commit writes a refresh's new tokens over generation prev. Until is the
// end of the rescue window on a shared store (zero on one machine): within
// it a commit that the engine did not take is tried again every
// commitRetry. After it another holder may take the refresh over; the
// tokens are then held unsaved (never handed out), and their next commit
// is still a compare-and-set, which fails once another holder took over,
// so that the two never both act.
func (k *Keeper) commit(ctx context.Context, next *TokenSet, prev uint64, until time.Time) error {
	for {
		err := k.opt.Store.SaveTokens(ctx, k.conn.Name, next, prev)
		if err == nil || errors.Is(err, ErrGenerationMoved) {
			return err
		}
		left := until.Sub(k.opt.Clock.Now())
		if left <= 0 {
			if !until.IsZero() {
				k.log.Error("the new tokens were not committed within the rescue window: another instance may take the refresh over now, and then they are dropped", "err", err)
			}
			return err
		}
		<-k.opt.Clock.After(min(commitRetry, left))
	}
}

// dropOvertaken is the end of new tokens whose commit another writer
// overtook. When another grant took their place (a sign-in wrote new
// tokens, or a sign-out deleted them), their refresh token belongs to a
// grant nobody holds any more: it is revoked, best effort (RFC 7009), so
// that it does not stay live unseen. When the same grant moved on (another
// instance took the refresh over), nothing is revoked: at some providers
// revoking a refresh token ends its whole grant, the one stored now.
func (k *Keeper) dropOvertaken(ctx context.Context, dropped *TokenSet) {
	if dropped == nil || dropped.RefreshToken == "" || k.conn.Endpoints.RevokeURL == "" {
		return
	}
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	switch {
	case errors.Is(err, ErrNotStored):
	case err != nil:
		return // not known whose: nothing revoked
	case dropped.GrantSince.IsZero() || stored.GrantSince.IsZero() || stored.GrantSince.Equal(dropped.GrantSince):
		return // the same grant, or not known
	}
	if err := k.revoke(ctx, k.conn, dropped); err != nil {
		k.log.Warn("could not revoke the refresh token of tokens that a sign-in or sign-out overtook; it stays valid at the provider until it expires", "err", err)
		return
	}
	k.log.Info("revoked the refresh token of tokens that a sign-in or sign-out overtook")
}

// StoreChanged re-reads the token set, which another process or machine
// wrote, or may have written while the store could not be reached
// (StoreWatcher), and adopts it when it changed: this keeper then
// hands out the newest access token, writes its export files (OnTokens)
// and schedules its refresh from it, without taking the lease. A refresh
// of this keeper under way is left alone (it re-reads the store itself,
// under the lease), and so is a read that a write of this keeper
// overtook. A keeper that waited for the store to answer again tries its
// refresh now.
func (k *Keeper) StoreChanged(ctx context.Context) {
	k.mu.Lock()
	held, busy := k.token, k.flight != nil || k.unsaved != nil
	k.mu.Unlock()
	if busy {
		return
	}
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if err != nil && !errors.Is(err, ErrNotStored) {
		k.log.Warn("told of tokens written by another instance, but could not read them; they are read at the next refresh", "err", err)
		return
	}
	k.mu.Lock()
	if k.storeDown && k.state == StateDegraded && k.flight == nil {
		// The store answers again: the refresh that waited for it is
		// tried now, not after its backoff.
		k.retryAt = k.opt.Clock.Now()
		k.Wake()
	}
	if k.token != held || k.flight != nil || k.unsaved != nil || !changedElsewhere(held, stored) {
		k.mu.Unlock()
		return
	}
	usable := k.adoptOthersLocked(stored)
	k.emitLocked(Event{Kind: EventAdopted})
	k.mu.Unlock()
	if usable {
		k.tokensSaved(stored)
	}
}
