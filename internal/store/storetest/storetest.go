// Package storetest is the test every auth.Store passes: the contract that
// auth.Store's documentation states, checked the same way for the memory,
// keyring and file stores (and the stores shared by machines to come).
// A store's own tests call Run with a function that opens an empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// Run checks the store that open returns (empty, and new for each call)
// against auth.Store's contract.
func Run(t *testing.T, open func(t *testing.T) auth.Store) {
	t.Run("NothingStored", func(t *testing.T) { nothingStored(t, open(t)) })
	t.Run("RoundTrip", func(t *testing.T) { roundTrip(t, open(t)) })
	t.Run("CompareAndSet", func(t *testing.T) { compareAndSet(t, open(t)) })
	t.Run("BookkeepingKeepsTheGeneration", func(t *testing.T) { bookkeeping(t, open(t)) })
	t.Run("AGenerationIsNotUsedAgainAfterASignOut", func(t *testing.T) { afterSignOut(t, open(t)) })
	t.Run("WrittenBeforeGenerations", func(t *testing.T) { legacy(t, open(t)) })
	t.Run("ConnectionsAreApart", func(t *testing.T) { apart(t, open(t)) })
	t.Run("ClientSecrets", func(t *testing.T) { secrets(t, open(t)) })
	t.Run("WritersUnderTheLockerLoseNothing", func(t *testing.T) { underLocker(t, open(t)) })
	t.Run("AWriteSentAgainAfterItsAnswerWasLostSucceeds", func(t *testing.T) { sentAgain(t, open(t)) })
}

// sentAgain: new tokens written over generation 1, then the same write
// again (its answer was lost, and the caller tries again): it succeeds and
// changes nothing. Other tokens of the same generation are another write,
// and are refused.
func sentAgain(t *testing.T, s auth.Store) {
	save(t, s, "p", tokens("one", 1), 0)
	next := tokens("two", 2)
	save(t, s, "p", next, 1)
	before := load(t, s, "p")
	save(t, s, "p", next, 1)
	if got := load(t, s, "p"); got.Version != before.Version || got.AccessToken != next.AccessToken {
		t.Fatalf("after the same write again: version %d, %s; want version %d unchanged", got.Version, got.AccessToken, before.Version)
	}
	refused(t, s, "p", tokens("other", 2), 1, next)
}

var ctx = context.Background()

// tokens is a token set of generation gen, its values marked by mark.
func tokens(mark string, gen uint64) *auth.TokenSet {
	return &auth.TokenSet{AccessToken: auth.Secret("at-" + mark), TokenType: "bearer", RefreshToken: auth.Secret("rt-" + mark),
		Scope: "read write", ObtainedAt: time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC), Lifetime: 90 * time.Minute,
		RefreshTokenSince: time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC), Generation: gen}
}

