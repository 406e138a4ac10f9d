package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotStored means nothing is stored for the connection: no token set, or
// no client secret. Stores wrap it; test with errors.Is.
var ErrNotStored = errors.New("nothing stored")

// ErrGenerationMoved means a compare-and-set of SaveTokens failed: the token
// set stored now is not of the generation the write was made for, because
// another writer (a sign-in, a sign-out, another process's refresh) moved
// it. Nothing was written. Stores wrap it; test with errors.Is.
var ErrGenerationMoved = errors.New("the stored tokens changed meanwhile")

// AnyGeneration as SaveTokens' prev replaces whatever is stored: a sign-in,
// which starts a new grant on purpose, and a token set written back after
// it was deleted outside tokentray.
const AnyGeneration = ^uint64(0)

// Store keeps each connection's token set and client secret. The keyring
// (internal/store/keyring), the file store (internal/store/file) and
// MemoryStore implement it, and so will stores shared by several machines;
// internal/store/storetest is the test every Store passes.
//
// Items. A connection has two items, its token set and its client secret,
// addressed by the connection's name. A token set has a generation and a
// version (TokenSet.Generation, TokenSet.Version):
//
//   - The generation moves with each new set of tokens (a refresh, a
//     sign-in) and with nothing else. It is what a refresh commits against:
//     SaveTokens is a compare-and-set on it, so new tokens never overwrite
//     tokens that another writer put there meanwhile.
//   - Bookkeeping (a failed refresh's outcome, a promise, that a person was
//     told of the refresh token's end) is written with the generation it is
//     about, and never moves it; the promise counts its own writes
//     (TokenSet.PromiseVersion).
//   - The version is the store's: it moves with every write of the item,
//     tokens or bookkeeping, and SaveTokens ignores the one it is given.
//
// Concurrency. Every method is safe for concurrent use and returns within a
// bound (the keyring's calls time out; a Store never blocks forever, and
// never falls back to a plain file). Calls for different connections are
// independent. For one connection, every writer holds the connection's
// Locker, which is the single machine's lease: the compare-and-set of
// SaveTokens is atomic against every writer that holds it (a store on one
// machine reads, compares and writes under it; a shared store does it in
// its engine, and its Locker is a lease). A LoadTokens concurrent with a
// write returns the old value or the new one, whole.
//
// Failures. A write that fails leaves the previous value readable, never a
// part of the new one (the keyring writes chunks before the header that
// points at them; the file store renames a synced file over the old one).
// A write whose outcome is unknown (a timeout) may have landed: the keeper
// then keeps the new tokens in memory and writes them again, and never
// refreshes past them.
type Store interface {
	// LoadTokens returns name's token set as stored, with its generation
	// and version, or an error wrapping ErrNotStored when there is none.
	LoadTokens(ctx context.Context, name string) (*TokenSet, error)
	// SaveTokens stores t as name's token set if the one stored now is of
	// generation prev (StoredGeneration: 0 when none is stored), or
	// whatever is stored when prev is AnyGeneration. Otherwise it writes
	// nothing and returns an error wrapping ErrGenerationMoved, unless t
	// is stored already (InPlace: the same write sent again after its
	// answer was lost, which landed): then it writes nothing and succeeds.
	// New tokens have t.Generation = NextGeneration(prev, now);
	// bookkeeping keeps t.Generation = prev. The stored item gets the next
	// version.
	SaveTokens(ctx context.Context, name string, t *TokenSet, prev uint64) error
	// DeleteTokens forgets name's token set (a sign-out); forgetting
	// nothing is no error. A later SaveTokens for the deleted generation
	// fails: generations are not used again.
	DeleteTokens(ctx context.Context, name string) error
	// ClientSecret returns name's client secret, or an error wrapping
	// ErrNotStored.
	ClientSecret(ctx context.Context, name string) (Secret, error)
	// SetClientSecret stores name's client secret, replacing any.
	SetClientSecret(ctx context.Context, name string, secret Secret) error
	// DeleteClientSecret forgets name's client secret; forgetting nothing
	// is no error.
	DeleteClientSecret(ctx context.Context, name string) error
}

