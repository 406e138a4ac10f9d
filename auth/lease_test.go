package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// sharedLease is a shared store's lease table as the keepers of one test
// see it: one holder per connection at a time (the lock), the intents,
// timed by the test's clock as an engine's clock would time them, and what
// the engine says of the lease when asked (lost, or too little left).
type sharedLease struct {
	lock  ProcessLocker
	clock interface{ Now() time.Time }

	mu      sync.Mutex
	intents map[string]Intent
	refuse  error // Intend's answer when set: the lease is lost
}

func newSharedLease(clock interface{ Now() time.Time }) *sharedLease {
	return &sharedLease{clock: clock, intents: map[string]Intent{}}
}

// holder is one instance's view of the lease (its Locker).
func (l *sharedLease) holder(instance string) *leaseHolder {
	return &leaseHolder{l: l, instance: instance, id: instance + "/1/x"}
}

// left records an intent of another instance, as one that died after
// recording it would leave it.
func (l *sharedLease) left(name, instance string, gen uint64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.intents[name] = Intent{Instance: instance, Holder: instance + "/2/y", Generation: gen, At: at}
}

func (l *sharedLease) intent(name string) (Intent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	in, ok := l.intents[name]
	return in, ok
}

func (l *sharedLease) set(refuse error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refuse = refuse
}

type leaseHolder struct {
	l            *sharedLease
	instance, id string
	asked        int
}

func (h *leaseHolder) Lock(ctx context.Context, name string) (func(), error) {
	return h.l.lock.Lock(ctx, name)
}

func (h *leaseHolder) Intend(_ context.Context, name string, gen uint64, need time.Duration) error {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	h.asked++
	if h.l.refuse != nil {
		return h.l.refuse
	}
	h.l.intents[name] = Intent{Instance: h.instance, Holder: h.id, Generation: gen, At: h.l.clock.Now()}
	return nil
}

func (h *leaseHolder) Settle(_ context.Context, name string) error {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	if h.l.intents[name].Holder == h.id {
		delete(h.l.intents, name)
	}
	return nil
}

func (h *leaseHolder) Intent(_ context.Context, name string) (*Intent, error) {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	in, ok := h.l.intents[name]
	if !ok {
		return nil, nil
	}
	in.Age = h.l.clock.Now().Sub(in.At)
	in.Mine = in.Holder == h.id
	return &in, nil
}

// A keeper under a lease records its intent right before it presents the
// refresh token, and presents nothing when the engine says the lease is
// gone (a holder that slept past it) or has less left than the request
// may take; once the lease is its own again, it refreshes, and clears its
// intent once the new tokens are committed.
func TestARefreshUnderALeaseThatRanOutPresentsNothing(t *testing.T) {
	var lease *leaseHolder
	r := newRigWith(t, func(o *KeeperOptions) {
		lease = newSharedLease(o.Clock).holder("moby-1")
		o.Locker = lease
	})
	r.signedIn()
	r.clock.Advance(80 * time.Minute) // past the refresh point, still valid

	for _, says := range []string{"held by moby-2", "has 30s left, less than the request may take (1m0s)"} {
		lease.l.set(fmt.Errorf("lease of procore-sandbox %s: %w", says, ErrLeaseLost))
		err := r.k.Refresh(context.Background())
		if !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), says) {
			t.Fatalf("lease %s: refresh %v", says, err)
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

	lease.l.set(nil)
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := r.srv.refreshCount(); n != 1 {
		t.Fatalf("refreshes with the lease held: %d, want 1", n)
	}
	if lease.asked != 3 {
		t.Fatalf("the lease was asked %d times, want once per refresh (3)", lease.asked)
	}
	if in, ok := lease.l.intent(r.conn.Name); ok {
		t.Fatalf("the intent stayed after the commit: %+v", in)
	}
	r.noReuse()
}