func load(t *testing.T, s auth.Store, name string) *auth.TokenSet {
	t.Helper()
	got, err := s.LoadTokens(ctx, name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return got
}

func save(t *testing.T, s auth.Store, name string, ts *auth.TokenSet, prev uint64) {
	t.Helper()
	if err := s.SaveTokens(ctx, name, ts, prev); err != nil {
		t.Fatalf("save %s over generation %d: %v", name, prev, err)
	}
}

// refused checks that a write for prev is refused with ErrGenerationMoved
// and leaves the stored set as want.
func refused(t *testing.T, s auth.Store, name string, ts *auth.TokenSet, prev uint64, want *auth.TokenSet) {
	t.Helper()
	err := s.SaveTokens(ctx, name, ts, prev)
	if !errors.Is(err, auth.ErrGenerationMoved) {
		t.Fatalf("save over generation %d: %v; want %v", prev, err, auth.ErrGenerationMoved)
	}
	got, err := s.LoadTokens(ctx, name)
	switch {
	case want == nil && !errors.Is(err, auth.ErrNotStored):
		t.Fatalf("after a refused write: %v, %v; want nothing stored", got, err)
	case want != nil && (err != nil || got.AccessToken != want.AccessToken || got.Generation != want.Generation):
		t.Fatalf("after a refused write: %v (generation %d), %v; want %v (generation %d) unchanged", got, generation(got), err, want, want.Generation)
	}
}

func generation(ts *auth.TokenSet) uint64 {
	if ts == nil {
		return 0
	}
	return ts.Generation
}

func nothingStored(t *testing.T, s auth.Store) {
	if _, err := s.LoadTokens(ctx, "none"); !errors.Is(err, auth.ErrNotStored) {
		t.Errorf("tokens of nothing: %v; want %v", err, auth.ErrNotStored)
	}
	if _, err := s.ClientSecret(ctx, "none"); !errors.Is(err, auth.ErrNotStored) {
		t.Errorf("client secret of nothing: %v; want %v", err, auth.ErrNotStored)
	}
	if err := s.DeleteTokens(ctx, "none"); err != nil {
		t.Errorf("deleting no tokens: %v", err)
	}
	if err := s.DeleteClientSecret(ctx, "none"); err != nil {
		t.Errorf("deleting no client secret: %v", err)
	}
}

// Every field comes back as written, and the version is the store's.
func roundTrip(t *testing.T, s auth.Store) {
	ts := tokens("one", 7)
	ts.LifetimeGuessed, ts.Dead, ts.LastRefreshOK = true, true, true
	ts.RefreshTokenExpiry, ts.GrantSince, ts.EndWarned = ts.ObtainedAt.Add(720*time.Hour), ts.ObtainedAt.Add(-time.Hour), ts.ObtainedAt.Add(700*time.Hour)
	ts.LastError, ts.LastHint, ts.RefusedClient = "invalid_grant", "sign in", "fingerprint"
	ts.LastRefresh, ts.RetryAt, ts.Promised, ts.PromiseVersion = ts.ObtainedAt.Add(time.Minute), ts.ObtainedAt.Add(2*time.Minute), ts.ObtainedAt.Add(3*time.Minute), 4
	ts.DPoPKey = "dpop-key"
	// A token set as large as an RS256 JWT pair with claims: more than
	// the Windows Credential Manager takes in one item (2,560 bytes).
	ts.AccessToken = auth.Secret(strings.Repeat("a", 3000))
	ts.Version = 99 // the store's to give
	save(t, s, "p", ts, 0)
	got := load(t, s, "p")
	want := *ts
	want.Version = 1
	if g, w := fmt.Sprintf("%#v", *got), fmt.Sprintf("%#v", want); g != w || got.AccessToken != want.AccessToken || got.RefreshToken != want.RefreshToken || got.DPoPKey != want.DPoPKey {
		t.Fatalf("read back\n%s\nwant\n%s", g, w)
	}
	save(t, s, "p", got, got.Generation) // bookkeeping
	if v := load(t, s, "p").Version; v != 2 {
		t.Fatalf("version %d after the second write; want 2", v)
	}
}

func compareAndSet(t *testing.T, s auth.Store) {
	first := tokens("first", 10)
	save(t, s, "p", first, 0)
	// Nothing stored is generation 0: a second writer that saw nothing
	// does not overwrite the first.
	refused(t, s, "p", tokens("second", 11), 0, first)
	// A refresh commits over the generation it read.
	next := tokens("next", 20)
	save(t, s, "p", next, 10)
	// The refresh that read generation 10 too (a race lost) is refused,
	// and so is one that read a generation never stored.
	refused(t, s, "p", tokens("loser", 21), 10, next)
	refused(t, s, "p", tokens("stranger", 22), 15, next)
	// A sign-in replaces whatever is there.
	signIn := tokens("sign-in", 30)
	save(t, s, "p", signIn, auth.AnyGeneration)
	if got := load(t, s, "p"); got.AccessToken != signIn.AccessToken || got.Generation != 30 || got.Version != 3 {
		t.Fatalf("after the sign-in: %v, generation %d, version %d; want generation 30, version 3", got, got.Generation, got.Version)
	}
}

// Bookkeeping is written over its own generation and never moves it, and a
// refresh's commit goes on over it.
func bookkeeping(t *testing.T, s auth.Store) {
	save(t, s, "p", tokens("a", 5), 0)
	promised := load(t, s, "p")
	promised.Promised, promised.PromiseVersion = promised.ObtainedAt.Add(time.Hour), promised.PromiseVersion+1
	save(t, s, "p", promised, promised.Generation)
	failed := load(t, s, "p")
	failed.LastError, failed.LastRefresh = "unreachable", failed.ObtainedAt.Add(time.Minute)
	save(t, s, "p", failed, failed.Generation)
	got := load(t, s, "p")
	if got.Generation != 5 || got.Version != 3 || got.PromiseVersion != 1 || got.LastError != "unreachable" {
		t.Fatalf("after two bookkeeping writes: generation %d, version %d, promise version %d, error %q; want 5, 3, 1, \"unreachable\"",
			got.Generation, got.Version, got.PromiseVersion, got.LastError)
	}
	save(t, s, "p", tokens("b", 6), 5)
	if got := load(t, s, "p"); got.Generation != 6 || got.Version != 4 {
		t.Fatalf("the refresh after bookkeeping: generation %d, version %d; want 6, 4", got.Generation, got.Version)
	}
}

// A refresh that was under way when the connection was signed out, and
// then signed in again, does not commit onto the new sign-in.
func afterSignOut(t *testing.T, s auth.Store) {
	now := time.Now()
	g1 := auth.NextGeneration(0, now)
	save(t, s, "p", tokens("grant-1", g1), auth.AnyGeneration)
	if err := s.DeleteTokens(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadTokens(ctx, "p"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("after the sign-out: %v; want %v", err, auth.ErrNotStored)
	}
	refused(t, s, "p", tokens("late refresh", auth.NextGeneration(g1, now)), g1, nil)
	// The next sign-in, even with the clock set back, has a new generation.
	g2 := auth.NextGeneration(0, now.Add(-time.Hour))
	g2 = max(g2, auth.NextGeneration(g1, now))
	grant2 := tokens("grant-2", g2)
	save(t, s, "p", grant2, auth.AnyGeneration)
	refused(t, s, "p", tokens("late refresh", g2+1), g1, grant2)
}

// A token set written before generations were kept is generation 1.
func legacy(t *testing.T, s auth.Store) {
	old := tokens("old", 0)
	save(t, s, "p", old, 0)
	got := load(t, s, "p")
	if auth.StoredGeneration(got) != 1 {
		t.Fatalf("a set without a generation is generation %d; want 1", auth.StoredGeneration(got))
	}
	refused(t, s, "p", tokens("x", 9), 0, old)
	save(t, s, "p", tokens("new", 2), 1)
}

func apart(t *testing.T, s auth.Store) {
	a, b := tokens("a", 1), tokens("b", 1)
	save(t, s, "a", a, 0)
	save(t, s, "b", b, 0)
	save(t, s, "a", tokens("a2", 2), 1)
	if err := s.DeleteTokens(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := load(t, s, "b"); got.AccessToken != b.AccessToken || got.Version != 1 {
		t.Fatalf("b after writes to a: %v version %d", got, got.Version)
	}
	if err := s.SetClientSecret(ctx, "a", "secret-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientSecret(ctx, "b"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("b's secret after a's was set: %v", err)
	}
}

func secrets(t *testing.T, s auth.Store) {
	for _, secret := range []auth.Secret{"s3cr3t", "with spaces and ünïcode ✓", auth.Secret(strings.Repeat("x", 4000))} {
		if err := s.SetClientSecret(ctx, "p", secret); err != nil {
			t.Fatal(err)
		}
		got, err := s.ClientSecret(ctx, "p")
		if err != nil || got != secret {
			t.Fatalf("secret read back: %d bytes, %v; want %d bytes", len(got), err, len(secret))
		}
	}
	if err := s.DeleteClientSecret(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientSecret(ctx, "p"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("after delete: %v", err)
	}
}

// Writers that hold the Locker, each reading, then committing a new
// generation over what it read, lose no write: every one of them lands,
// in some order, and the version counts them.
func underLocker(t *testing.T, s auth.Store) {
	save(t, s, "p", tokens("start", 1), 0)
	var locker auth.ProcessLocker
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := locker.Lock(ctx, "p")
			if err != nil {
				errs <- err
				return
			}
			defer unlock()
			cur, err := s.LoadTokens(ctx, "p")
			if err != nil {
				errs <- err
				return
			}
			errs <- s.SaveTokens(ctx, "p", tokens(fmt.Sprint("w", i), cur.Generation+1), cur.Generation)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a writer under the Locker: %v", err)
		}
	}
	if got := load(t, s, "p"); got.Generation != 1+writers || got.Version != 1+writers {
		t.Fatalf("after %d writers: generation %d, version %d; want %d and %d", writers, got.Generation, got.Version, 1+writers, 1+writers)
	}
}