// StoredGeneration is the generation SaveTokens compares with: 0 for no
// token set (nil), and 1 for a token set written before generations were
// kept.
func StoredGeneration(t *TokenSet) uint64 {
	if t == nil {
		return 0
	}
	return max(t.Generation, 1)
}

// NextGeneration is the generation of new tokens that replace generation
// prev. It is taken from the clock, and is above prev, so that a
// generation is not used twice for a connection, even after a sign-out
// deleted the one before (a refresh that was under way then must not
// commit onto the next sign-in's tokens).
func NextGeneration(prev uint64, now time.Time) uint64 {
	g := uint64(max(now.UnixNano(), 0))
	if prev == AnyGeneration {
		prev = 0
	}
	return max(g, prev+1)
}

// CompareGeneration is what a Store's SaveTokens checks, given what is
// stored now (nil for nothing): nil when a write made for prev may go on,
// an error wrapping ErrGenerationMoved when it may not.
func CompareGeneration(stored *TokenSet, prev uint64) error {
	if prev == AnyGeneration || StoredGeneration(stored) == prev {
		return nil
	}
	return &generationMoved{stored: StoredGeneration(stored), prev: prev}
}

// InPlace reports whether stored is t as SaveTokens writes it: the same
// generation, of new tokens (not prev), and the same tokens. A SaveTokens
// whose compare-and-set fails on such a set is the same write sent again
// after its answer was lost (a timeout, an engine's failover), which
// landed: it succeeds, so that the keeper does not drop the tokens it just
// committed. Generations come from the clock, so two different refreshes
// hardly share one; the tokens tell them apart when they do.
func InPlace(stored, t *TokenSet, prev uint64) bool {
	return stored != nil && t != nil && prev != AnyGeneration && StoredGeneration(t) != prev &&
		StoredGeneration(stored) == StoredGeneration(t) &&
		stored.AccessToken == t.AccessToken && stored.RefreshToken == t.RefreshToken && stored.Dead == t.Dead
}

// EncodeSave is what a store on one machine writes for SaveTokens: it
// reads what s holds for name now, compares its generation with prev
// (CompareGeneration), and encodes t (MarshalTokenSet) with the next
// version. It returns nil and no error when t is stored already
// (InPlace): nothing is to be written. A stored set that cannot be read
// is replaced only for AnyGeneration.
func EncodeSave(ctx context.Context, s interface {
	LoadTokens(ctx context.Context, name string) (*TokenSet, error)
}, name string, t *TokenSet, prev uint64) ([]byte, error) {
	stored, err := s.LoadTokens(ctx, name)
	switch {
	case errors.Is(err, ErrNotStored):
		stored = nil
	case err != nil && prev != AnyGeneration:
		return nil, fmt.Errorf("save tokens of %s: %w", name, err)
	case err != nil:
		stored = nil // a sign-in replaces what cannot be read
	}
	if err := CompareGeneration(stored, prev); err != nil {
		if InPlace(stored, t, prev) {
			return nil, nil
		}
		return nil, fmt.Errorf("save tokens of %s: %w", name, err)
	}
	next := *t
	next.Version = 1
	if stored != nil {
		next.Version = stored.Version + 1
	}
	b, err := MarshalTokenSet(&next)
	if err != nil {
		return nil, fmt.Errorf("encode tokens of %s: %w", name, err)
	}
	return b, nil
}

type generationMoved struct{ stored, prev uint64 }

func (e *generationMoved) Error() string {
	if e.stored == 0 {
		return ErrGenerationMoved.Error() + " (they were deleted: a sign-out)"
	}
	return ErrGenerationMoved.Error() + " (another sign-in or refresh wrote newer ones)"
}

func (e *generationMoved) Unwrap() error { return ErrGenerationMoved }

// ErrStoreUnreachable means a store's engine (a shared store's database)
// did not answer: nothing was read or written. The keeper goes on handing
// out the valid tokens it holds, takes no lease and refreshes nothing
// until it answers again. Stores wrap it; test with errors.Is.
var ErrStoreUnreachable = errors.New("the store cannot be reached")

// ErrLeaseLost means this process no longer holds the lease on a
// connection that its Locker gave it: the engine's clock ended it while the
// process was paused or cut off, and another may hold it now. Nothing was
// sent. Lease implementations wrap it; test with errors.Is.
var ErrLeaseLost = errors.New("the lease on the connection ran out")

