package auth

import (
	"context"
	"sync"
	"testing"
	"time"
)

// newPromiseRig is a rig whose request timeout scales with the lifetime (the
// default): 30 s tokens get 1.5 s, so a promise leaves 4.5 s before expiry.
func newPromiseRig(t *testing.T, onlyHolder bool) *rig {
	t.Helper()
	return newRigWith(t, func(o *KeeperOptions) { o.RequestTimeout, o.OnlyHolder = 0, onlyHolder })
}

func TestPromisesMoveTheScheduledRefreshUpToTheExpiryLessTheMargin(t *testing.T) {
	r := newPromiseRig(t, true)
	r.shortLived(30 * time.Second) // refresh at 24 s; expiry 30 s less 3 × 1.5 s: 25.5 s
	if m := r.k.refreshMargin(r.k.token); m != 4500*time.Millisecond {
		t.Fatalf("margin for 30 s tokens = %s, want 4.5s", m)
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	// Plain calls in a loop push nothing.
	for range 10 {
		r.clock.Advance(time.Second)
		if tok, err := r.k.Token(context.Background(), DefaultMinValid); err != nil || tok.AccessToken != "at-initial" {
			t.Fatal(tok, err)
		}
	}
	if due := r.k.Status().NextRefresh; !due.Equal(at(24 * time.Second)) {
		t.Fatalf("after plain calls the refresh is due at %v, want 24 s", due.Sub(t0))
	}
	if s := r.store.stored(r.conn.Name); !s.Promised.IsZero() || s.PromiseVersion != 0 {
		t.Fatalf("plain calls wrote a promise: %v (version %d)", s.Promised, s.PromiseVersion)
	}

	// 10 s + 15 s: the token covers 25 s, so it is handed out and the
	// refresh moves there, kept with the tokens.
	tok, err := r.k.Token(context.Background(), 15*time.Second)
	if err != nil || tok.AccessToken != "at-initial" {
		t.Fatal(tok, err)
	}
	if due := r.k.Status().NextRefresh; !due.Equal(at(25 * time.Second)) {
		t.Fatalf("refresh due at %v, want 25 s (the end of the promise)", due.Sub(t0))
	}
	if s := r.store.stored(r.conn.Name); !s.Promised.Equal(at(25*time.Second)) || s.PromiseVersion != 1 || s.AccessToken != "at-initial" {
		t.Fatalf("stored promise %v version %d", s.Promised.Sub(t0), s.PromiseVersion)
	}
	// Never past the expiry less the margin.
	r.clock.Advance(200 * time.Millisecond)
	if _, err := r.k.Token(context.Background(), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if due := r.k.Status().NextRefresh; !due.Equal(at(25500 * time.Millisecond)) {
		t.Fatalf("refresh due at %v, want 25.5 s (expiry less the margin)", due.Sub(t0))
	}
	// A window inside the latest promise writes nothing.
	r.clock.Advance(100 * time.Millisecond)
	if _, err := r.k.Token(context.Background(), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := r.store.stored(r.conn.Name); s.PromiseVersion != 2 {
		t.Fatalf("promise version %d, want 2: a promise that does not move the refresh is not written", s.PromiseVersion)
	}
	if n := r.srv.refreshCount(); n != 0 {
		t.Fatalf("%d refreshes for promises the token covers", n)
	}

	// 11 s + 15 s ends past 25.5 s: the token cannot cover it. It refreshes
	// first, but not into the windows promised: it waits until 25.5 s.
	r.clock.Advance(700 * time.Millisecond) // 11 s
	next := r.tokenAfterTheEarlierPromises(15*time.Second, 14500*time.Millisecond)
	if next.AccessToken == "at-initial" || r.srv.refreshCount() != 1 {
		t.Fatalf("got %v after %d refreshes; want one refresh and the new token", next, r.srv.refreshCount())
	}
	if s := r.store.stored(r.conn.Name); !s.Promised.IsZero() || s.PromiseVersion != 2 {
		t.Fatalf("the new token set carries promise %v version %d; want none, version kept", s.Promised, s.PromiseVersion)
	}
	r.noReuse()
}

// The case: 200 callers with --min-valid 20s on 30 s tokens, arriving
// over 5 s from 11 s after the sign-in. The held token covers none of them
// (it expires at 30 s); the first refresh's token covers them all.
func TestABurstOfPromisesCostsOneRefresh(t *testing.T) {
	r := newPromiseRig(t, true)
	r.shortLived(30 * time.Second)
	r.clock.Advance(11 * time.Second)
	const callers = 200
	var wg sync.WaitGroup
	got := make(chan Secret, callers)
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := r.k.Token(context.Background(), 20*time.Second)
			if err != nil {
				errs <- err
				return
			}
			got <- tok.AccessToken
		}()
		r.clock.Advance(5 * time.Second / callers)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("callers still waiting after the burst; %d refreshes", r.srv.refreshCount())
	}
	close(errs)
	close(got)
	for err := range errs {
		t.Fatal(err)
	}
	for tok := range got {
		if tok == "at-initial" {
			t.Fatal("a caller got the token that expires within its window")
		}
	}
	if n := r.srv.refreshCount(); n != 1 {
		t.Fatalf("%d callers cost %d refreshes, want 1", callers, n)
	}
	s := r.store.stored(r.conn.Name)
	if due := r.k.Status().NextRefresh; due.Before(r.clock.Now().Add(20*time.Second-5*time.Second/callers)) || due.After(r.k.promiseCap(s)) {
		t.Fatalf("refresh due at %v: want after the last window and by %v", due.Sub(t0), r.k.promiseCap(s).Sub(t0))
	}
	r.noReuse()
}

// Without a running tokentray each CLI process has its own keeper: they see
// each other's promises through the store.
func TestKeepersOverOneStoreKeepEachOthersPromises(t *testing.T) {
	r := newPromiseRig(t, false)
	r.shortLived(30 * time.Second) // refresh at 24 s, promises up to 25.5 s
	other := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: r.k.opt.Locker, Clock: r.clock,
		HTTPClient: r.k.opt.HTTPClient, Jitter: func() float64 { return 0 }})
	if err := other.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(4 * time.Second)
	if tok, err := r.k.Token(context.Background(), 21*time.Second); err != nil || tok.AccessToken != "at-initial" {
		t.Fatal(tok, err) // promised until 25 s
	}
	// A third process started now sees the moved refresh.
	third := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: r.k.opt.Locker, Clock: r.clock})
	if err := third.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if due := third.Status().NextRefresh; !due.Equal(t0.Add(25 * time.Second)) {
		t.Fatalf("another process sees the refresh due at %v, want 25 s", due.Sub(t0))
	}
	// One that loaded before does not know it yet: its caller, whose 22 s
	// the token cannot cover, waits for the refresh it knows (24 s), then
	// finds the promise in the store and waits for it too.
	r.clock.Advance(time.Second) // 5 s
	type result struct {
		tok *Handout
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := other.Token(context.Background(), 22*time.Second)
		done <- result{tok, err}
	}()
	if !r.clock.BlockUntil(1, 30*time.Second) {
		t.Fatal("the other process did not wait")
	}
	r.clock.Advance(19 * time.Second) // 24 s
	if !r.clock.BlockUntil(1, 30*time.Second) {
		t.Fatal("the other process did not wait for the promise it found in the store")
	}
	if n := r.srv.refreshCount(); n != 0 {
		t.Fatalf("refreshed at 24 s, inside the window promised until 25 s (%d calls)", n)
	}
	r.clock.Advance(time.Second) // 25 s
	res := <-done
	if res.err != nil || res.tok.AccessToken == "at-initial" || r.srv.refreshCount() != 1 {
		t.Fatalf("at 25 s: %v, %v after %d refreshes; want the new token", res.tok, res.err, r.srv.refreshCount())
	}
	r.noReuse()
}
