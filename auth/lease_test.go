package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// leaseLocker is a Locker whose hold is a lease, as a shared store's is:
// the test says how long the engine would say it has left.
type leaseLocker struct {
	ProcessLocker
	mu    sync.Mutex
	left  time.Duration
	err   error
	asked int
}

func (l *leaseLocker) Left(context.Context, string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked++
	return l.left, l.err
}

func (l *leaseLocker) set(left time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.left, l.err = left, err
}

// A keeper under a lease asks it right before it presents the refresh
// token, and presents nothing when the lease is gone (a holder that slept
// past it) or has less left than the request may take; once the lease is
// its own again, it refreshes.
func TestARefreshUnderALeaseThatRanOutPresentsNothing(t *testing.T) {
	lease := &leaseLocker{}
	r := newRigWith(t, func(o *KeeperOptions) { o.Locker = lease })
	r.signedIn()
	r.clock.Advance(80 * time.Minute) // past the refresh point, still valid

	for _, tc := range []struct {
		left time.Duration
		err  error
		says string
	}{
		{0, fmt.Errorf("lease of procore-sandbox held by moby-2: %w", ErrLeaseLost), "held by moby-2"},
		{30 * time.Second, nil, "has 30s left, less than the request may take (1m0s)"},
		{time.Minute, nil, "has 1m0s left"},
	} {
		lease.set(tc.left, tc.err)
		err := r.k.Refresh(context.Background())
		if !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("lease with %s left (%v): refresh %v", tc.left, tc.err, err)
		}
		if n := r.srv.refreshCount(); n != 0 {
			t.Fatalf("a refresh token was presented %d times without the lease", n)
		}
		st := r.k.Status()
		if st.State != StateDegraded || !st.Usable || st.Next == nil || st.Next.Kind != nextstep.Wait {
			t.Fatalf("without the lease: state %s, usable %t, next %+v", st.State, st.Usable, st.Next)
		}
		// The token held is still handed out: it is valid.
		if tok, err := r.k.Token(context.Background(), time.Minute); err != nil || tok.AccessToken != "at-initial" {
			t.Fatalf("while the lease is another's: %v, %v", tok, err)
		}
	}

	lease.set(5*time.Minute, nil)
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := r.srv.refreshCount(); n != 1 {
		t.Fatalf("refreshes with the lease held: %d, want 1", n)
	}
	if lease.asked != 4 {
		t.Fatalf("the lease was asked %d times, want once per refresh (4)", lease.asked)
	}
	r.noReuse()
}

// unreachableLocker is a shared store's lease whose database does not
// answer.
type unreachableLocker struct{}

func (unreachableLocker) Lock(context.Context, string) (func(), error) {
	return nil, fmt.Errorf("cannot reach postgres://db/tokentray: %w", ErrStoreUnreachable)
}

// While a shared store cannot be reached, nobody refreshes (no lease), the
// valid token held is still handed out, and once none is left the caller
// hears that the store is unreachable, not that a person must sign in.
func TestWithTheStoreUnreachableValidTokensServeAndNothingIsRefreshed(t *testing.T) {
	r := newRigWith(t, func(o *KeeperOptions) { o.Locker = unreachableLocker{} })
	r.signedIn()
	r.clock.Advance(80 * time.Minute) // past the refresh point, 10 minutes left

	err := r.k.Refresh(context.Background())
	if !errors.Is(err, ErrStoreUnreachable) {
		t.Fatalf("refresh without the store: %v", err)
	}
	st := r.k.Status()
	if st.State != StateDegraded || !st.Usable || st.Next == nil || st.Next.Kind != nextstep.Wait || !strings.Contains(st.Next.Cause, "shared store") {
		t.Fatalf("without the store: state %s, usable %t, next %+v", st.State, st.Usable, st.Next)
	}
	if tok, err := r.k.Token(context.Background(), time.Minute); err != nil || tok.AccessToken != "at-initial" {
		t.Fatalf("a valid token while the store is unreachable: %v, %v", tok, err)
	}

	r.clock.Advance(11 * time.Minute) // expired
	_, err = r.k.Token(context.Background(), time.Minute)
	if !errors.Is(err, ErrStoreUnreachable) || errors.Is(err, ErrNeedsSignIn) {
		t.Fatalf("no valid token and no store: %v", err)
	}
	if n := r.srv.refreshCount(); n != 0 {
		t.Fatalf("%d refreshes without the lease", n)
	}
}