// Lease is what a Locker shared by several machines offers besides Lock
// (a shared store's: the lease of internal/store/postgres). Its hold is a
// lease that the engine's clock ends when the holder pauses or is cut off,
// without the holder knowing; the next holder may then present the same
// refresh token. So a refresh under a Lease goes (doc.go, "Many machines"):
//
//  1. The keeper reads the Intent left on the connection. One of another
//     holder for the generation stored now means that holder may have
//     presented the refresh token and not yet committed what came back: the
//     keeper waits until the intent is the rescue window old (by the
//     engine's clock), then moves the stored generation (same tokens), so that the
//     other's late commit fails its compare-and-set and never lands.
//  2. Intend, with one round trip, records this holder's intent, and only
//     while the lease has more than the request's timeout left; otherwise
//     nothing is presented. The pause of a process between that answer
//     and its request leaving is the one gap this leaves (README, "Shared
//     store (PostgreSQL)").
//  3. The new tokens are committed with a compare-and-set on the
//     generation, and then Settle clears the intent. A holder that dies
//     leaves its intent; so does one whose request had no answer.
type Lease interface {
	// Intend records that this process is about to present the refresh
	// token of name's generation gen, if it holds name's lease and the
	// lease has more than need left as the engine says now (it may renew
	// the lease in the same round trip, as PostgreSQL's does). Otherwise
	// it records nothing and returns an error wrapping ErrLeaseLost. The
	// intent outlives the lease and the process, until Settle or another
	// holder's Intend.
	Intend(ctx context.Context, name string, gen uint64, need time.Duration) error
	// Settle clears this process's intent on name: its outcome is
	// committed, or it presented nothing. Another holder's is left.
	Settle(ctx context.Context, name string) error
	// Intent returns the intent recorded on name, of any holder, with its
	// age by the engine's clock; nil when there is none.
	Intent(ctx context.Context, name string) (*Intent, error)
}

// StoreWatcher is a Store that hears of the writes of other processes and
// machines (a shared store: PostgreSQL's LISTEN/NOTIFY), so that the
// keepers that did not refresh hand out the new access token at once
// (Keeper.StoreChanged) instead of when they next look. WatchTokens calls
// changed with the name of each connection whose items another writer
// changed, and with "" after a time in which it may have missed some (it
// was reconnecting), until ctx ends.
type StoreWatcher interface {
	WatchTokens(ctx context.Context, changed func(name string))
}

// Presence is who is at a shared store now, for the people who look
// (status, the dashboard); no keeper reads it. Every name in it is an
// instance's `instance`.
type Presence struct {
	// Instances are the instances serving from the store now (a running
	// tokentray's connection to its engine), sorted, each once.
	Instances []string
	// Leases are the instances holding a connection's lease now (a
	// refresh under way), by connection.
	Leases map[string]string
	// Intents are the refresh intents not settled, by connection: a
	// refresh token presented, or about to be, and nothing committed yet.
	Intents map[string]Intent
}

// PresenceTeller is a shared store that says who is at it (Presence).
type PresenceTeller interface {
	Presence(ctx context.Context) (*Presence, error)
}

// Intent is a holder's record that it is about to present a connection's
// refresh token (Lease).
type Intent struct {
	// Instance names the machine (the `instance` setting); Holder is the
	// lease holder in full (the instance, a process id and a random id).
	Instance, Holder string
	// Generation is the generation of the token set whose refresh token
	// it presents.
	Generation uint64
	// At is when it was recorded, and Age how long ago, both by the
	// engine's clock.
	At  time.Time
	Age time.Duration
	// Mine is true when this process recorded it.
	Mine bool
}

// Locker serialises the writers of one connection's token set: the running
// tokentray and a CLI working without it both take it around each
// read-refresh-save, each sign-in, sign-out and bookkeeping write, so one
// refresh token is never presented twice. On one machine it is a file lock
// per connection (internal/filelock) or, for a store only this process
// reaches, ProcessLocker. Lock waits until the lock is free or ctx ends;
// the returned func releases it, once.
type Locker interface {
	Lock(ctx context.Context, name string) (unlock func(), err error)
}
