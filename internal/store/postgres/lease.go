package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokentray/tokentray/auth"
)

// DefaultLeaseTTL is a lease's time to live when LeaseOptions.TTL is zero:
// auth.DefaultLeaseTTL, which says what it must exceed.
const DefaultLeaseTTL = auth.DefaultLeaseTTL

// DefaultLeasePoll is how often a Lock waiting for a lease looks again
// when LeaseOptions.Poll is zero. A release wakes the waiters at once
// (LISTEN/NOTIFY); the poll is for a holder that died and never releases,
// whose lease the server's clock ends.
const DefaultLeasePoll = 500 * time.Millisecond

// releasedChannel is the NOTIFY channel of released leases; the payload is
// the connection's name.
const releasedChannel = "tokentray_lease_released"

// LeaseOptions are what NewLease takes; every field has a default.
type LeaseOptions struct {
	// TTL is how long a lease lives without renewal, by the server's
	// clock (default DefaultLeaseTTL; see there for the bound it must
	// exceed). While held, it is renewed every TTL/3.
	TTL time.Duration
	// Poll is how often a waiting Lock looks again when no release wakes
	// it (default DefaultLeasePoll).
	Poll time.Duration
	// Log hears of renewals that failed and leases lost (default: none).
	// It is never given a token.
	Log *slog.Logger
}

// Lease is the Locker of connections kept in PostgreSQL: a lease per
// connection, a row of tokentray_leases (name, holder, expires_at), timed
// by the server's clock alone (now()), never this machine's. It implements
// auth.Locker and auth.Lease, and is safe for concurrent use.
//
//   - Holder: the instance name, this process's id and a random id of the
//     Lease, so two machines of the same host name, or two processes on one
//     machine, never share a lease. Within the process, one operation per
//     connection holds it at a time.
//   - Lock takes the row if there is none or its lease ran out (one
//     statement), else waits: a release NOTIFYs the waiters (LISTEN on one
//     connection of the Lease's own, open while someone waits), and a
//     waiter looks again every Poll for a holder that died. It waits until
//     ctx ends, then says who holds the lease and until when.
//   - While held, a goroutine renews it every TTL/3 (expires_at = now() +
//     TTL, only while it is still this holder's and has not run out); a
//     renewal that finds it gone stops: the lease is lost, and Intend says
//     so.
//   - Intend, right before the keeper presents a refresh token, renews the
//     lease and records the intent (holder, generation, the server's now())
//     in the row, in one statement, only while the lease is this holder's;
//     then checks that what is left of it, less the round trip's own time,
//     is more than the request may take (if not, it clears the intent). Settle clears the intent if it is
//     still this holder's; Intent reads it, with its age by the server's
//     clock. Taking the lease keeps the row's intent: the next holder sees
//     it.
//   - The unlock func stops the renewer and releases the row if it is
//     still this holder's (never a successor's), NOTIFYing the waiters: it
//     deletes the row, or, while an intent is left in it, ends the lease
//     and keeps the intent. It is bounded by the store's timeout, and
//     idempotent.
//
// No transaction and no session lock is held across anything but one
// statement: never across the provider's request (a pooled connection
// pinned by a lock held across an outside call is how Nango's refresh
// deadlocked).
type Lease struct {
	s      *Store
	holder string
	ttl    time.Duration
	poll   time.Duration
	log    *slog.Logger
	// renewEvery is TTL/3; tests set it to 0 to play a paused holder,
	// which renews nothing.
	renewEvery time.Duration
	// local admits one operation per connection of this process at a
	// time: the row's holder is this Lease, and its unlock must never
	// delete the row of a later Lock of the same process.
	local auth.ProcessLocker

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	nwait   int
	listen  *listener // nil while no one waits
}

var (
	_ auth.Locker = (*Lease)(nil)
	_ auth.Lease  = (*Lease)(nil)
)