// sharedRig is a rig whose keeper is instance moby-1 under a shared lease,
// past its refresh point with a valid token, and the generation stored.
func sharedRig(t *testing.T) (*rig, *leaseHolder, uint64) {
	var lease *leaseHolder
	r := newRigWith(t, func(o *KeeperOptions) {
		lease = newSharedLease(o.Clock).holder("moby-1")
		o.Locker = lease
	})
	r.signedIn()
	r.clock.Advance(80 * time.Minute)
	stored, err := r.store.LoadTokens(context.Background(), r.conn.Name)
	if err != nil {
		t.Fatal(err)
	}
	return r, lease, StoredGeneration(stored)
}

// refreshAsync starts a refresh and returns its outcome's channel.
func refreshAsync(k *Keeper) <-chan error {
	done := make(chan error, 1)
	go func() { done <- k.Refresh(context.Background()) }()
	return done
}

// An instance recorded its intent and died before its request left: the
// next holder waits out the rescue window (twice the request's timeout),
// presenting nothing meanwhile, then takes the refresh over and refreshes
// with the same refresh token, which is still live.
func TestAnIntentLeftByAHolderThatDiedIsWaitedOutThenTakenOver(t *testing.T) {
	r, lease, gen := sharedRig(t)
	lease.l.left(r.conn.Name, "moby-2", gen, r.clock.Now().Add(-10*time.Second))
	waiters := r.clock.Waiters()

	done := refreshAsync(r.k)
	if !r.clock.BlockUntil(waiters+1, 30*time.Second) {
		t.Fatal("the keeper did not wait for the other instance's intent")
	}
	if d := r.clock.Deadlines(); len(d) == 0 || !d[len(d)-1].Equal(r.clock.Now().Add(2*time.Minute-10*time.Second)) {
		t.Fatalf("waits until %v; want the rescue window's end, %v", d, r.clock.Now().Add(2*time.Minute-10*time.Second))
	}
	if n := r.srv.refreshCount(); n != 0 {
		t.Fatalf("presented the refresh token %d times within the rescue window", n)
	}
	r.clock.Advance(2*time.Minute - 10*time.Second)
	if err := <-done; err != nil {
		t.Fatalf("refresh after the window: %v", err)
	}
	if n := r.srv.refreshCount(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
	stored, _ := r.store.LoadTokens(context.Background(), r.conn.Name)
	if g := StoredGeneration(stored); g <= gen {
		t.Fatalf("stored generation %d after the takeover and refresh of %d", g, gen)
	}
	if in, ok := lease.l.intent(r.conn.Name); ok {
		t.Fatalf("an intent stayed after the commit: %+v", in)
	}
	if st := r.k.Status(); st.State != StateConnected {
		t.Fatalf("state %s", st.State)
	}
	r.noReuse()
}

// The other instance's commit comes within the rescue window: the waiting
// holder adopts it and presents nothing.
func TestACommitWithinTheRescueWindowIsAdoptedNotRefreshedAgain(t *testing.T) {
	r, lease, gen := sharedRig(t)
	lease.l.left(r.conn.Name, "moby-2", gen, r.clock.Now())
	waiters := r.clock.Waiters()
	done := refreshAsync(r.k)
	if !r.clock.BlockUntil(waiters+1, 30*time.Second) {
		t.Fatal("the keeper did not wait for the other instance's intent")
	}
	// moby-2's answer and commit.
	now := r.clock.Now()
	theirs := &TokenSet{AccessToken: "at-theirs", TokenType: "bearer", RefreshToken: Secret(r.srv.issueRefreshToken()),
		ObtainedAt: now, Lifetime: 90 * time.Minute, RefreshTokenSince: now, Generation: NextGeneration(gen, now)}
	if err := r.store.SaveTokens(context.Background(), r.conn.Name, theirs, gen); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(2 * time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if n := r.srv.refreshCount(); n != 0 {
		t.Fatalf("%d token requests after the other's commit, want 0", n)
	}
	if tok, err := r.k.Token(context.Background(), time.Minute); err != nil || tok.AccessToken != "at-theirs" {
		t.Fatalf("token: %v, %v; want the other instance's", tok, err)
	}
}

// The other instance presented the refresh token and died with the
// answer: the provider has rotated it. After the rescue window the next
// holder presents the old one, which the provider refuses: one
// needs_reauth that names the instance and when, recorded, and no retry.
func TestAnAnswerLostWithAnotherInstanceIsOneSignInNeededThatSaysSo(t *testing.T) {
	r, lease, gen := sharedRig(t)
	at := r.clock.Now().Add(-5 * time.Minute)
	// The name as another machine's config gave it, with an escape
	// sequence: shown, it must not reach a terminal as one.
	lease.l.left(r.conn.Name, "moby-2\x1b[2J", gen, at)
	stored, _ := r.store.LoadTokens(context.Background(), r.conn.Name)
	r.srv.mu.Lock()
	delete(r.srv.live, stored.RefreshToken.Reveal()) // moby-2's refresh, whose answer died with it
	r.srv.mu.Unlock()

	err := r.k.Refresh(context.Background())
	if !errors.Is(err, ErrNeedsSignIn) {
		t.Fatalf("refresh after the lost answer: %v", err)
	}
	st := r.k.Status()
	if st.State != StateNeedsReauth || st.Next == nil || !strings.Contains(st.Next.Cause, "lost with instance moby-2 at "+at.Local().Format("2006-01-02 15:04:05")) || strings.Contains(st.Next.Cause, "\x1b") {
		t.Fatalf("state %s, next %+v", st.State, st.Next)
	}
	for range 3 {
		_ = r.k.Refresh(context.Background())
	}
	if n := r.srv.refreshCount(); n != 1 {
		t.Fatalf("%d token requests, want 1: no retry of a dead refresh token", n)
	}
	if dead, _ := r.store.LoadTokens(context.Background(), r.conn.Name); dead == nil || !dead.Dead {
		t.Fatalf("the dead refresh token is not recorded: %+v", dead)
	}
	// Another process (a third instance, a restart) says the same.
	other := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock})
	if err := other.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := other.Status(); st.State != StateNeedsReauth || st.Next == nil || !strings.Contains(st.Next.Cause, "lost with instance moby-2") {
		t.Fatalf("another process's status: %s, next %+v", st.State, st.Next)
	}
	if in, ok := lease.l.intent(r.conn.Name); ok {
		t.Fatalf("an intent stayed after the provider's answer: %+v", in)
	}
}

