package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/sharedtest"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// hang bounds every wait of these tests: a generous limit for a stuck
// test, never a measure of speed.
const hang = 60 * time.Second

// instance opens a store on conn as the named instance, and its lease.
func instance(t testing.TB, conn, name string, o LeaseOptions) (*Store, *Lease) {
	t.Helper()
	return instanceWithKey(t, conn, name, key(7), o)
}

// instanceWithKey is instance with the key k.
func instanceWithKey(t testing.TB, conn, name string, k []byte, o LeaseOptions) (*Store, *Lease) {
	t.Helper()
	s, err := Open(ctx, Options{URL: conn, Key: k, Instance: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	l, err := s.NewLease(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, l
}

// lockAsync starts l.Lock(name) and returns where its result comes.
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

// waiting returns once l has a Lock waiting with its LISTEN in place (or
// failed), so that a release from then on must wake it.
func waiting(t *testing.T, l *Lease) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		ln := l.listen
		l.mu.Unlock()
		if ln != nil {
			select {
			case <-ln.ready:
				return
			case <-time.After(hang):
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no Lock came to wait")
}

func holderOf(t *testing.T, conn, name string) string {
	t.Helper()
	got := query(t, conn, `SELECT holder FROM tokentray_leases WHERE name = '`+name+`'`)
	if len(got) != 1 {
		return ""
	}
	return got[0]
}

func TestTwoInstancesOfOneNameNeverHoldALeaseAtOnceAndAReleaseWakesTheWaiter(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	// The poll is an hour: only the release's NOTIFY can wake the waiter
	// within the test's bound.
	_, a := instance(t, conn, "moby", LeaseOptions{Poll: time.Hour})
	_, b := instance(t, conn, "moby", LeaseOptions{Poll: time.Hour})
	if a.Holder() == b.Holder() || !strings.HasPrefix(a.Holder(), "moby/") {
		t.Fatalf("holders %q and %q: want two, both of instance moby", a.Holder(), b.Holder())
	}
	unlockA, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, hang)
	defer cancel()
	gotB := lockAsync(b, c, "p")
	waiting(t, b)
	select {
	case r := <-gotB:
		t.Fatalf("b took the lease while a held it: %v", r.err)
	default:
	}
	if h := holderOf(t, conn, "p"); h != a.Holder() {
		t.Fatalf("holder %q while a holds it; want %q", h, a.Holder())
	}
	unlockA()
	unlockA() // idempotent: deletes nothing of b's
	r := <-gotB
	if r.err != nil {
		t.Fatalf("b, woken by a's release: %v", r.err)
	}
	defer r.unlock()
	if h := holderOf(t, conn, "p"); h != b.Holder() {
		t.Fatalf("holder %q after a released; want b, %q", h, b.Holder())
	}
	if err := a.Intend(ctx, "p", 1, 0); !errors.Is(err, auth.ErrLeaseLost) || !strings.Contains(err.Error(), b.Holder()) {
		t.Fatalf("a's Intend after its release: %v; want %v naming b", err, auth.ErrLeaseLost)
	}
	// Other connections are free meanwhile.
	unlockQ, err := a.Lock(c, "q")
	if err != nil {
		t.Fatal(err)
	}
	unlockQ()
}

// A holder that pauses (its renewer stops) loses the lease once the
// server's clock passes its expiry: the other instance takes it then, not
// before; the paused one's Intend fails, and its unlock leaves the
// successor's row alone.
func TestAPausedHolderLosesTheLeaseByTheServersClock(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	_, a := instance(t, conn, "moby-1", LeaseOptions{TTL: time.Second})
	a.renewEvery = 0 // paused: renews nothing
	_, b := instance(t, conn, "moby-2", LeaseOptions{Poll: 50 * time.Millisecond})
	unlockA, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	aUntil := query(t, conn, `SELECT expires_at::text FROM tokentray_leases WHERE name = 'p'`)[0]

	c, cancel := context.WithTimeout(ctx, hang)
	defer cancel()
	unlockB, err := b.Lock(c, "p")
	if err != nil {
		t.Fatalf("b, after a's lease ran out: %v", err)
	}
	defer unlockB()
	// b took it after a's expiry by the server's clock: its own lease
	// started (expires_at − TTL) no earlier.
	if got := query(t, conn, fmt.Sprintf(`SELECT (expires_at - interval '%d milliseconds' >= '%s'::timestamptz)::text FROM tokentray_leases WHERE name = 'p'`,
		b.TTL().Milliseconds(), aUntil)); len(got) != 1 || got[0] != "true" {
		t.Fatalf("b's lease began before a's ran out (%s): %q", aUntil, got)
	}
	err = a.Intend(ctx, "p", 1, 0)
	if !errors.Is(err, auth.ErrLeaseLost) || !strings.Contains(err.Error(), b.Holder()) || !strings.Contains(err.Error(), "server's clock") {
		t.Fatalf("a's Intend once b holds it: %v; want %v naming b", err, auth.ErrLeaseLost)
	}
	unlockA()
	if h := holderOf(t, conn, "p"); h != b.Holder() {
		t.Fatalf("after the paused holder's unlock the holder is %q; want b, %q", h, b.Holder())
	}
	if err := b.Intend(ctx, "p", 1, 0); err != nil {
		t.Fatalf("b's lease after a's unlock: %v", err)
	}
}

func TestAWaitingLockReturnsWhenItsContextEndsSayingWhoHoldsTheLease(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	_, a := instance(t, conn, "moby-1", LeaseOptions{})
	_, b := instance(t, conn, "moby-2", LeaseOptions{Poll: time.Hour})
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	c, cancel := context.WithCancel(ctx)
	got := lockAsync(b, c, "p")
	waiting(t, b)
	cancel()
	select {
	case r := <-got:
		if !errors.Is(r.err, context.Canceled) || !strings.Contains(r.err.Error(), a.Holder()) || !strings.Contains(r.err.Error(), "by the server's clock") {
			t.Fatalf("a cancelled wait: %v; want context.Canceled, naming a and its expiry", r.err)
		}
	case <-time.After(hang):
		t.Fatal("a cancelled Lock did not return")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nwait != 0 || b.listen != nil {
		t.Fatalf("after the wait: %d waiters, listener %v; want none", b.nwait, b.listen)
	}
}

// The renewer keeps a held lease alive across several TTLs: another
// instance waiting all along never gets it.
func TestTheRenewerKeepsALeaseAcrossSeveralTTLs(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	_, a := instance(t, conn, "moby-1", LeaseOptions{TTL: 3 * time.Second})
	// Renewed often, so that a busy machine's stall of less than 2.8 s
	// loses nothing: the test is of renewal, not of speed.
	a.renewEvery = 200 * time.Millisecond
	_, b := instance(t, conn, "moby-2", LeaseOptions{Poll: 100 * time.Millisecond})
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	first := query(t, conn, `SELECT expires_at::text FROM tokentray_leases WHERE name = 'p'`)[0]
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	got := lockAsync(b, c, "p")
	// Until the server's clock is two TTLs past the first expiry (three
	// since the Lock).
	deadline := time.Now().Add(hang)
	for {
		past := query(t, conn, `SELECT (now() > '`+first+`'::timestamptz + interval '6 seconds')::text`)
		if past[0] == "true" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's clock did not move")
		}
		select {
		case r := <-got:
			t.Fatalf("b took a renewed lease: %v", r.err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if h := holderOf(t, conn, "p"); h != a.Holder() {
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

func TestTablesOfOlderSchemaVersionsAreMigrated(t *testing.T) {
	for _, from := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(from), func(t *testing.T) {
			s, conn := open(t)
			if err := s.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
				t.Fatal(err)
			}
			// Back to the tables of version from: the items alone, then
			// each migration up to it.
			pgtest.Exec(t, conn, `DROP TABLE tokentray_leases, tokentray_alerts, tokentray_instances`)
			for v := 1; v < from; v++ {
				pgtest.Exec(t, conn, migrations[v])
			}
			pgtest.Exec(t, conn, fmt.Sprintf(`UPDATE tokentray_schema SET version = %d`, from))
			s2, l := instance(t, conn, "moby", LeaseOptions{})
			if got := query(t, conn, `SELECT version::text FROM tokentray_schema`); got[0] != fmt.Sprint(SchemaVersion) {
				t.Fatalf("schema version after the migration: %q", got)
			}
			if got, err := s2.LoadTokens(ctx, "p"); err != nil || got.AccessToken != "at-p-cleartext" {
				t.Fatalf("tokens written at version %d: %v, %v", from, got, err)
			}
			unlock, err := l.Lock(ctx, "p")
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			if err := l.Intend(ctx, "p", 1, time.Second); err != nil {
				t.Fatal(err)
			}
			if won, _, err := s2.ClaimAlert(ctx, "p", "needs_reauth", 1); err != nil || !won {
				t.Fatalf("an alert claimed after the migration: %v, %v", won, err)
			}
		})
	}
}

// A release with no intent left deletes the lease's row; one with an
// intent left keeps the row, with the lease ended (sharedtest checks what
// the next holder sees).
func TestAReleaseLeavesARowOnlyForAnIntent(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	_, a := instance(t, conn, "moby-1", LeaseOptions{})
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Intend(ctx, "p", 7, time.Second); err != nil {
		t.Fatal(err)
	}
	unlock()
	if got := query(t, conn, `SELECT (expires_at <= now())::text || ' ' || intent_holder FROM tokentray_leases`); len(got) != 1 || got[0] != "true "+a.Holder() {
		t.Fatalf("rows after a release with an intent left: %q; want one, its lease ended, its intent a's", got)
	}
	unlock, err = a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Settle(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	unlock()
	if got := query(t, conn, `SELECT count(*)::text FROM tokentray_leases`); got[0] != "0" {
		t.Fatalf("%s rows left once the lease is released with no intent", got[0])
	}
}

// engine is a schema of the test server, for sharedtest.
type engine struct{ conn string }

func (e engine) Open(t testing.TB, name string, o sharedtest.LeaseOptions) (auth.Store, sharedtest.Lease) {
	k := o.Key
	if k == nil {
		k = key(7)
	}
	return instanceWithKey(t, e.conn, name, k, LeaseOptions{TTL: o.TTL, Poll: o.Poll})
}

func (e engine) Backdate(t testing.TB, name string, age time.Duration) {
	pgtest.Exec(t, e.conn, fmt.Sprintf(`UPDATE tokentray_leases SET intent_at = intent_at - interval '%d milliseconds' WHERE name = '%s'`, age.Milliseconds(), name))
}

func TestThePostgreSQLStoreKeepsTheSharedStoreContract(t *testing.T) {
	sharedtest.Run(t, func(t *testing.T) sharedtest.Engine {
		conn, _ := pgtest.Schema(t)
		return engine{conn}
	})
}
