package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// The instances at the store are those whose watch is connected, as the
// engine knows it (no heartbeat): one that stops is gone from the list as
// soon as its connection is. The lease holder and an unsettled intent are
// told by connection.
func TestPresenceSaysWhoIsAtTheStore(t *testing.T) {
	_, conn := open(t)
	a, la := instance(t, conn, "moby-1", LeaseOptions{})
	b, _ := instance(t, conn, "moby-2", LeaseOptions{})
	watch := func(s *Store) (stop func()) {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.WatchTokens(ctx, func(string) {})
		}()
		return func() { cancel(); <-done }
	}
	eventually := func(what string, ok func([]string) bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			p, err := a.Presence(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ok(p.Instances) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: instances %q", what, p.Instances)
			}
		}
	}

	p, err := a.Presence(ctx)
	if err != nil || len(p.Instances) != 0 || len(p.Leases) != 0 || len(p.Intents) != 0 {
		t.Fatalf("nobody watching: %+v, %v", p, err)
	}
	stopA, stopB := watch(a), watch(b)
	defer stopB()
	eventually("both watching", func(in []string) bool { return slices.Equal(in, []string{"moby-1", "moby-2"}) })
	stopA()
	eventually("moby-1 stopped", func(in []string) bool { return slices.Equal(in, []string{"moby-2"}) })

	if err := a.SaveTokens(ctx, "p", &auth.TokenSet{AccessToken: "at", RefreshToken: "rt", TokenType: "bearer",
		ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 7}, 0); err != nil {
		t.Fatal(err)
	}
	unlock, err := la.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Intend(ctx, "p", 7, time.Second); err != nil {
		t.Fatal(err)
	}
	p, err = b.Presence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Leases["p"] != "moby-1" || p.Intents["p"].Instance != "moby-1" || p.Intents["p"].At.IsZero() {
		t.Fatalf("during moby-1's refresh: leases %v, intents %+v", p.Leases, p.Intents)
	}
	// Died mid-refresh: the lease ends, the intent stays until settled.
	unlock()
	p, _ = b.Presence(ctx)
	if _, held := p.Leases["p"]; held || p.Intents["p"].Instance != "moby-1" {
		t.Fatalf("after the unlock with the intent left: leases %v, intents %+v", p.Leases, p.Intents)
	}
	// Its commit landed before it died (a newer generation stored): the
	// intent left on the older one is nothing to wait for, and not told.
	if err := a.SaveTokens(ctx, "p", &auth.TokenSet{AccessToken: "at-2", RefreshToken: "rt-2", TokenType: "bearer",
		ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 8}, 7); err != nil {
		t.Fatal(err)
	}
	if p, _ = b.Presence(ctx); len(p.Intents) != 0 {
		t.Fatalf("an intent on a committed generation is told: %+v", p.Intents)
	}
}
