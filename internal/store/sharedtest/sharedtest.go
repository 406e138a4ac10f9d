// Package sharedtest is the test every store shared by several machines
// passes (the PostgreSQL and etcd stores): its Lease as auth.Lease states
// it, and keepers of one grant on several instances, against a provider
// whose refresh tokens are single-use. A store's own tests call Run with a
// function that gives each test an empty engine of its own; what only one
// engine can show (its rows, its clock) stays in that store's tests.
package sharedtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// Lease is a shared store's Locker and auth.Lease.
type Lease interface {
	auth.Locker
	auth.Lease
	Holder() string
	TTL() time.Duration
}

// LeaseOptions are the lease's settings a test chooses (zero: the
// store's defaults).
type LeaseOptions struct {
	TTL, Poll time.Duration
	// Key is the instance's key; nil: the one every other instance has.
	Key []byte
}

// Engine is one empty database or cluster, for one test.
type Engine interface {
	// Open opens the store on it as the named instance, and its lease;
	// both are closed at the end of t.
	Open(t testing.TB, instance string, o LeaseOptions) (auth.Store, Lease)
	// Backdate makes the refresh intent on name older by age, as the
	// engine's clock tells it.
	Backdate(t testing.TB, name string, age time.Duration)
}

// hang bounds every wait of these tests: a generous limit for a stuck
// test, never a measure of speed.
const hang = 60 * time.Second

var ctx = context.Background()

// Run checks the engines that newEngine returns (empty, and new for each
// call).
func Run(t *testing.T, newEngine func(t *testing.T) Engine) {
	t.Run("OneProcessTakesALeaseOnceAtATime", func(t *testing.T) { onceAtATime(t, newEngine(t)) })
	t.Run("IntendChecksTheLeaseAndWhatIsLeftOfIt", func(t *testing.T) { intendChecks(t, newEngine(t)) })
	t.Run("ARefreshIntentOutlivesItsLeaseUntilSettled", func(t *testing.T) { intentOutlives(t, newEngine(t)) })
	t.Run("TwoInstancesRefreshingOneGrantPresentEachRefreshTokenOnce", func(t *testing.T) { twoInstances(t, newEngine(t)) })
	t.Run("AHolderThatDiesMidRefresh", func(t *testing.T) { holderDies(t, newEngine) })
	t.Run("OneInstanceClaimsEachAlert", func(t *testing.T) { claimsOnce(t, newEngine(t)) })
	t.Run("PresenceSaysWhoIsAtTheStore", func(t *testing.T) { presence(t, newEngine(t)) })
	t.Run("AWatchHearsEveryWrite", func(t *testing.T) { watchHears(t, newEngine(t)) })
	t.Run("AnInstanceHandsOutTheTokensAnotherCommittedOnceTold", func(t *testing.T) { toldOfACommit(t, newEngine(t)) })
	t.Run("AnInstanceWithAnotherKeyIsToldAndOverwritesNothing", func(t *testing.T) { anotherKey(t, newEngine(t)) })
}