// A holder whose answer came after another took the refresh over (it was
// paused past its lease): its commit fails the compare-and-set on the
// generation, and its tokens are dropped, never written over the newer
// ones nor handed out.
func TestALateCommitAfterATakeoverIsDropped(t *testing.T) {
	r, _, gen := sharedRig(t)
	r.srv.then(replyHeldOK)
	done := refreshAsync(r.k)
	for deadline := time.Now().Add(30 * time.Second); r.srv.refreshCount() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no request")
		}
	}
	// moby-2 takes the refresh over meanwhile (the same tokens under a
	// new generation).
	stored, _ := r.store.LoadTokens(context.Background(), r.conn.Name)
	over := *stored
	over.Generation = NextGeneration(gen, r.clock.Now())
	if err := r.store.SaveTokens(context.Background(), r.conn.Name, &over, gen); err != nil {
		t.Fatal(err)
	}
	r.srv.unhang()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "not saved") {
		t.Fatalf("the late commit: %v", err)
	}
	now, _ := r.store.LoadTokens(context.Background(), r.conn.Name)
	if now.AccessToken != "at-initial" || StoredGeneration(now) != over.Generation {
		t.Fatalf("stored after the late commit: %s at generation %d; want the takeover's", now.AccessToken.Reveal(), StoredGeneration(now))
	}
	if tok, err := r.k.Token(context.Background(), time.Minute); err == nil && tok.AccessToken != "at-initial" {
		t.Fatalf("handed out %s, which was never committed", tok.AccessToken.Reveal())
	}
}

