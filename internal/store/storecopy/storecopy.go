// Package storecopy moves a connection's token set and client secret from
// one store to another (`tokentray store copy`): from the keyring or the
// file store a machine used before into the shared store it joins, or
// back. No sign-in is needed, and a refresh token is never live in two
// stores: it is single-use, and two keepers presenting it would kill the
// grant.
//
// The order is what makes it safe to stop at any point. Both stores'
// lockers are held throughout, so no keeper of either refreshes meanwhile.
// The target is written with a compare-and-set on "nothing stored", read
// back, and only then is the source's copy deleted. A run stopped after
// the target's commit and before the source's deletion is finished by the
// next run, which finds the same refresh token on both sides.
package storecopy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// Side is one store of a copy and the Locker that its writers hold (this
// machine's file lock, or a shared store's lease).
type Side struct {
	Store  auth.Store
	Locker auth.Locker
}

// Result is what was done for one connection.
type Result struct {
	// Tokens: the token set is in the target now and no longer in the
	// source.
	Tokens bool
	// Finished: the target already held the source's refresh token (a run
	// stopped before deleting the source's copy); only the deletion was
	// left to do.
	Finished bool
	// Secret: the client secret is in the target now (written, or the same
	// was already there) and no longer in the source.
	Secret bool
}

// Nothing says whether the source held nothing for the connection.
func (r Result) Nothing() bool { return !r.Tokens && !r.Secret }

// ErrTargetHasTokens means the target already holds another token set for
// the connection (a sign-in made there): nothing was copied or deleted.
// Test with errors.As on *TargetHasTokens, or errors.Is.
var ErrTargetHasTokens = errors.New("the target store already holds tokens")

// TargetHasTokens is the error of a connection signed in on both sides:
// when each side's refresh token was received, so that a person can tell
// which to keep.
type TargetHasTokens struct {
	SourceSince, TargetSince time.Time
}

func (e *TargetHasTokens) Error() string { return ErrTargetHasTokens.Error() }
func (e *TargetHasTokens) Unwrap() error { return ErrTargetHasTokens }

// ErrSecretsDiffer means the target holds a client secret other than the
// source's: nothing was copied or deleted.
var ErrSecretsDiffer = errors.New("the target store holds another client secret")

// ErrSourceKept means the target holds the tokens (committed and read
// back) but the source's copy could not be deleted. The source's copy is
// unused while the config chooses the target; running the copy again
// deletes it (Result.Finished). Test with errors.Is, or errors.As on
// *SourceKept.
var ErrSourceKept = errors.New("copied, but the source's copy could not be deleted")

// SourceKept is ErrSourceKept with what was kept and why.
type SourceKept struct {
	What string // "the tokens" or "the client secret"
	Err  error
}

func (e *SourceKept) Error() string   { return fmt.Sprintf("%v (%s): %v", ErrSourceKept, e.What, e.Err) }
func (e *SourceKept) Unwrap() []error { return []error{ErrSourceKept, e.Err} }

// Copy moves name's token set and client secret from from to to. now
// dates the new generation the target stores. The context bounds the wait
// for the lockers and every store call.
func Copy(ctx context.Context, from, to Side, name string, now time.Time) (Result, error) {
	unlock, err := lockBoth(ctx, from.Locker, to.Locker, name)
	if err != nil {
		return Result{}, err
	}
	defer unlock()

	tokens, err := from.Store.LoadTokens(ctx, name)
	if err != nil && !errors.Is(err, auth.ErrNotStored) {
		return Result{}, fmt.Errorf("read the source's tokens: %w", err)
	}
	secret, err := from.Store.ClientSecret(ctx, name)
	hasSecret := err == nil
	if err != nil && !errors.Is(err, auth.ErrNotStored) {
		return Result{}, fmt.Errorf("read the source's client secret: %w", err)
	}
	if tokens == nil && !hasSecret {
		return Result{}, nil
	}

	// Everything that could refuse is checked before anything is written:
	// a refused copy changes neither side.
	finished := false
	if tokens != nil {
		there, err := to.Store.LoadTokens(ctx, name)
		switch {
		case errors.Is(err, auth.ErrNotStored):
		case err != nil:
			return Result{}, fmt.Errorf("read the target's tokens: %w", err)
		case there.RefreshToken != "" && there.RefreshToken == tokens.RefreshToken:
			finished = true
		default:
			return Result{}, &TargetHasTokens{SourceSince: since(tokens), TargetSince: since(there)}
		}
	}
	writeSecret := false
	if hasSecret {
		there, err := to.Store.ClientSecret(ctx, name)
		switch {
		case errors.Is(err, auth.ErrNotStored):
			writeSecret = true
		case err != nil:
			return Result{}, fmt.Errorf("read the target's client secret: %w", err)
		case there != secret:
			return Result{}, ErrSecretsDiffer
		}
	}

	if writeSecret {
		if err := to.Store.SetClientSecret(ctx, name, secret); err != nil {
			return Result{}, fmt.Errorf("write the client secret to the target: %w", err)
		}
	}
	if tokens != nil && !finished {
		next := *tokens
		next.Generation = auth.NextGeneration(auth.StoredGeneration(tokens), now)
		// Only onto nothing: a sign-in made in the target meanwhile (on
		// another machine sharing it) is never overwritten.
		if err := to.Store.SaveTokens(ctx, name, &next, 0); err != nil {
			if errors.Is(err, auth.ErrGenerationMoved) {
				there, _ := to.Store.LoadTokens(ctx, name)
				return Result{}, &TargetHasTokens{SourceSince: since(tokens), TargetSince: since(there)}
			}
			return Result{}, fmt.Errorf("write the tokens to the target: %w", err)
		}
		// Read back before the source's copy goes: a newer generation is
		// as good (another machine sharing the target may have refreshed
		// already).
		back, err := to.Store.LoadTokens(ctx, name)
		if err != nil {
			return Result{}, fmt.Errorf("read the tokens back from the target (the source's copy is kept): %w", err)
		}
		if auth.StoredGeneration(back) < next.Generation {
			return Result{}, fmt.Errorf("read the tokens back from the target: they are not the ones written (the source's copy is kept)")
		}
	}

	res := Result{Tokens: tokens != nil, Finished: finished, Secret: hasSecret}
	if tokens != nil {
		if err := from.Store.DeleteTokens(ctx, name); err != nil {
			return Result{}, &SourceKept{What: "the tokens", Err: err}
		}
	}
	if hasSecret {
		if err := from.Store.DeleteClientSecret(ctx, name); err != nil {
			// The secret is not single-use: a copy left behind harms no
			// grant, and the tokens are moved.
			res.Secret = false
			return res, &SourceKept{What: "the client secret", Err: err}
		}
	}
	return res, nil
}

// since is when a token set's refresh token was received, or its access
// token when that is not known.
func since(t *auth.TokenSet) time.Time {
	switch {
	case t == nil:
		return time.Time{}
	case !t.RefreshTokenSince.IsZero():
		return t.RefreshTokenSince
	}
	return t.ObtainedAt
}

// lockBoth takes name's lock in both lockers, once when they are the same
// (the keyring and the file store on one machine share the file lock,
// which a process cannot take twice).
func lockBoth(ctx context.Context, a, b auth.Locker, name string) (func(), error) {
	ua, err := a.Lock(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("lock %s in the source: %w", name, err)
	}
	if a == b {
		return ua, nil
	}
	ub, err := b.Lock(ctx, name)
	if err != nil {
		ua()
		return nil, fmt.Errorf("lock %s in the target: %w", name, err)
	}
	return func() { ub(); ua() }, nil
}
