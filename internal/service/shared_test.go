package service_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/service"
	pgstore "github.com/tokentray/tokentray/internal/store/postgres"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// The status of a connection kept in a shared store says who is there,
// from the real database: the instances serving from it (this one among
// them once its watch listens) and which one refreshes now.
func TestTheStatusOfASharedConnectionSaysWhoIsThere(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	open := func(instance string) *pgstore.Store {
		s, err := pgstore.Open(context.Background(), pgstore.Options{URL: conn, Key: bytes.Repeat([]byte{7}, 32), Instance: instance})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	cfg, memory := signedIn(t)
	tokens, _ := memory.LoadTokens(context.Background(), "a")
	store := open("moby-1")
	if err := store.SaveTokens(context.Background(), "a", tokens, 0); err != nil {
		t.Fatal(err)
	}
	svc := service.New(service.Options{Role: service.Serve, Config: cfg, Store: store})
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); svc.Wait() }()

	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := svc.Connection(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if sh := c.Shared; sh != nil && slices.Equal(sh.Instances, []string{"moby-1"}) {
			if sh.Instance != "moby-1" || sh.LeaseHolder != "" || sh.IntentBy != "" {
				t.Fatalf("idle: %+v", sh)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("this instance never listed at the store: %+v", c.Shared)
		}
	}

	// moby-2 refreshes: it holds the lease and has presented the token.
	lease, err := open("moby-2").NewLease(pgstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lease.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := lease.Intend(ctx, "a", auth.StoredGeneration(tokens), time.Second); err != nil {
		t.Fatal(err)
	}
	all, err := svc.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sh := all[0].Shared; sh == nil || sh.LeaseHolder != "moby-2" || sh.IntentBy != "moby-2" || sh.IntentAt.IsZero() {
		t.Fatalf("during moby-2's refresh: %+v", sh)
	}
}
