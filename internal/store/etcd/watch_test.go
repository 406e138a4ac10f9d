package etcd

import (
	"context"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// heard collects what a watch is told, name by name.
type heard chan string

// want waits for name; repeats and other names are passed over.
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

// watch starts s's watch until the test ends, and returns once it is
// told of a write; also, when not nil, is told too.
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
			t.Fatal("the watch never started")
		}
	}
}

// Every write of another instance is told to a watching one: new tokens,
// bookkeeping, a sign-out, a client secret.
func TestAWatchHearsEveryWrite(t *testing.T) {
	c := newCluster(t)
	a, b := c.open(t, "moby-1"), c.open(t, "moby-2")
	h := watch(t, b, nil)
	if err := a.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	h.want(t, "p", "new tokens")
	bk := signedIn("p")
	bk.LastRefreshOK = false
	if err := a.SaveTokens(ctx, "p", bk, 5); err != nil {
		t.Fatal(err)
	}
	h.want(t, "p", "bookkeeping")
	if err := a.SetClientSecret(ctx, "q", "s"); err != nil {
		t.Fatal(err)
	}
	h.want(t, "q", "a client secret")
	if err := a.DeleteTokens(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	h.want(t, "p", "a sign-out")
}

func TestAnInstanceHandsOutTheTokensAnotherCommittedOnceTold(t *testing.T) {
	c := newCluster(t)
	p, srv, ac := sharedGrant(t, c)
	setup := c.open(t, "setup")
	if err := setup.SaveTokens(ctx, ac.Name, &auth.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", TokenType: "bearer",
		ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 2}, 1); err != nil {
		t.Fatal(err)
	}
	a, _ := keeperOf(t, c, "moby-1", ac, srv, auth.SystemClock{})
	b, bl := keeperOf(t, c, "moby-2", ac, srv, auth.SystemClock{})
	adopted, stop := b.Subscribe()
	defer stop()
	watch(t, bl.s, func(name string) {
		if name == "" || name == ac.Name {
			b.StoreChanged(ctx)
		}
	})
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
}