// NewLease returns the lease of s's connections, held in s's database as
// this process.
func (s *Store) NewLease(o LeaseOptions) (*Lease, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultLeaseTTL
	}
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
		ttl: o.TTL, poll: o.Poll, log: o.Log, renewEvery: o.TTL / 3,
		waiters: map[string]map[chan struct{}]struct{}{}}, nil
}

// Holder is this process's name in the leases it holds.
func (l *Lease) Holder() string { return l.holder }

// TTL is how long a lease lives without renewal.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Lock takes the lease on name, waiting until it is free or ctx ends.
func (l *Lease) Lock(ctx context.Context, name string) (func(), error) {
	unlockLocal, err := l.local.Lock(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("wait for the lease on %s, held by another operation of this process: %w", name, err)
	}
	if err := l.acquire(ctx, name); err != nil {
		unlockLocal()
		return nil, err
	}
	stop := l.renew(name)
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			l.release(name)
			unlockLocal()
		})
	}, nil
}

// acquire takes name's row, waiting for a release (or a poll) while it is
// another's.
func (l *Lease) acquire(ctx context.Context, name string) error {
	var wake chan struct{}
	defer func() {
		if wake != nil {
			l.unwait(name, wake)
		}
	}()
	for {
		taken, err := l.take(ctx, name)
		switch {
		case err == nil && taken:
			return nil
		case ctx.Err() != nil:
			return l.waitedOut(ctx, name)
		case err != nil:
			return fmt.Errorf("take the lease on %s: %w", name, err)
		}
		if wake == nil {
			// Listen first, then look again: a release between the look
			// above and the LISTEN would wake no one.
			var ready <-chan struct{}
			wake, ready = l.wait(name)
			select {
			case <-ready:
			case <-ctx.Done():
				return l.waitedOut(ctx, name)
			}
			continue
		}
		t := time.NewTimer(l.poll)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// take takes name's row if there is none, if its lease ran out, or if it
// is this Lease's own (left by an unlock that could not delete it: local
// admits no other operation of this process meanwhile).
func (l *Lease) take(ctx context.Context, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	tag, err := l.s.pool.Exec(ctx, `INSERT INTO tokentray_leases AS l (name, holder, expires_at)
		VALUES ($1, $2, now() + make_interval(secs => $3))
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
		WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder`, name, l.holder, l.ttl.Seconds())
	if err != nil {
		return false, l.s.explain("write", err)
	}
	return tag.RowsAffected() == 1, nil
}

// waitedOut is the error of a Lock whose ctx ended: ctx's error, with who
// holds the lease and until when by the server's clock.
func (l *Lease) waitedOut(ctx context.Context, name string) error {
	return fmt.Errorf("wait for the lease on %s, %s: %w", name, l.describe(name), ctx.Err())
}

// describe says who holds name's lease now and until when, by the
// server's clock, with a call of its own (bounded: the caller's ctx may
// have ended).
func (l *Lease) describe(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), l.s.timeout)
	defer cancel()
	var holder string
	var until time.Time
	var left float64
	err := l.s.pool.QueryRow(ctx, `SELECT holder, expires_at, extract(epoch FROM expires_at - now())::float8
		FROM tokentray_leases WHERE name = $1`, name).Scan(&holder, &until, &left)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "held by no one now"
	case err != nil:
		return "held by an instance this one could not ask about (" + l.s.explain("read", err).Error() + ")"
	case left <= 0:
		return fmt.Sprintf("held by %s until %s by the server's clock (ran out %s ago)", holder, until.UTC().Format("15:04:05.000 UTC"), seconds(-left))
	default:
		return fmt.Sprintf("held by %s until %s by the server's clock (%s from now)", holder, until.UTC().Format("15:04:05.000 UTC"), seconds(left))
	}
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