// The engine does not take a refresh's commit at once: it is tried again
// every second within the rescue window, and the tokens are handed out
// only once committed.
func TestACommitIsRetriedWithinTheRescueWindow(t *testing.T) {
	r, lease, _ := sharedRig(t)
	r.store.mu.Lock()
	r.store.failSave = 3
	r.store.mu.Unlock()
	waiters := r.clock.Waiters()
	done := refreshAsync(r.k)
	for range 3 {
		if !r.clock.BlockUntil(waiters+1, 30*time.Second) {
			t.Fatal("the commit was not tried again")
		}
		if d := r.clock.Deadlines(); !d[len(d)-1].Equal(r.clock.Now().Add(time.Second)) {
			t.Fatalf("tried again at %v, want in a second", d)
		}
		r.clock.Advance(time.Second)
	}
	if err := <-done; err != nil {
		t.Fatalf("refresh with the commit retried: %v", err)
	}
	if in, ok := lease.l.intent(r.conn.Name); ok {
		t.Fatalf("the intent stayed after the commit: %+v", in)
	}
	if tok, err := r.k.Token(context.Background(), time.Minute); err != nil || tok.AccessToken == "at-initial" {
		t.Fatalf("token after the commit: %v, %v", tok, err)
	}
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

// Told of a commit by another instance, a keeper adopts it at once: it
// hands out the new access token, writes it where OnTokens says, and
// presents nothing.
func TestStoreChangedAdoptsAnotherInstancesCommit(t *testing.T) {
	var told []string
	r := newRigWith(t, func(o *KeeperOptions) {
		o.Locker = newSharedLease(o.Clock).holder("moby-1")
		o.OnTokens = func(ts *TokenSet) { told = append(told, ts.AccessToken.Reveal()) }
	})
	r.signedIn()
	commit := func(at string) {
		stored, _ := r.store.LoadTokens(context.Background(), r.conn.Name)
		now := r.clock.Now()
		next := &TokenSet{AccessToken: Secret(at), TokenType: "bearer", RefreshToken: Secret(r.srv.issueRefreshToken()),
			ObtainedAt: now, Lifetime: 90 * time.Minute, RefreshTokenSince: now, Generation: NextGeneration(StoredGeneration(stored), now)}
		if err := r.store.SaveTokens(context.Background(), r.conn.Name, next, StoredGeneration(stored)); err != nil {
			t.Fatal(err)
		}
	}
	r.clock.Advance(time.Minute)
	commit("at-moby-2")
	r.k.StoreChanged(context.Background())
	r.waitFor(EventAdopted, "")
	if tok, err := r.k.Token(context.Background(), time.Minute); err != nil || tok.AccessToken != "at-moby-2" {
		t.Fatalf("token after the other's commit: %v, %v", tok, err)
	}
	if len(told) != 1 || told[0] != "at-moby-2" || r.srv.refreshCount() != 0 {
		t.Fatalf("OnTokens told %q, %d token requests", told, r.srv.refreshCount())
	}

	r.noReuse()
}

// flakyLocker is a shared store's lease whose database is away while down
// is set.
type flakyLocker struct {
	ProcessLocker
	down atomic.Bool
}

func (l *flakyLocker) Lock(ctx context.Context, name string) (func(), error) {
	if l.down.Load() {
		return nil, fmt.Errorf("cannot reach postgres://db/tokentray: %w", ErrStoreUnreachable)
	}
	return l.ProcessLocker.Lock(ctx, name)
}

// A refresh that waited for the store is tried as soon as the store's watch
// says it answers again, not after its backoff.
func TestTheStoreBackMakesAWaitingRefreshDueNow(t *testing.T) {
	lock := &flakyLocker{}
	lock.down.Store(true)
	r := newRigWith(t, func(o *KeeperOptions) { o.Locker = lock })
	r.signedIn()
	r.clock.Advance(80 * time.Minute)
	if err := r.k.Refresh(context.Background()); !errors.Is(err, ErrStoreUnreachable) {
		t.Fatalf("refresh without the store: %v", err)
	}
	due := r.k.Status().NextRefresh
	if !due.After(r.clock.Now()) {
		t.Fatalf("next refresh %v, want after a backoff from %v", due, r.clock.Now())
	}
	lock.down.Store(false)
	r.k.StoreChanged(context.Background())
	if got := r.k.Status().NextRefresh; !got.Equal(r.clock.Now()) {
		t.Fatalf("next refresh %v once the store answers, want now (%v)", got, r.clock.Now())
	}
}

// A keeper of a shared store records which instance made each refresh, a
// failed one too, and every process's status says it.
func TestTheInstanceThatRefreshedIsRecorded(t *testing.T) {
	r := newRigWith(t, func(o *KeeperOptions) {
		o.Locker = newSharedLease(o.Clock).holder("moby-1")
		o.Instance = "moby-1"
	})
	r.signedIn()
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored, _ := r.store.LoadTokens(context.Background(), r.conn.Name)
	b, err := MarshalTokenSet(stored)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalTokenSet(b)
	if err != nil || back.LastRefreshBy != "moby-1" || r.k.Status().LastRefreshBy != "moby-1" {
		t.Fatalf("after a refresh: stored %q (%v), status %q", back.LastRefreshBy, err, r.k.Status().LastRefreshBy)
	}
	r.srv.then(replyUnavailable)
	_ = r.k.Refresh(context.Background())
	other := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock})
	if err := other.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := other.Status(); st.LastRefreshBy != "moby-1" || st.LastRefreshOK {
		t.Fatalf("another process's status after a failed refresh: by %q, ok %t", st.LastRefreshBy, st.LastRefreshOK)
	}
}

