package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokentray/tokentray/auth"
)

// DefaultLeaseTTL is a lease's time to live when LeaseOptions.TTL is zero:
// auth.DefaultLeaseTTL, which says what it must exceed.
const DefaultLeaseTTL = auth.DefaultLeaseTTL

// DefaultLeasePoll is how often a Lock waiting for a lease looks again
// when no watch event wakes it (LeaseOptions.Poll zero).
const DefaultLeasePoll = 500 * time.Millisecond

// clockTTL is the life of an intent's clock: the etcd lease whose time to
// live, counted down by the cluster's leader, tells the intent's age (etcd
// shows no clock of its own). It exceeds any rescue window (twice the
// longest request timeout, 60 s); an intent whose clock ran out is at least
// that old.
const clockTTL = 10 * time.Minute

// LeaseOptions are what NewLease takes; every field has a default.
type LeaseOptions struct {
	// TTL is how long a lease lives without renewal, by the cluster's
	// clock, in whole seconds (rounded up; default DefaultLeaseTTL). While
	// held, it is renewed every TTL/3.
	TTL time.Duration
	// Poll is how often a waiting Lock looks again when no watch event
	// wakes it (default DefaultLeasePoll).
	Poll time.Duration
	// Log hears of renewals that failed and leases lost; never a token.
	Log *slog.Logger
}

// Lease is the Locker of connections kept in etcd: per connection a key,
// /tokentray/leases/NAME, whose value is the holder and which is attached
// to an etcd lease of the TTL, so that the cluster's leader deletes it when
// the holder stops renewing (it paused, died or was cut off). It
// implements auth.Locker and auth.Lease, and is safe for concurrent use.
//
//   - Holder: the instance name, this process's id and a random id, so two
//     machines of the same host name, or two processes on one machine,
//     never share a lease. Within the process, one operation per
//     connection holds it at a time.
//   - Lock grants an etcd lease and creates the key attached to it in a
//     transaction on the key's absence; while another holds it, Lock
//     watches the key and tries again when it is deleted (a release, or
//     the cluster ending a lease), and every Poll besides.
//   - While held, a goroutine renews it every TTL/3; a renewal that finds
//     the etcd lease gone stops: the lease is lost, and Intend says so.
//   - Intend, right before the keeper presents a refresh token, renews the
//     etcd lease (which answers with its TTL), then writes the intent in a
//     transaction that succeeds only while the key is still this holder's
//     and attached to that lease; then checks that what is left, less the
//     time since the renewal was sent, is more than the request may take.
//     The intent is a key of its own, attached to no lease: it outlives
//     the lease and the holder until Settle or another holder's Intend.
//     Its age is told by a second etcd lease, its clock: granted clockTTL
//     at Intend, its remaining time says how long ago that was by the
//     leader's clock, in whole seconds, rounded so that the age is never
//     told longer than it is.
//   - The unlock func stops the renewer and revokes the etcd lease, which
//     deletes the key (never a successor's: theirs is attached to another
//     lease) and wakes the waiters. It is bounded by the store's timeout.
//
// etcd extends every lease when a new leader is elected: a lease then
// lives longer than its TTL, never shorter, so a holder's check of what is
// left stays true, and a successor waits longer, never less.
type Lease struct {
	s          *Store
	holder     string
	ttl        time.Duration
	poll       time.Duration
	log        *slog.Logger
	renewEvery time.Duration // TTL/3; tests set 0 to play a paused holder
	local      auth.ProcessLocker

	mu   sync.Mutex
	held map[string]clientv3.LeaseID
}

var (
	_ auth.Locker = (*Lease)(nil)
	_ auth.Lease  = (*Lease)(nil)
)

// NewLease returns the lease of s's connections, held in s's cluster as
// this process.
func (s *Store) NewLease(o LeaseOptions) (*Lease, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultLeaseTTL
	}
	o.TTL = time.Duration(math.Ceil(o.TTL.Seconds())) * time.Second // etcd counts whole seconds
	if o.Poll <= 0 {
		o.Poll = DefaultLeasePoll
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	holder, err := auth.NewHolder(s.instance)
	if err != nil {
		return nil, err
	}
	return &Lease{s: s, holder: holder,
		ttl: o.TTL, poll: o.Poll, log: o.Log, renewEvery: o.TTL / 3, held: map[string]clientv3.LeaseID{}}, nil
}