func onceAtATime(t *testing.T, e Engine) {
	_, a := e.Open(t, "moby", LeaseOptions{})
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

// Intend records an intent only while the lease is held, and only when
// the lease has more left than the request may take.
func intendChecks(t *testing.T, e Engine) {
	_, a := e.Open(t, "moby", LeaseOptions{TTL: 30 * time.Second})
	if err := a.Intend(ctx, "p", 1, time.Second); !errors.Is(err, auth.ErrLeaseLost) {
		t.Fatalf("Intend before any Lock: %v; want %v", err, auth.ErrLeaseLost)
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

// An intent is the holder's, outlives its lease, and is what the next
// holder sees, with its age by the engine's clock; the next holder's
// intent replaces it, and Settle clears only the settling holder's own.
func intentOutlives(t *testing.T, e Engine) {
	_, a := e.Open(t, "moby-1", LeaseOptions{})
	_, b := e.Open(t, "moby-2", LeaseOptions{Poll: time.Hour})
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
	e.Backdate(t, "p", 90*time.Second)
	in, err := b.Intent(ctx, "p")
	if err != nil || in == nil || in.Mine || in.Instance != "moby-1" || in.Holder != a.Holder() || in.Generation != 7 ||
		in.Age < 88*time.Second || in.Age > 2*time.Minute {
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
	if in, err := b.Intent(ctx, "p"); err != nil || in == nil || !in.Mine || in.Generation != 8 || in.Age > 10*time.Second {
		t.Fatalf("b's intent after a's late Settle: %+v, %v", in, err)
	}
	if err := b.Settle(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if in, err := b.Intent(ctx, "p"); err != nil || in != nil {
		t.Fatalf("after b's Settle: %+v, %v", in, err)
	}
	unlockB()
}

// Rotating is a token endpoint whose refresh tokens are single-use: each
// is accepted once, and a token presented again is counted as a reuse
// (a strict provider would have revoked the grant).
type Rotating struct {
	mu       sync.Mutex
	live     string
	seq      int
	seen     map[string]bool
	reused   []string
	inFlight int
	overlaps int
}

// NewRotating is a provider whose live refresh token is rt-0.
func NewRotating() *Rotating { return &Rotating{live: "rt-0", seen: map[string]bool{}} }

// Requests is how many token requests came, and the refresh tokens
// presented more than once.
func (p *Rotating) Requests() (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq, append([]string(nil), p.reused...)
}

// SetLive makes rt the live refresh token (a benchmark's reference
// request rotated it, and that rotation does not count).
func (p *Rotating) SetLive(rt string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live = rt
}

func (p *Rotating) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

// SharedGrant is a grant kept in e: the client secret, signed-in tokens
// with refresh token rt-0 at generation 1 obtained 50 minutes ago, and the
// single-use provider.
func SharedGrant(t testing.TB, e Engine) (*Rotating, *httptest.Server, *auth.Connection) {
	t.Helper()
	p := NewRotating()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	ac := &auth.Connection{Name: "procore", Grant: auth.GrantAuthorizationCode, ClientID: "client-1", RefreshAt: 0.8,
		AuthMethod: auth.AuthMethodPost, Endpoints: auth.Endpoints{AuthURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token"}}
	s, _ := e.Open(t, "setup", LeaseOptions{})
	if err := s.SetClientSecret(ctx, ac.Name, "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTokens(ctx, ac.Name, &auth.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", TokenType: "bearer",
		ObtainedAt: time.Now().Add(-50 * time.Minute), Lifetime: time.Hour, Generation: 1}, 0); err != nil {
		t.Fatal(err)
	}
	return p, srv, ac
}

// KeeperOf is instance name's keeper of ac, over e, with clock.
func KeeperOf(t testing.TB, e Engine, name string, ac *auth.Connection, srv *httptest.Server, clock auth.Clock) (*auth.Keeper, Lease) {
	t.Helper()
	s, l := e.Open(t, name, LeaseOptions{})
	return keeperOn(t, s, l, ac, srv, clock), l
}

// keeperOn is a keeper of ac over s and l, loaded.
func keeperOn(t testing.TB, s auth.Store, l Lease, ac *auth.Connection, srv *httptest.Server, clock auth.Clock) *auth.Keeper {
	t.Helper()
	c := *ac
	k := auth.NewKeeper(&c, auth.KeeperOptions{Store: s, Locker: l, Clock: clock,
		HTTPClient: srv.Client(), RequestTimeout: 10 * time.Second, LockTimeout: hang})
	if err := k.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return k
}

// Two instances of tokentray (of one host name), each a keeper under its
// lease on the same engine, asked to refresh at once, again and again: one
// token request per rotation, never two at once, and no refresh token
// presented twice.
func twoInstances(t *testing.T, e Engine) {
	p, srv, ac := SharedGrant(t, e)
	var keepers []*auth.Keeper
	for range 2 {
		k, _ := KeeperOf(t, e, "moby", ac, srv, auth.SystemClock{})
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

// moby1Presents plays an instance that took the lease, recorded its
// intent, presented rt-0 when present is true, and died before it
// committed; its intent is backdated by age.
func moby1Presents(t *testing.T, e Engine, srv *httptest.Server, present bool, age time.Duration) {
	t.Helper()
	_, l := e.Open(t, "moby-1", LeaseOptions{})
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
	if age > 0 {
		e.Backdate(t, "procore", age)
	}
}

// oneRefreshThenAt1 checks that the provider was asked once, with no
// refresh token presented again, and that k hands out that answer's token.
func oneRefreshThenAt1(t *testing.T, p *Rotating, k *auth.Keeper) {
	t.Helper()
	if tok, err := k.Token(ctx, time.Minute); err != nil || tok.AccessToken != "at-1" {
		t.Fatalf("moby-2's token: %v, %v", tok, err)
	}
	if n, reused := p.Requests(); n != 1 || len(reused) != 0 {
		t.Fatalf("%d token requests, reused %v; want one (moby-2's, or moby-1's it adopted), none again", n, reused)
	}
}

// The failure semantics of a holder that dies mid-refresh (auth.Lease), on
// the real engine: dead before presenting, the next holder refreshes with
// the same refresh token; dead with the provider's answer, the next one
// gets one needs_reauth that names the instance, and presents nothing
// again; dead with its commit still to come within the rescue window, the
// next one waits, adopts the commit, and presents nothing.
func holderDies(t *testing.T, newEngine func(t *testing.T) Engine) {
	t.Run("before presenting", func(t *testing.T) {
		e := newEngine(t)
		p, srv, ac := SharedGrant(t, e)
		moby1Presents(t, e, srv, false, time.Minute)
		k, l := KeeperOf(t, e, "moby-2", ac, srv, auth.SystemClock{})
		if err := k.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		oneRefreshThenAt1(t, p, k)
		if in, err := l.Intent(ctx, "procore"); err != nil || in != nil {
			t.Fatalf("intent after the refresh: %+v, %v", in, err)
		}
	})
	t.Run("with the answer", func(t *testing.T) {
		e := newEngine(t)
		p, srv, ac := SharedGrant(t, e)
		moby1Presents(t, e, srv, true, time.Minute)
		k, _ := KeeperOf(t, e, "moby-2", ac, srv, auth.SystemClock{})
		err := k.Refresh(ctx)
		st := k.Status()
		if !errors.Is(err, auth.ErrNeedsSignIn) || st.State != auth.StateNeedsReauth || st.Next == nil || !strings.Contains(st.Next.Cause, "lost with instance moby-1 at ") {
			t.Fatalf("refresh after moby-1 died with the answer: %v; state %s, next %+v", err, st.State, st.Next)
		}
		_ = k.Refresh(ctx)
		if n, _ := p.Requests(); n != 2 {
			t.Fatalf("%d token requests, want 2 (moby-1's, then moby-2's once)", n)
		}
	})
	t.Run("commit within the window", func(t *testing.T) {
		e := newEngine(t)
		p, srv, ac := SharedGrant(t, e)
		moby1Presents(t, e, srv, true, 0)
		clock := fakeclock.New(time.Now())
		k, _ := KeeperOf(t, e, "moby-2", ac, srv, clock)
		waiters := clock.Waiters()
		done := make(chan error, 1)
		go func() { done <- k.Refresh(ctx) }()
		if !clock.BlockUntil(waiters+1, hang) {
			t.Fatal("moby-2 did not wait for moby-1's intent")
		}
		// moby-1's commit, late but within the window.
		s, _ := e.Open(t, "moby-1", LeaseOptions{})
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

// Three instances see the same alert at once (the connection's
// needs_reauth, adopted by each): exactly one claims it and runs
// on_alert, the others learn which one did. A later generation is a new
// occurrence; an older one, or another kind, changes nothing of it.
func claimsOnce(t *testing.T, e Engine) {
	names := []string{"moby-1", "moby-2", "moby-3"}
	claimers := make([]alerts.Claimer, len(names))
	for i, n := range names {
		s, _ := e.Open(t, n, LeaseOptions{})
		claimers[i] = s.(alerts.Claimer)
	}
	for _, gen := range []uint64{100, 200} {
		var mu sync.Mutex
		var winners, bys []string
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, c := range claimers {
			wg.Go(func() {
				<-start
				won, by, err := c.ClaimAlert(ctx, "p", "needs_reauth", gen)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if won {
					winners = append(winners, names[i])
				} else {
					bys = append(bys, by)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("generation %d: claimed by %v; want exactly one instance", gen, winners)
		}
		for _, by := range bys {
			if by != winners[0] {
				t.Fatalf("generation %d: a loser was told %q claimed it; want %q", gen, by, winners[0])
			}
		}
	}
	if won, by, err := claimers[0].ClaimAlert(ctx, "p", "needs_reauth", 150); err != nil || won || by == "" {
		t.Fatalf("an older generation: won %v by %q, %v; want lost", won, by, err)
	}
	if won, _, err := claimers[1].ClaimAlert(ctx, "p", "recovered", 200); err != nil || !won {
		t.Fatalf("another kind: %v, %v", won, err)
	}
	if won, _, err := claimers[2].ClaimAlert(ctx, "q", "needs_reauth", 100); err != nil || !won {
		t.Fatalf("another connection: %v, %v", won, err)
	}
}

// presenceStore is a shared store as Presence needs it.
type presenceStore interface {
	auth.Store
	auth.StoreWatcher
	auth.PresenceTeller
}

// The instances at the store are those whose watch runs; one that stops is
// gone from the list as soon as the engine knows (PostgreSQL: its
// connection closed; etcd: its lease revoked). The lease holder and an
// unsettled intent on the generation stored now are told by connection.
func presence(t *testing.T, e Engine) {
	sa, la := e.Open(t, "moby-1", LeaseOptions{})
	sb, _ := e.Open(t, "moby-2", LeaseOptions{})
	a, b := sa.(presenceStore), sb.(presenceStore)
	watch := func(s presenceStore) (stop func()) {
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
	if p, err = b.Presence(ctx); err != nil {
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

// keyChecker is a shared store's check of its key against what is stored.
type keyChecker interface {
	CheckKey(ctx context.Context, names []string) error
}

// anotherKey: an instance given another key than the others' is told so
// before it starts (CheckKey), and whatever it is asked to write over what
// the others sealed is refused, so that they keep their grant and client
// secret; it opens nothing of theirs.
func anotherKey(t *testing.T, e Engine) {
	good, _ := e.Open(t, "moby-1", LeaseOptions{})
	if err := good.SetClientSecret(ctx, "p", "the-client-secret"); err != nil {
		t.Fatal(err)
	}
	tokens := &auth.TokenSet{AccessToken: "at-1", RefreshToken: "rt-1", TokenType: "bearer", ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 3}
	if err := good.SaveTokens(ctx, "p", tokens, 0); err != nil {
		t.Fatal(err)
	}
	if err := good.(keyChecker).CheckKey(ctx, []string{"p", "q"}); err != nil {
		t.Fatalf("the right key: %v", err)
	}
	wrong, _ := e.Open(t, "moby-3", LeaseOptions{Key: bytes.Repeat([]byte{9}, 32)})
	err := wrong.(keyChecker).CheckKey(ctx, []string{"q", "p"})
	if err == nil || !strings.Contains(err.Error(), "this instance's key is not the one the other instances use") {
		t.Fatalf("CheckKey with another key: %v", err)
	}
	if err := wrong.(keyChecker).CheckKey(ctx, []string{"q"}); err != nil {
		t.Fatalf("CheckKey of a connection with nothing stored: %v", err)
	}
	if _, err := wrong.ClientSecret(ctx, "p"); err == nil {
		t.Fatal("another key opened the client secret")
	}
	if err := wrong.SetClientSecret(ctx, "p", "typed-on-the-wrong-machine"); err == nil {
		t.Fatal("another key overwrote the client secret")
	}
	stale := *tokens
	stale.AccessToken, stale.RefreshToken, stale.Generation = "at-x", "rt-x", 4
	if err := wrong.SaveTokens(ctx, "p", &stale, 3); err == nil {
		t.Fatal("another key overwrote the tokens")
	}
	if s, err := good.ClientSecret(ctx, "p"); err != nil || s != "the-client-secret" {
		t.Fatalf("the others' client secret after the wrong key's writes: %q, %v", s.Reveal(), err)
	}
	if got, err := good.LoadTokens(ctx, "p"); err != nil || got.RefreshToken != "rt-1" {
		t.Fatalf("the others' tokens after the wrong key's writes: %+v, %v", got, err)
	}
	// A connection the others never stored is this key's to write.
	if err := wrong.SetClientSecret(ctx, "q", "q-secret"); err != nil {
		t.Fatalf("a new item: %v", err)
	}
}