// ttlLease is a shared lease that says its time to live, as PostgreSQL's
// does.
type ttlLease struct {
	*leaseHolder
	ttl time.Duration
}

func (l ttlLease) TTL() time.Duration { return l.ttl }

// A shared store's timings that do not fit the tokens' lifetime (a holder's
// death mid-refresh could let the access token run out) are said once in
// the log, with the numbers; shorter ones that fit are not.
func TestTimingsThatDoNotFitTheLifetimeAreSaidOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		timeout time.Duration // 0: the default, scaled
		warned  int
	}{
		{"the defaults with 60 s tokens", 45 * time.Second, 0, 1},
		{"request_timeout 1s, store_lease_ttl 5s", 5 * time.Second, time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			r := newRigWith(t, func(o *KeeperOptions) {
				o.Locker = ttlLease{newSharedLease(o.Clock).holder("moby-1"), tc.ttl}
				o.RequestTimeout = tc.timeout
				o.Logger = slog.New(slog.NewTextHandler(&log, nil))
			})
			r.srv.lifetime = 60
			rt := r.srv.issueRefreshToken()
			r.store.put(r.conn.Name, &TokenSet{AccessToken: "at-initial", TokenType: "bearer", RefreshToken: Secret(rt),
				ObtainedAt: r.clock.Now(), Lifetime: time.Minute, RefreshTokenSince: r.clock.Now()})
			if err := r.k.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := r.k.Refresh(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if n := strings.Count(log.String(), "timings do not fit"); n != tc.warned {
				t.Fatalf("said %d times; want %d:\n%s", n, tc.warned, log.String())
			}
			if tc.warned > 0 && !strings.Contains(log.String(), "lease_ttl=45s rescue_window=20s request_timeout=10s room_after_refresh_at=12s") {
				t.Fatalf("the numbers are not said:\n%s", log.String())
			}
		})
	}
}

// request_timeout, set on the connection, is the request's bound exactly:
// neither the keeper's default nor the scaling for short lifetimes.
func TestAConnectionsRequestTimeoutIsKeptExactly(t *testing.T) {
	short := &TokenSet{Lifetime: time.Minute}
	k := NewKeeper(&Connection{Name: "p", RequestTimeout: 3 * time.Second}, KeeperOptions{RequestTimeout: 20 * time.Second})
	if got := k.callTimeout(short); got != 3*time.Second {
		t.Fatalf("callTimeout %s; want the connection's 3s", got)
	}
	if got := k.rescueWindow(short); got != 6*time.Second {
		t.Fatalf("rescueWindow %s; want twice the request timeout", got)
	}
	if got := NewKeeper(&Connection{Name: "p"}, KeeperOptions{}).callTimeout(short); got != minCallTimeout {
		t.Fatalf("without one: %s; want the scaled default's floor %s", got, minCallTimeout)
	}
}