// Holder is this process's name in the leases it holds.
func (l *Lease) Holder() string { return l.holder }

// TTL is how long a lease lives without renewal.
func (l *Lease) TTL() time.Duration { return l.ttl }

func (s *Store) leaseKey(name string) string  { return s.prefix + "leases/" + name }
func (s *Store) intentKey(name string) string { return s.prefix + "intents/" + name }

// Lock takes the lease on name, waiting until it is free or ctx ends.
func (l *Lease) Lock(ctx context.Context, name string) (func(), error) {
	unlockLocal, err := l.local.Lock(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("wait for the lease on %s, held by another operation of this process: %w", name, err)
	}
	id, err := l.acquire(ctx, name)
	if err != nil {
		unlockLocal()
		return nil, err
	}
	l.mu.Lock()
	l.held[name] = id
	l.mu.Unlock()
	stop := l.renew(name, id)
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			l.mu.Lock()
			delete(l.held, name)
			l.mu.Unlock()
			l.release(id)
			unlockLocal()
		})
	}, nil
}

// acquire creates name's key under a new etcd lease, waiting while it is
// another's.
func (l *Lease) acquire(ctx context.Context, name string) (clientv3.LeaseID, error) {
	for {
		id, rev, err := l.take(ctx, name)
		switch {
		case err == nil && id != 0:
			return id, nil
		case ctx.Err() != nil:
			return 0, l.waitedOut(ctx, name)
		case err != nil:
			return 0, fmt.Errorf("take the lease on %s: %w", name, err)
		}
		// Held by another: wait for its key's deletion after the revision
		// read, so that a release between the look and the watch counts.
		wctx, cancel := context.WithCancel(ctx)
		events := l.s.cli.Watch(wctx, l.s.leaseKey(name), clientv3.WithRev(rev+1), clientv3.WithFilterPut())
		t := time.NewTimer(l.poll)
		select {
		case resp, ok := <-events:
			if !ok || resp.Err() != nil {
				// A watch that could not be made (its revision
				// compacted, no leader): the poll, not a busy loop.
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		cancel()
	}
}

// take creates name's key under a new etcd lease if there is no key; it
// returns the lease (0 when another holds the key) and the revision read.
func (l *Lease) take(ctx context.Context, name string) (clientv3.LeaseID, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	key := l.s.leaseKey(name)
	got, err := l.s.get(ctx, key)
	if err != nil {
		return 0, 0, l.s.explain("read", err)
	}
	if len(got.Kvs) > 0 {
		if string(got.Kvs[0].Value) != l.holder {
			return 0, got.Header.Revision, nil
		}
		// This Lease's own, left by an unlock whose revoke failed (local
		// admits no other operation of this process meanwhile): let it go.
		l.release(clientv3.LeaseID(got.Kvs[0].Lease))
	}
	grant, err := retry(ctx, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) {
		return l.s.cli.Grant(ctx, int64(l.ttl/time.Second))
	})
	if err != nil {
		return 0, 0, l.s.explain("write", err)
	}
	// A retry whose first try landed finds the key this Lease's own at
	// the next take, which lets it go and takes it again.
	resp, err := retry(ctx, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return l.s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, l.holder, clientv3.WithLease(grant.ID))).Commit()
	})
	if err != nil || !resp.Succeeded {
		l.release(grant.ID)
		if err != nil {
			return 0, 0, l.s.explain("write", err)
		}
		return 0, resp.Header.Revision, nil
	}
	return grant.ID, 0, nil
}

// waitedOut is the error of a Lock whose ctx ended: ctx's error, with who
// holds the lease and how long it lives without renewal.
func (l *Lease) waitedOut(ctx context.Context, name string) error {
	return fmt.Errorf("wait for the lease on %s, %s: %w", name, l.describe(name), ctx.Err())
}

