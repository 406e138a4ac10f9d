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
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// hang bounds every wait of these tests: a generous limit for a stuck
// test, never a measure of speed.
const hang = 60 * time.Second

// instance opens a store on conn as the named instance, and its lease.
func instance(t testing.TB, conn, name string, o LeaseOptions) (*Store, *Lease) {
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

// Intend records an intent only while the lease is held, and only when
// the lease has more left than the request may take.
func TestIntendChecksTheLeaseAndWhatIsLeftOfIt(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	_, a := instance(t, conn, "moby", LeaseOptions{TTL: 30 * time.Second})
	if err := a.Intend(ctx, "p", 1, time.Second); !errors.Is(err, auth.ErrLeaseLost) || !strings.Contains(err.Error(), "no one") {
		t.Fatalf("Intend before any Lock: %v; want %v saying no one holds it", err, auth.ErrLeaseLost)
	}
	unlock, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Intend(ctx, "p", 1, 30*time.Second); !errors.Is(err, auth.ErrLeaseLost) || !strings.Contains(err.Error(), "TTL must be longer") {
		t.Fatalf("Intend needing the whole TTL: %v; want %v", err, auth.ErrLeaseLost)
	}
	if in, err := a.Intent(ctx, "p"); err != nil || in != nil {
		t.Fatalf("an Intend refused recorded %+v, %v", in, err)
	}
	if err := a.Intend(ctx, "p", 1, 20*time.Second); err != nil {
		t.Fatalf("Intend while held, 20 s of 30 needed: %v", err)
	}
	unlock()
	if err := a.Intend(ctx, "p", 1, time.Second); !errors.Is(err, auth.ErrLeaseLost) {
		t.Fatalf("Intend after the unlock: %v; want %v", err, auth.ErrLeaseLost)
	}
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

// An intent is the holder's, outlives its lease (an unlock ends the lease
// and keeps the row), and is what the next holder sees, with its age by
// the server's clock; the next holder's intent replaces it, and Settle
// clears only the settling holder's own.
func TestARefreshIntentOutlivesItsLeaseUntilSettled(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	_, a := instance(t, conn, "moby-1", LeaseOptions{})
	_, b := instance(t, conn, "moby-2", LeaseOptions{Poll: time.Hour})
	unlockA, err := a.Lock(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Intend(ctx, "p", 7, time.Second); err != nil {
		t.Fatal(err)
	}
	if in, err := a.Intent(ctx, "p"); err != nil || in == nil || !in.Mine || in.Generation != 7 {
		t.Fatalf("a's own intent: %+v, %v", in, err)
	}
	unlockA() // dies with its answer, say: the intent stays
	c, cancel := context.WithTimeout(ctx, hang)
	defer cancel()
	unlockB, err := b.Lock(c, "p") // at once: the unlock ended the lease
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, conn, `UPDATE tokentray_leases SET intent_at = now() - interval '90 seconds'`)
	in, err := b.Intent(ctx, "p")
	if err != nil || in == nil || in.Mine || in.Instance != "moby-1" || in.Holder != a.Holder() || in.Generation != 7 ||
		in.Age < 89*time.Second || in.Age > 2*time.Minute {
		t.Fatalf("the intent b sees: %+v, %v", in, err)
	}
	if err := a.Settle(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := b.Intend(ctx, "p", 8, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.Settle(ctx, "p"); err != nil { // a's late settle leaves b's
		t.Fatal(err)
	}
	if in, err := b.Intent(ctx, "p"); err != nil || in == nil || !in.Mine || in.Generation != 8 {
		t.Fatalf("b's intent after a's late Settle: %+v, %v", in, err)
	}
	if err := b.Settle(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if in, err := b.Intent(ctx, "p"); err != nil || in != nil {
		t.Fatalf("after b's Settle: %+v, %v", in, err)
	}
	unlockB()
	if got := query(t, conn, `SELECT count(*)::text FROM tokentray_leases`); got[0] != "0" {
		t.Fatalf("%s rows left once the lease is released with no intent", got[0])
	}
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

// sharedGrant is a grant kept in the test's database: the client secret,
// signed-in tokens with refresh token rt-0 at generation 1, and the
// single-use provider.
func sharedGrant(t testing.TB, conn string) (*rotating, *httptest.Server, *auth.Connection) {
	t.Helper()
	p := &rotating{live: "rt-0", seen: map[string]bool{}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	ac := &auth.Connection{Name: "procore", Grant: auth.GrantAuthorizationCode, ClientID: "client-1", RefreshAt: 0.8,
		AuthMethod: auth.AuthMethodPost, Endpoints: auth.Endpoints{AuthURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token"}}
	s, _ := instance(t, conn, "setup", LeaseOptions{})
	if err := s.SetClientSecret(ctx, ac.Name, "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTokens(ctx, ac.Name, &auth.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", TokenType: "bearer",
		ObtainedAt: time.Now().Add(-50 * time.Minute), Lifetime: time.Hour, Generation: 1}, 0); err != nil {
		t.Fatal(err)
	}
	return p, srv, ac
}

// keeperOf is instance name's keeper of ac, over the database, with clock.
func keeperOf(t testing.TB, conn, name string, ac *auth.Connection, srv *httptest.Server, clock auth.Clock) (*auth.Keeper, *Lease) {
	t.Helper()
	s, l := instance(t, conn, name, LeaseOptions{})
	c := *ac
	k := auth.NewKeeper(&c, auth.KeeperOptions{Store: s, Locker: l, Clock: clock,
		HTTPClient: srv.Client(), RequestTimeout: 10 * time.Second, LockTimeout: hang})
	if err := k.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return k, l
}

// moby1Presents plays an instance that took the lease, recorded its
// intent, presented rt-0 when present is true, and died before it
// committed; its intent is backdated by age.
func moby1Presents(t *testing.T, conn string, srv *httptest.Server, present bool, age time.Duration) {
	t.Helper()
	_, l := instance(t, conn, "moby-1", LeaseOptions{})
	unlock, err := l.Lock(ctx, "procore")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Intend(ctx, "procore", 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if present {
		resp, err := srv.Client().PostForm(srv.URL+"/token", map[string][]string{"grant_type": {"refresh_token"}, "refresh_token": {"rt-0"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	unlock() // as its lease running out would leave it
	pgtest.Exec(t, conn, fmt.Sprintf(`UPDATE tokentray_leases SET intent_at = intent_at - interval '%d seconds'`, int(age.Seconds())))
}

// oneRefreshThenAt1 checks that the provider was asked once, with no
// refresh token presented again, and that k hands out that answer's token.
func oneRefreshThenAt1(t *testing.T, p *rotating, k *auth.Keeper) {
	t.Helper()
	if tok, err := k.Token(ctx, time.Minute); err != nil || tok.AccessToken != "at-1" {
		t.Fatalf("moby-2's token: %v, %v", tok, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seq != 1 || len(p.reused) != 0 {
		t.Fatalf("%d token requests, reused %v; want one (moby-2's, or moby-1's it adopted), none again", p.seq, p.reused)
	}
}

// The failure semantics of a holder that dies mid-refresh (auth.Lease), on
// the real engine: dead before presenting, the next holder refreshes with
// the same refresh token; dead with the provider's answer, the next one
// gets one needs_reauth that names the instance, and presents nothing
// again; dead with its commit still to come within the rescue window, the
// next one waits, adopts the commit, and presents nothing.
func TestAHolderThatDiesMidRefresh(t *testing.T) {
	t.Run("before presenting", func(t *testing.T) {
		conn, _ := pgtest.Schema(t)
		p, srv, ac := sharedGrant(t, conn)
		moby1Presents(t, conn, srv, false, time.Minute)
		k, l := keeperOf(t, conn, "moby-2", ac, srv, auth.SystemClock{})
		if err := k.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		oneRefreshThenAt1(t, p, k)
		if in, err := l.Intent(ctx, "procore"); err != nil || in != nil {
			t.Fatalf("intent after the refresh: %+v, %v", in, err)
		}
	})
	t.Run("with the answer", func(t *testing.T) {
		conn, _ := pgtest.Schema(t)
		p, srv, ac := sharedGrant(t, conn)
		moby1Presents(t, conn, srv, true, time.Minute)
		k, _ := keeperOf(t, conn, "moby-2", ac, srv, auth.SystemClock{})
		err := k.Refresh(ctx)
		st := k.Status()
		if !errors.Is(err, auth.ErrNeedsSignIn) || st.State != auth.StateNeedsReauth || st.Next == nil || !strings.Contains(st.Next.Cause, "lost with instance moby-1 at ") {
			t.Fatalf("refresh after moby-1 died with the answer: %v; state %s, next %+v", err, st.State, st.Next)
		}
		_ = k.Refresh(ctx)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.seq != 2 {
			t.Fatalf("%d token requests, want 2 (moby-1's, then moby-2's once)", p.seq)
		}
	})
	t.Run("commit within the window", func(t *testing.T) {
		conn, _ := pgtest.Schema(t)
		p, srv, ac := sharedGrant(t, conn)
		moby1Presents(t, conn, srv, true, 0)
		clock := fakeclock.New(time.Now())
		k, _ := keeperOf(t, conn, "moby-2", ac, srv, clock)
		waiters := clock.Waiters()
		done := make(chan error, 1)
		go func() { done <- k.Refresh(ctx) }()
		if !clock.BlockUntil(waiters+1, hang) {
			t.Fatal("moby-2 did not wait for moby-1's intent")
		}
		// moby-1's commit, late but within the window.
		s, _ := instance(t, conn, "moby-1", LeaseOptions{})
		if err := s.SaveTokens(ctx, "procore", &auth.TokenSet{AccessToken: "at-1", RefreshToken: "rt-1", TokenType: "bearer",
			ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 2}, 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		oneRefreshThenAt1(t, p, k)
	})
}
