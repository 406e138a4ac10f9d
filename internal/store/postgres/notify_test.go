package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// heard collects what a watch is told, name by name.
type heard chan string

// want waits for name; other names (another test's writes: a channel is
// the database's, not the schema's) and repeats are passed over.
func (h heard) want(t *testing.T, name, after string) {
	t.Helper()
	deadline := time.After(hang)
	for {
		select {
		case got := <-h:
			if got == name {
				return
			}
		case <-deadline:
			t.Fatalf("the watch was not told of %q after %s", name, after)
		}
	}
}

// watch starts s's watch until the test ends, and returns once it listens;
// also, when not nil, is told too.
func watch(t *testing.T, s *Store, also func(name string)) heard {
	t.Helper()
	h := make(heard, 100)
	c, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WatchTokens(c, func(name string) {
			if also != nil {
				also(name)
			}
			select {
			case h <- name:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// Listening: a write by this test is heard (a write before the LISTEN
	// would not be; so write until one is).
	for deadline := time.Now().Add(hang); ; {
		if err := s.SetClientSecret(ctx, "ready", "x"); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-h:
			if got == "ready" {
				return h
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch never listened")
		}
	}
}

// Every write of another instance is told to a watching one: new tokens,
// bookkeeping, a sign-out, a client secret; after its connection was cut,
// the watch listens again by itself and says that it may have missed some
// ("").
func TestAWatchHearsEveryWriteAndListensAgainAfterACut(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	a, _ := instance(t, conn, "moby-1", LeaseOptions{})
	b, _ := instance(t, conn, "moby-2", LeaseOptions{})
	b.watchRetry = 50 * time.Millisecond
	h := watch(t, b, nil)

	if err := a.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	h.want(t, "p", "a sign-in")
	if err := a.SaveTokens(ctx, "p", signedIn("p"), 5); err != nil { // bookkeeping
		t.Fatal(err)
	}
	h.want(t, "p", "a bookkeeping write")
	if err := a.SetClientSecret(ctx, "q", "s3cret"); err != nil {
		t.Fatal(err)
	}
	h.want(t, "q", "a client secret")
	if err := a.DeleteTokens(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	h.want(t, "p", "a sign-out")

	// The server ends the watch's connection (a restart, a failover).
	pgtest.Exec(t, conn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN `+changedChannel+`%'`)
	h.want(t, "", "its connection was cut")
	if err := a.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	h.want(t, "p", "a write after the cut")
}

// Two instances keep one grant: the one that did not refresh hands out
// the other's new access token once told of its commit, with no token
// request and no lease of its own.
func TestAnInstanceHandsOutTheTokensAnotherCommittedOnceTold(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	p, srv, ac := sharedGrant(t, conn)
	// Fresh tokens: neither is due to refresh by itself.
	setup, _ := instance(t, conn, "setup", LeaseOptions{})
	if err := setup.SaveTokens(ctx, ac.Name, &auth.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", TokenType: "bearer",
		ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 2}, 1); err != nil {
		t.Fatal(err)
	}
	a, _ := keeperOf(t, conn, "moby-1", ac, srv, auth.SystemClock{})
	b, bl := keeperOf(t, conn, "moby-2", ac, srv, auth.SystemClock{})
	adopted, stop := b.Subscribe()
	defer stop()
	watch(t, bl.s, func(name string) {
		if name == "" || name == ac.Name {
			b.StoreChanged(ctx)
		}
	})
	if tok, err := b.Token(ctx, time.Minute); err != nil || tok.AccessToken != "at-0" {
		t.Fatalf("b's token before: %v, %v", tok, err)
	}

	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(hang)
	for waiting := true; waiting; {
		select {
		case e := <-adopted:
			waiting = e.Kind != auth.EventAdopted
		case <-deadline:
			t.Fatal("b did not adopt a's commit")
		}
	}
	if tok, err := b.Token(ctx, time.Minute); err != nil || tok.AccessToken != "at-1" {
		t.Fatalf("b's token after a's refresh: %v, %v", tok, err)
	}
	if n, _ := p.Requests(); n != 1 {
		t.Fatalf("%d token requests, want a's one", n)
	}
	if got := query(t, conn, `SELECT count(*)::text FROM tokentray_leases WHERE holder = '`+bl.Holder()+`'`); got[0] != "0" {
		t.Fatal("b took a lease")
	}
}