// describe says who holds name's lease now and how long it has left by the
// cluster's clock, with calls of its own (bounded: the caller's ctx may
// have ended).
func (l *Lease) describe(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), l.s.timeout)
	defer cancel()
	got, err := l.s.get(ctx, l.s.leaseKey(name))
	switch {
	case err != nil:
		return "held by an instance this one could not ask about (" + l.s.explain("read", err).Error() + ")"
	case len(got.Kvs) == 0:
		return "held by no one now"
	}
	holder := string(got.Kvs[0].Value)
	ttl, err := retry(ctx, func(ctx context.Context) (*clientv3.LeaseTimeToLiveResponse, error) {
		return l.s.cli.TimeToLive(ctx, clientv3.LeaseID(got.Kvs[0].Lease))
	})
	if err != nil || ttl.TTL < 0 {
		return fmt.Sprintf("held by %s", holder)
	}
	return fmt.Sprintf("held by %s for %ds more by the cluster's clock unless renewed", holder, ttl.TTL)
}

// Intend renews this process's etcd lease on name and records its intent
// to present the refresh token of generation gen, if the lease's key is
// still this process's; then it checks that the lease has more than need
// left, less the time since the renewal was sent (auth.Lease). Without
// the lease it records nothing and returns an error wrapping
// auth.ErrLeaseLost that says who holds it now.
func (l *Lease) Intend(ctx context.Context, name string, gen uint64, need time.Duration) error {
	if l.ttl <= need {
		return fmt.Errorf("%w: the lease on %s lives %s, no longer than a token request may take (%s): the lease's TTL must be longer", auth.ErrLeaseLost, name, l.ttl, need)
	}
	l.mu.Lock()
	id, ok := l.held[name]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: this process takes no lease on %s now", auth.ErrLeaseLost, name)
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	renewed, err := retry(cctx, func(ctx context.Context) (*clientv3.LeaseKeepAliveResponse, error) {
		return l.s.cli.KeepAliveOnce(ctx, id)
	})
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("%w: %s is %s, not by %s", auth.ErrLeaseLost, name, l.describe(name), l.holder)
	}
	if err != nil {
		return fmt.Errorf("renew the lease on %s: %w", name, l.s.explain("write", err))
	}
	clock, err := retry(cctx, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) {
		return l.s.cli.Grant(ctx, int64(clockTTL/time.Second))
	})
	if err != nil {
		return fmt.Errorf("record the refresh intent on %s: %w", name, l.s.explain("write", err))
	}
	b, _ := json.Marshal(intentValue{Holder: l.holder, Generation: gen, Clock: int64(clock.ID), ClockTTL: clock.TTL})
	key := l.s.leaseKey(name)
	// Sent again after a lost answer, the same intent is written again:
	// no harm.
	resp, err := retry(cctx, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return l.s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(key), "=", l.holder), clientv3.Compare(clientv3.LeaseValue(key), "=", id)).
			Then(clientv3.OpPut(l.s.intentKey(name), string(b))).Commit()
	})
	if err != nil || !resp.Succeeded {
		l.release(clock.ID)
		if err != nil {
			return fmt.Errorf("record the refresh intent on %s: %w", name, l.s.explain("write", err))
		}
		return fmt.Errorf("%w: %s is %s, not by %s", auth.ErrLeaseLost, name, l.describe(name), l.holder)
	}
	if left := time.Duration(renewed.TTL)*time.Second - time.Since(start); left <= need {
		// The answers took so long that too little is left: this holder
		// presents nothing, so its intent goes again.
		if err := l.Settle(ctx, name); err != nil {
			l.log.Warn("the refresh intent was not cleared: the next instance waits out the rescue window first", "connection", name, "err", err)
		}
		return fmt.Errorf("%w: the lease on %s has %s left, less than the request may take (%s)", auth.ErrLeaseLost, name, left.Round(time.Millisecond), need)
	}
	return nil
}

// intentValue is a refresh intent under its key.
type intentValue struct {
	Holder     string `json:"holder"`
	Generation uint64 `json:"generation"`
	// Clock is the etcd lease granted ClockTTL seconds at Intend.
	Clock    int64 `json:"clock"`
	ClockTTL int64 `json:"clock_ttl"`
}

