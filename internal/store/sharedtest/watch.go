package sharedtest

import (
	"context"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// Watcher is a shared store as a watch needs it.
type Watcher interface {
	auth.Store
	auth.StoreWatcher
}

// Heard collects what a watch is told, name by name.
type Heard chan string

// Want waits for name; other names (another test's writes, when the
// engine's channel is wider than the test's own items) and repeats are
// passed over.
func (h Heard) Want(t *testing.T, name, after string) {
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

// Watch starts s's watch until the test ends, and returns once it is
// told of a write of the test's (a write before the watch is in place
// would not be: so it writes until one is); also, when not nil, is told
// too.
func Watch(t *testing.T, s Watcher, also func(name string)) Heard {
	t.Helper()
	h := make(Heard, 100)
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

func signedIn(gen uint64) *auth.TokenSet {
	return &auth.TokenSet{AccessToken: "at", RefreshToken: "rt", TokenType: "bearer", ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: gen}
}

// Every write of another instance is told to a watching one: new tokens,
// bookkeeping, a client secret, a sign-out.
func watchHears(t *testing.T, e Engine) {
	a, _ := e.Open(t, "moby-1", LeaseOptions{})
	b, _ := e.Open(t, "moby-2", LeaseOptions{})
	h := Watch(t, b.(Watcher), nil)
	if err := a.SaveTokens(ctx, "p", signedIn(5), 0); err != nil {
		t.Fatal(err)
	}
	h.Want(t, "p", "a sign-in")
	if err := a.SaveTokens(ctx, "p", signedIn(5), 5); err != nil { // bookkeeping
		t.Fatal(err)
	}
	h.Want(t, "p", "a bookkeeping write")
	if err := a.SetClientSecret(ctx, "q", "s3cret"); err != nil {
		t.Fatal(err)
	}
	h.Want(t, "q", "a client secret")
	if err := a.DeleteTokens(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	h.Want(t, "p", "a sign-out")
}

// Two instances keep one grant: the one that did not refresh hands out
// the other's new access token once told of its commit, with no token
// request of its own.
func toldOfACommit(t *testing.T, e Engine) {
	p, srv, ac := SharedGrant(t, e)
	// Fresh tokens: neither is due to refresh by itself.
	setup, _ := e.Open(t, "setup", LeaseOptions{})
	if err := setup.SaveTokens(ctx, ac.Name, &auth.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", TokenType: "bearer",
		ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 2}, 1); err != nil {
		t.Fatal(err)
	}
	a, _ := KeeperOf(t, e, "moby-1", ac, srv, auth.SystemClock{})
	bs, bl := e.Open(t, "moby-2", LeaseOptions{})
	b := keeperOn(t, bs, bl, ac, srv, auth.SystemClock{})
	adopted, stop := b.Subscribe()
	defer stop()
	Watch(t, bs.(Watcher), func(name string) {
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
	if pr, err := bs.(auth.PresenceTeller).Presence(ctx); err != nil || len(pr.Leases) != 0 {
		t.Fatalf("leases held once a's refresh is committed: %+v, %v", pr, err)
	}
}
