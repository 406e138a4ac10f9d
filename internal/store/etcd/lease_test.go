package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/sharedtest"
)

// hang bounds every wait of these tests: a generous limit for a stuck
// test, never a measure of speed.
const hang = 60 * time.Second

// instance opens a store on c as the named instance, and its lease.
func (c cluster) instance(t testing.TB, name string, o LeaseOptions) (*Store, *Lease) {
	t.Helper()
	s := c.open(t, name)
	l, err := s.NewLease(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, l
}

func (c cluster) Open(t testing.TB, name string, o sharedtest.LeaseOptions) (auth.Store, sharedtest.Lease) {
	if o.Key != nil {
		s := c.openWithKey(t, name, o.Key)
		l, err := s.NewLease(LeaseOptions{TTL: o.TTL, Poll: o.Poll})
		if err != nil {
			t.Fatal(err)
		}
		return s, l
	}
	return c.instance(t, name, LeaseOptions{TTL: o.TTL, Poll: o.Poll})
}

// Backdate makes the intent's clock tell an older age: the clock lease's
// remaining time cannot be changed, so the intent claims it was granted
// that much longer.
func (c cluster) Backdate(t testing.TB, name string, age time.Duration) {
	t.Helper()
	var v intentValue
	if err := json.Unmarshal([]byte(c.get(t, "intents/"+name)), &v); err != nil {
		t.Fatal(err)
	}
	v.ClockTTL += int64(age / time.Second)
	b, _ := json.Marshal(v)
	c.put(t, "intents/"+name, string(b))
}

func TestTheEtcdStoreKeepsTheSharedStoreContract(t *testing.T) {
	sharedtest.Run(t, func(t *testing.T) sharedtest.Engine { return newCluster(t) })
}

type lockResult struct {
	unlock func()
	err    error
}

func lockAsync(l *Lease, c context.Context, name string) <-chan lockResult {
	res := make(chan lockResult, 1)
	go func() {
		u, err := l.Lock(c, name)
		res <- lockResult{u, err}
	}()
	return res
}

// waitForWaiter returns once l's Lock has looked and found name held: its
// watch starts from the revision of that look, so a release from then on
// wakes it.
func waitForWaiter(t *testing.T, c cluster, name string, got <-chan lockResult) {
	t.Helper()
	// The look is a read; nothing else marks it. A short settle is enough
	// for the test's claim, which does not depend on it: a release before
	// the look only makes the Lock succeed at its first try.
	select {
	case r := <-got:
		t.Fatalf("took the lease while another held it: %v", r.err)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestTwoInstancesOfOneNameNeverHoldALeaseAtOnceAndAReleaseWakesTheWaiter(t *testing.T) {
	c := newCluster(t)
	// The poll is an hour: only the release (a watch event) can wake the
	// waiter within the test's bound.
	_, a := c.instance(t, "moby", LeaseOptions{Poll: time.Hour})
	_, b := c.instance(t, "moby", LeaseOptions{Poll: time.Hour})
	if a.Holder() == b.Holder() || !strings.HasPrefix(a.Holder(), "moby/") {
		t.Fatalf("holders %q and %q: want two, both of instance moby", a.Holder(), b.Holder())
	}
	unlockA, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	cc, cancel := context.WithTimeout(ctx, hang)
	defer cancel()
	gotB := lockAsync(b, cc, "p")
	waitForWaiter(t, c, "p", gotB)
	if h := c.get(t, "leases/p"); h != a.Holder() {
		t.Fatalf("holder %q while a holds it; want %q", h, a.Holder())
	}
	unlockA()
	unlockA() // idempotent: deletes nothing of b's
	r := <-gotB
	if r.err != nil {
		t.Fatalf("b, woken by a's release: %v", r.err)
	}
	defer r.unlock()
	if h := c.get(t, "leases/p"); h != b.Holder() {
		t.Fatalf("holder %q after a released; want b, %q", h, b.Holder())
	}
	if err := a.Intend(ctx, "p", 1, 0); !errors.Is(err, auth.ErrLeaseLost) {
		t.Fatalf("a's Intend after its release: %v; want %v", err, auth.ErrLeaseLost)
	}
	unlockQ, err := a.Lock(cc, "q")
	if err != nil {
		t.Fatal(err)
	}
	unlockQ()
}

// A holder that pauses (its renewer stops) loses the lease once the
// cluster's leader ends its etcd lease: the other instance takes it then,
// not before; the paused one's Intend fails naming the new holder, and its
// unlock leaves the successor's key alone.
func TestAPausedHolderLosesTheLeaseByTheClustersClock(t *testing.T) {
	c := newCluster(t)
	_, a := c.instance(t, "moby-1", LeaseOptions{TTL: 2 * time.Second})
	a.renewEvery = 0 // paused: renews nothing
	_, b := c.instance(t, "moby-2", LeaseOptions{Poll: time.Hour})
	unlockA, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	cli := c.client(t)
	got, err := cli.Get(ctx, c.prefix+"leases/p")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatal(got, err)
	}
	aLease := clientv3.LeaseID(got.Kvs[0].Lease)
	cc, cancel := context.WithTimeout(ctx, hang)
	defer cancel()
	unlockB, err := b.Lock(cc, "p") // woken by the key's deletion at a's expiry
	if err != nil {
		t.Fatalf("b, after a's lease ran out: %v", err)
	}
	defer unlockB()
	// b took it after the leader ended a's lease, not before.
	if ttl, err := cli.TimeToLive(ctx, aLease); err != nil || ttl.TTL != -1 {
		t.Fatalf("a's etcd lease once b holds the key: %+v, %v; want it ended", ttl, err)
	}
	err = a.Intend(ctx, "p", 1, 0)
	if !errors.Is(err, auth.ErrLeaseLost) || !strings.Contains(err.Error(), b.Holder()) {
		t.Fatalf("a's Intend once b holds it: %v; want %v naming b", err, auth.ErrLeaseLost)
	}
	unlockA()
	if h := c.get(t, "leases/p"); h != b.Holder() {
		t.Fatalf("after the paused holder's unlock the holder is %q; want b, %q", h, b.Holder())
	}
	if err := b.Intend(ctx, "p", 1, 0); err != nil {
		t.Fatalf("b's lease after a's unlock: %v", err)
	}
}

func TestAWaitingLockReturnsWhenItsContextEndsSayingWhoHoldsTheLease(t *testing.T) {
	c := newCluster(t)
	_, a := c.instance(t, "moby-1", LeaseOptions{})
	_, b := c.instance(t, "moby-2", LeaseOptions{Poll: time.Hour})
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	cc, cancel := context.WithCancel(ctx)
	got := lockAsync(b, cc, "p")
	waitForWaiter(t, c, "p", got)
	cancel()
	select {
	case r := <-got:
		if !errors.Is(r.err, context.Canceled) || !strings.Contains(r.err.Error(), a.Holder()) || !strings.Contains(r.err.Error(), "by the cluster's clock") {
			t.Fatalf("a cancelled wait: %v; want context.Canceled, naming a and what its lease has left", r.err)
		}
	case <-time.After(hang):
		t.Fatal("a cancelled Lock did not return")
	}
}

// The renewer keeps a held lease alive across several TTLs: another
// instance waiting all along never gets it.
func TestTheRenewerKeepsALeaseAcrossSeveralTTLs(t *testing.T) {
	c := newCluster(t)
	_, a := c.instance(t, "moby-1", LeaseOptions{TTL: 3 * time.Second})
	// Renewed often, so that a busy machine's stall of less than 2.8 s
	// loses nothing: the test is of renewal, not of speed.
	a.renewEvery = 200 * time.Millisecond
	_, b := c.instance(t, "moby-2", LeaseOptions{Poll: 100 * time.Millisecond})
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	cc, cancel := context.WithCancel(ctx)
	defer cancel()
	got := lockAsync(b, cc, "p")
	// Three TTLs by this machine's clock, which runs at the leader's pace.
	select {
	case r := <-got:
		t.Fatalf("b took a renewed lease: %v", r.err)
	case <-time.After(9 * time.Second):
	}
	if h := c.get(t, "leases/p"); h != a.Holder() {
		t.Fatalf("holder %q; want a, %q", h, a.Holder())
	}
	if err := a.Intend(ctx, "p", 1, 0); err != nil {
		t.Fatalf("a's lease after several TTLs: %v", err)
	}
	unlock()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.unlock()
	case <-time.After(hang):
		t.Fatal("b did not get the released lease")
	}
}

// An intent's age is told by the leader's clock, never longer than it is:
// a fresh one is under two seconds old, one waited on grows with the wait.
func TestAnIntentsAgeIsNeverToldLongerThanItIs(t *testing.T) {
	c := newCluster(t)
	_, a := c.instance(t, "moby-1", LeaseOptions{})
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	start := time.Now()
	if err := a.Intend(ctx, "p", 3, time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	in, err := a.Intent(ctx, "p")
	if err != nil || in == nil {
		t.Fatal(in, err)
	}
	if waited := time.Since(start); in.Age > waited || in.Age < waited-2*time.Second {
		t.Fatalf("age %v after %v; want at most that, and within 2 s of it (whole seconds, cut down)", in.Age, waited)
	}
}