// Settle clears this process's intent on name; another holder's stays.
func (l *Lease) Settle(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	got, err := l.s.get(ctx, l.s.intentKey(name))
	if err != nil {
		return fmt.Errorf("clear the refresh intent on %s: %w", name, l.s.explain("read", err))
	}
	if len(got.Kvs) == 0 {
		return nil
	}
	var in intentValue
	if json.Unmarshal(got.Kvs[0].Value, &in) == nil && in.Holder != l.holder {
		return nil
	}
	_, err = retry(ctx, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return l.s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(l.s.intentKey(name)), "=", got.Kvs[0].ModRevision)).
			Then(clientv3.OpDelete(l.s.intentKey(name))).Commit()
	})
	if err != nil {
		return fmt.Errorf("clear the refresh intent on %s: %w", name, l.s.explain("write", err))
	}
	l.release(clientv3.LeaseID(in.Clock))
	return nil
}

// Intent returns the intent recorded on name, with its age by the
// cluster's clock; nil when there is none.
func (l *Lease) Intent(ctx context.Context, name string) (*auth.Intent, error) {
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	in, err := l.s.intent(ctx, name)
	if err != nil || in == nil {
		return nil, err
	}
	in.Mine = in.Holder == l.holder
	return in, nil
}

// intent reads the intent on name and its age (nil when there is none).
func (s *Store) intent(ctx context.Context, name string) (*auth.Intent, error) {
	got, err := s.get(ctx, s.intentKey(name))
	if err != nil {
		return nil, fmt.Errorf("read the refresh intent on %s: %w", name, s.explain("read", err))
	}
	if len(got.Kvs) == 0 {
		return nil, nil
	}
	var v intentValue
	if err := json.Unmarshal(got.Kvs[0].Value, &v); err != nil {
		return nil, fmt.Errorf("%s holds something that is not a refresh intent: %w", s.intentKey(name), err)
	}
	age, err := s.clockAge(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("read the age of the refresh intent on %s: %w", name, err)
	}
	return &auth.Intent{Instance: auth.InstanceOf(v.Holder), Holder: v.Holder, Generation: v.Generation, Age: age, At: time.Now().Add(-age)}, nil
}

// clockAge is how long ago v's clock was granted, by the leader's clock:
// etcd tells a lease's remaining time in whole seconds, cut down, so the
// true age lies within a second below ClockTTL − remaining; the age told
// is the least of that second, never more than the truth. A clock that ran
// out tells ClockTTL, which exceeds any rescue window.
func (s *Store) clockAge(ctx context.Context, v intentValue) (time.Duration, error) {
	ttl, err := retry(ctx, func(ctx context.Context) (*clientv3.LeaseTimeToLiveResponse, error) {
		return s.cli.TimeToLive(ctx, clientv3.LeaseID(v.Clock))
	})
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && ttl.TTL < 0) {
		return time.Duration(v.ClockTTL) * time.Second, nil
	}
	if err != nil {
		return 0, s.explain("read", err)
	}
	return max(time.Duration(v.ClockTTL-ttl.TTL-1)*time.Second, 0), nil
}

// renew renews the etcd lease id of name every renewEvery until the
// returned func is called (which waits for it to stop) or the lease is
// found gone.
func (l *Lease) renew(name string, id clientv3.LeaseID) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l.renewEvery <= 0 {
			return // a paused holder (tests)
		}
		t := time.NewTicker(l.renewEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			c, cancelCall := context.WithTimeout(ctx, l.s.timeout)
			_, err := retry(c, func(ctx context.Context) (*clientv3.LeaseKeepAliveResponse, error) {
				return l.s.cli.KeepAliveOnce(ctx, id)
			})
			cancelCall()
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				l.log.Error("the lease on the connection ran out before it was renewed (this process paused, or the cluster was out of reach): another instance may hold it now", "connection", name, "holder", l.holder)
				return
			case err != nil:
				l.log.Warn("the lease on the connection was not renewed; trying again", "connection", name, "err", l.s.explain("write", err))
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// release revokes the etcd lease id, deleting the keys attached to it. One
// that fails runs out by itself within its TTL.
func (l *Lease) release(id clientv3.LeaseID) {
	if id == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.s.timeout)
	defer cancel()
	_, err := retry(ctx, func(ctx context.Context) (*clientv3.LeaseRevokeResponse, error) { return l.s.cli.Revoke(ctx, id) })
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		l.log.Warn("an etcd lease was not revoked; it runs out by itself", "ttl", l.ttl, "err", l.s.explain("write", err))
	}
}