// extend renews name's lease to a full TTL if it is still this holder's
// and has not run out, and returns what is then left of it by the
// server's clock; ok is false when it is not this holder's.
func (l *Lease) extend(ctx context.Context, name string) (left time.Duration, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	var secs float64
	err = l.s.pool.QueryRow(ctx, `UPDATE tokentray_leases SET expires_at = now() + make_interval(secs => $3)
		WHERE name = $1 AND holder = $2 AND expires_at > now()
		RETURNING extract(epoch FROM expires_at - now())::float8`, name, l.holder, l.ttl.Seconds()).Scan(&secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, l.s.explain("write", err)
	}
	return seconds(secs), true, nil
}

// Intend renews this process's lease on name and records its intent to
// present the refresh token of generation gen, in one round trip, if the
// lease is still this process's; then it checks that the lease has more
// than need left by the server's clock, less the time the answer took to
// come back (auth.Lease). Without the lease it records nothing and returns
// an error wrapping auth.ErrLeaseLost that says who holds it now.
func (l *Lease) Intend(ctx context.Context, name string, gen uint64, need time.Duration) error {
	if l.ttl <= need {
		// No renewal can help: the TTL is below what a request may take.
		return fmt.Errorf("%w: the lease on %s lives %s, no longer than a token request may take (%s): the lease's TTL must be longer", auth.ErrLeaseLost, name, l.ttl, need)
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	var secs float64
	err := l.s.pool.QueryRow(cctx, `UPDATE tokentray_leases SET expires_at = now() + make_interval(secs => $3),
			intent_holder = $2, intent_generation = $4, intent_at = now()
		WHERE name = $1 AND holder = $2 AND expires_at > now()
		RETURNING extract(epoch FROM expires_at - now())::float8`, name, l.holder, l.ttl.Seconds(), int64(gen)).Scan(&secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s is %s, not by %s", auth.ErrLeaseLost, name, l.describe(name), l.holder)
	}
	if err != nil {
		return fmt.Errorf("record the refresh intent on %s: %w", name, l.s.explain("write", err))
	}
	if left := seconds(secs) - time.Since(start); left <= need {
		// The answer took so long that too little is left: this holder
		// presents nothing, so its intent goes again (auth.Lease: an
		// Intend refused records nothing).
		if err := l.Settle(ctx, name); err != nil {
			l.log.Warn("the refresh intent was not cleared: the next instance waits out the rescue window first", "connection", name, "err", err)
		}
		return fmt.Errorf("%w: the lease on %s has %s left, less than the request may take (%s)", auth.ErrLeaseLost, name, left.Round(time.Millisecond), need)
	}
	return nil
}

// Settle clears this process's intent on name; another holder's stays.
func (l *Lease) Settle(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	_, err := l.s.pool.Exec(ctx, `UPDATE tokentray_leases SET intent_holder = NULL, intent_generation = NULL, intent_at = NULL
		WHERE name = $1 AND intent_holder = $2`, name, l.holder)
	if err != nil {
		return fmt.Errorf("clear the refresh intent on %s: %w", name, l.s.explain("write", err))
	}
	return nil
}

// Intent returns the intent recorded on name, with its age by the
// server's clock; nil when there is none.
func (l *Lease) Intent(ctx context.Context, name string) (*auth.Intent, error) {
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	var (
		in  auth.Intent
		gen int64
		age float64
	)
	err := l.s.pool.QueryRow(ctx, `SELECT intent_holder, intent_generation, intent_at, extract(epoch FROM now() - intent_at)::float8
		FROM tokentray_leases WHERE name = $1 AND intent_holder IS NOT NULL`, name).Scan(&in.Holder, &gen, &in.At, &age)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the refresh intent on %s: %w", name, l.s.explain("read", err))
	}
	in.Instance = auth.InstanceOf(in.Holder)
	in.Generation = uint64(gen)
	in.Age = seconds(age)
	in.Mine = in.Holder == l.holder
	return &in, nil
}