// A refresh whose commit a sign-in or a sign-out overtook holds the only
// refresh token of a grant that nobody keeps any more: it is revoked. One
// that another instance's takeover overtook is of the grant stored now,
// and revoking it could end that grant at some providers: it is kept.
func TestARefreshTokenThatASignInOvertookIsRevoked(t *testing.T) {
	for _, tc := range []struct {
		overtaker string
		revoked   bool
	}{{"a sign-in", true}, {"a sign-out", true}, {"another instance's takeover", false}} {
		t.Run(tc.overtaker, func(t *testing.T) {
			ctx := context.Background()
			r, _, gen := sharedRig(t)
			stored, _ := r.store.LoadTokens(ctx, r.conn.Name)
			stored.GrantSince = r.clock.Now().Add(-80 * time.Minute)
			if err := r.store.SaveTokens(ctx, r.conn.Name, stored, gen); err != nil {
				t.Fatal(err)
			}
			if err := r.k.Load(ctx); err != nil {
				t.Fatal(err)
			}
			r.srv.then(replyHeldOK)
			done := refreshAsync(r.k)
			for deadline := time.Now().Add(30 * time.Second); r.srv.refreshCount() == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no request")
				}
			}
			switch tc.overtaker {
			case "a sign-in":
				signIn := &TokenSet{AccessToken: "at-signin", TokenType: "bearer", RefreshToken: "rt-signin", ObtainedAt: r.clock.Now(),
					Lifetime: 90 * time.Minute, GrantSince: r.clock.Now(), Generation: NextGeneration(gen, r.clock.Now())}
				if err := r.store.SaveTokens(ctx, r.conn.Name, signIn, AnyGeneration); err != nil {
					t.Fatal(err)
				}
			case "a sign-out":
				if err := r.store.DeleteTokens(ctx, r.conn.Name); err != nil {
					t.Fatal(err)
				}
			default:
				over := *stored
				over.Generation = NextGeneration(gen, r.clock.Now())
				if err := r.store.SaveTokens(ctx, r.conn.Name, &over, gen); err != nil {
					t.Fatal(err)
				}
			}
			r.srv.unhang()
			if err := <-done; err == nil || !strings.Contains(err.Error(), "not saved") {
				t.Fatalf("the overtaken commit: %v", err)
			}
			r.srv.mu.Lock()
			answered := fmt.Sprintf("rt-%d", r.srv.seq)
			live := r.srv.live[answered]
			r.srv.mu.Unlock()
			if live == tc.revoked {
				t.Fatalf("the refresh token of the overtaken refresh (%s): live %v; want revoked %v", answered, live, tc.revoked)
			}
		})
	}
}

// A keeper that waits out another instance's rescue window when tokentray
// is stopped (SIGTERM) gives up at once, presenting nothing: the stop is
// not held up for the window, and the intent stays for whoever is next.
func TestAStopDoesNotWaitOutTheRescueWindow(t *testing.T) {
	r, lease, gen := sharedRig(t)
	lease.l.left(r.conn.Name, "moby-2", gen, r.clock.Now().Add(-10*time.Second))
	end := r.clock.Now().Add(2*time.Minute - 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.k.Run(ctx) }() // due: it refreshes, and waits
	for deadline := time.Now().Add(30 * time.Second); !slices.ContainsFunc(r.clock.Deadlines(), end.Equal); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the keeper did not wait for the other instance's intent: deadlines %v", r.clock.Deadlines())
		}
	}
	cancel()
	select {
	case <-ran:
	case <-time.After(30 * time.Second): // a bound for a hang: the fake clock never reaches the window's end
		t.Fatal("Run did not return: the stop waits out the rescue window")
	}
	if n := r.srv.refreshCount(); n != 0 {
		t.Fatalf("presented the refresh token %d times", n)
	}
	if in, ok := lease.l.intent(r.conn.Name); !ok || in.Instance != "moby-2" {
		t.Fatalf("the other instance's intent: %+v, %v; want it kept", in, ok)
	}
}
