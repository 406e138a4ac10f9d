package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// hang bounds every wait of these tests: a generous limit for a stuck
// test, never a measure of speed.
const hang = 60 * time.Second

// instance opens a store on conn as the named instance, and its lease.
func instance(t *testing.T, conn, name string, o LeaseOptions) (*Store, *Lease) {
	t.Helper()
	s, err := Open(ctx, Options{URL: conn, Key: key(7), Instance: name})
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
	if _, err := a.Left(ctx, "p"); !errors.Is(err, auth.ErrLeaseLost) || !strings.Contains(err.Error(), b.Holder()) {
		t.Fatalf("a's Left after its release: %v; want %v naming b", err, auth.ErrLeaseLost)
	}
	// Other connections are free meanwhile.
	unlockQ, err := a.Lock(c, "q")
	if err != nil {
		t.Fatal(err)
	}
	unlockQ()
}

func TestLeftReportsAboutTheTTLWhileHeld(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	_, a := instance(t, conn, "moby", LeaseOptions{TTL: 30 * time.Second})
	if _, err := a.Left(ctx, "p"); !errors.Is(err, auth.ErrLeaseLost) || !strings.Contains(err.Error(), "no one") {
		t.Fatalf("Left before any Lock: %v; want %v saying no one holds it", err, auth.ErrLeaseLost)
	}
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	left, err := a.Left(ctx, "p")
	if err != nil || left <= 20*time.Second || left > 30*time.Second {
		t.Fatalf("Left while held: %s, %v; want about 30s", left, err)
	}
	unlock()
	if _, err := a.Left(ctx, "p"); !errors.Is(err, auth.ErrLeaseLost) {
		t.Fatalf("Left after the unlock: %v; want %v", err, auth.ErrLeaseLost)
	}
}

// A holder that pauses (its renewer stops) loses the lease once the
// server's clock passes its expiry: the other instance takes it then, not
// before; the paused one's Left fails, and its unlock leaves the
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
	_, err = a.Left(ctx, "p")
	if !errors.Is(err, auth.ErrLeaseLost) || !strings.Contains(err.Error(), b.Holder()) || !strings.Contains(err.Error(), "server's clock") {
		t.Fatalf("a's Left once b holds it: %v; want %v naming b", err, auth.ErrLeaseLost)
	}
	unlockA()
	if h := holderOf(t, conn, "p"); h != b.Holder() {
		t.Fatalf("after the paused holder's unlock the holder is %q; want b, %q", h, b.Holder())
	}
	if left, err := b.Left(ctx, "p"); err != nil || left <= 0 {
		t.Fatalf("b's lease after a's unlock: %s, %v", left, err)
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
	if left, err := a.Left(ctx, "p"); err != nil || left <= 0 {
		t.Fatalf("a's lease after several TTLs: %s, %v", left, err)
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

func TestOneProcessTakesALeaseOnceAtATime(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	_, a := instance(t, conn, "moby", LeaseOptions{})
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := a.Lock(c, "p"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second Lock of the same process: %v; want it to wait", err)
	}
	unlock()
	c2, cancel2 := context.WithTimeout(ctx, hang)
	defer cancel2()
	unlock, err = a.Lock(c2, "p")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

func TestTablesOfSchemaVersion1GainTheLeases(t *testing.T) {
	s, conn := open(t)
	if err := s.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, conn, `DROP TABLE tokentray_leases`)
	pgtest.Exec(t, conn, `UPDATE tokentray_schema SET version = 1`)
	s2, l := instance(t, conn, "moby", LeaseOptions{})
	if got := query(t, conn, `SELECT version::text FROM tokentray_schema`); got[0] != "2" {
		t.Fatalf("schema version after the migration: %q", got)
	}
	if got, err := s2.LoadTokens(ctx, "p"); err != nil || got.AccessToken != "at-p-cleartext" {
		t.Fatalf("tokens written at version 1: %v, %v", got, err)
	}
	unlock, err := l.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

// rotating is a token endpoint whose refresh tokens are single-use: each
// is accepted once, and a token presented again is counted as a reuse
// (a strict provider would have revoked the grant).
type rotating struct {
	mu       sync.Mutex
	live     string
	seq      int
	seen     map[string]bool
	reused   []string
	inFlight int
	overlaps int
}

func (p *rotating) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	rt := r.PostForm.Get("refresh_token")
	p.mu.Lock()
	p.inFlight++
	if p.inFlight > 1 {
		p.overlaps++
	}
	ok := rt == p.live && !p.seen[rt]
	if rt != "" {
		if p.seen[rt] {
			p.reused = append(p.reused, rt)
		}
		p.seen[rt] = true
	}
	p.seq++
	p.live = fmt.Sprintf("rt-%d", p.seq)
	body := map[string]any{"access_token": fmt.Sprintf("at-%d", p.seq), "token_type": "bearer", "expires_in": 3600, "refresh_token": p.live}
	p.mu.Unlock()
	// A little while on the wire, so that a second request, if any were
	// sent, would overlap this one.
	time.Sleep(20 * time.Millisecond)
	p.mu.Lock()
	p.inFlight--
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}

// Two instances of tokentray, each a keeper under its lease on the same
// database, asked to refresh at once, again and again: one token request
// per rotation, never two at once, and no refresh token presented twice.
func TestTwoInstancesRefreshingOneGrantPresentEachRefreshTokenOnce(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	p := &rotating{live: "rt-0", seen: map[string]bool{}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	ac := &auth.Connection{Name: "procore", Grant: auth.GrantAuthorizationCode, ClientID: "client-1", RefreshAt: 0.8,
		AuthMethod: auth.AuthMethodPost, Endpoints: auth.Endpoints{AuthURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token"}}
	var keepers []*auth.Keeper
	for i, name := range []string{"moby", "moby"} {
		s, l := instance(t, conn, name, LeaseOptions{})
		if i == 0 {
			if err := s.SetClientSecret(ctx, ac.Name, "s3cret"); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveTokens(ctx, ac.Name, &auth.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", TokenType: "bearer",
				ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 1}, 0); err != nil {
				t.Fatal(err)
			}
		}
		conn := *ac
		k := auth.NewKeeper(&conn, auth.KeeperOptions{Store: s, Locker: l, Clock: auth.SystemClock{},
			HTTPClient: srv.Client(), RequestTimeout: 10 * time.Second, LockTimeout: hang})
		if err := k.Load(ctx); err != nil {
			t.Fatal(err)
		}
		keepers = append(keepers, k)
	}
	const rounds = 15
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, len(keepers))
		for i, k := range keepers {
			wg.Go(func() {
				c, cancel := context.WithTimeout(ctx, hang)
				defer cancel()
				errs[i] = k.Refresh(c)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, instance %d: %v", round, i, err)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reused) != 0 || p.overlaps != 0 || p.seq != rounds {
		t.Fatalf("%d token requests for %d rotations, %d at once, refresh tokens presented again: %v", p.seq, rounds, p.overlaps, p.reused)
	}
	for i, k := range keepers {
		tok, err := k.Token(ctx, time.Minute)
		if err != nil || tok.AccessToken != auth.Secret(fmt.Sprintf("at-%d", rounds)) {
			t.Fatalf("instance %d's token after the rounds: %v, %v", i, tok, err)
		}
	}
}