// renew renews name's lease every renewEvery until the returned func is
// called (which waits for it to stop) or the lease is found lost.
func (l *Lease) renew(name string) (stop func()) {
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
			_, ok, err := l.extend(ctx, name)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				l.log.Warn("the lease on the connection was not renewed; trying again", "connection", name, "err", err)
			case !ok:
				l.log.Error("the lease on the connection ran out before it was renewed (this process paused, or the database was out of reach): another instance may hold it now", "connection", name, "holder", l.holder)
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// release ends name's lease if it is still this holder's, and tells the
// waiters: it deletes the row, or ends the lease and keeps the row while
// an intent is left in it (the next holder must see it). A release that
// fails leaves the lease to run out by itself within the TTL.
func (l *Lease) release(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.s.timeout)
	defer cancel()
	_, err := l.s.pool.Exec(ctx, `WITH deleted AS (
			DELETE FROM tokentray_leases WHERE name = $1 AND holder = $2 AND intent_holder IS NULL RETURNING name),
		ended AS (
			UPDATE tokentray_leases SET expires_at = now() WHERE name = $1 AND holder = $2 AND intent_holder IS NOT NULL RETURNING name)
		SELECT pg_notify('`+releasedChannel+`', name) FROM (SELECT name FROM deleted UNION ALL SELECT name FROM ended) AS released`, name, l.holder)
	if err != nil {
		l.log.Warn("the lease on the connection was not released; it runs out by itself", "connection", name, "ttl", l.ttl, "err", l.s.explain("write", err))
	}
}

// listener is the LISTEN on releasedChannel, on a connection of its own,
// while someone waits.
type listener struct {
	cancel context.CancelFunc
	// ready is closed once the first LISTEN is in place, or failed (the
	// waiters then poll).
	ready chan struct{}
}

// wait registers a waiter for name's release: wake gets a value at each
// release of name (or whenever the listener had to start again); ready is
// closed once the LISTEN is in place or has failed.
func (l *Lease) wait(name string) (wake chan struct{}, ready <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	wake = make(chan struct{}, 1)
	if l.waiters[name] == nil {
		l.waiters[name] = map[chan struct{}]struct{}{}
	}
	l.waiters[name][wake] = struct{}{}
	l.nwait++
	if l.listen == nil {
		ctx, cancel := context.WithCancel(context.Background())
		l.listen = &listener{cancel: cancel, ready: make(chan struct{})}
		go l.run(ctx, l.listen)
	}
	return wake, l.listen.ready
}

// unwait removes a waiter; the last one stops the listener.
func (l *Lease) unwait(name string, wake chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.waiters[name], wake)
	if len(l.waiters[name]) == 0 {
		delete(l.waiters, name)
	}
	l.nwait--
	if l.nwait == 0 && l.listen != nil {
		l.listen.cancel()
		l.listen = nil
	}
}

// notify wakes name's waiters, or every waiter when name is "".
func (l *Lease) notify(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, ws := range l.waiters {
		if name != "" && n != name {
			continue
		}
		for w := range ws {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
}

// run listens until ctx ends, on a connection of its own (a pooled one
// would be pinned for as long), connecting again after a failure; the
// waiters poll meanwhile.
func (l *Lease) run(ctx context.Context, ln *listener) {
	readyOnce := sync.OnceFunc(func() { close(ln.ready) })
	defer readyOnce()
	for again := false; ctx.Err() == nil; again = true {
		err := l.listenOnce(ctx, func() {
			readyOnce()
			if again {
				l.notify("") // a release may have come while not listening
			}
		})
		if ctx.Err() != nil {
			return
		}
		readyOnce()
		l.log.Warn("not told of released leases; looking for them every poll instead", "poll", l.poll, "err", err)
		t := time.NewTimer(l.poll)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func (l *Lease) listenOnce(ctx context.Context, ready func()) error {
	return l.s.listen(ctx, releasedChannel, nil, ready, l.notify)
}
