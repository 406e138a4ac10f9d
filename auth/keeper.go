package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/failpoint"
	"github.com/tokentray/tokentray/internal/humanize/duration"
)

// State is a connection's state, as in DESIGN.md.
type State string

const (
	StateConnected    State = "connected"
	StateRefreshing   State = "refreshing"
	StateDegraded     State = "degraded"
	StateNeedsReauth  State = "needs_reauth"
	StateDisconnected State = "disconnected"
	// StateClientRefused: the provider refused the client (invalid_client,
	// unauthorized_client, …): its id, secret or authentication method is
	// wrong. The refresh token is kept: it is still good once the client
	// settings are fixed, so no sign-in is needed then.
	StateClientRefused State = "client_refused"
)

// EventKind names what happened.
type EventKind string

const (
	EventState         EventKind = "state"          // the state changed (From → To)
	EventRefreshed     EventKind = "refreshed"      // a refresh succeeded and was saved
	EventRefreshFailed EventKind = "refresh_failed" // a refresh failed (Error, Next)
	EventSignedIn      EventKind = "signed_in"
	EventSignedOut     EventKind = "signed_out"
	// EventAccessExpired: the access token expired while no new one could be
	// had (degraded): scripts now fail, a person should hear of it.
	EventAccessExpired EventKind = "access_expired"
	// EventRestored: the keyring lost the tokens (an item deleted outside
	// tokentray) and the keeper wrote back the ones it held (Error says so).
	EventRestored EventKind = "restored"
	// EventRecorded: a failed refresh's outcome was saved with the tokens
	// (the last refresh, a dead refresh token): the status changed, with
	// nothing new to tell a person.
	EventRecorded EventKind = "recorded"
	// EventAdopted: new tokens that another process or machine committed
	// were adopted (a shared store told of them): this keeper hands them
	// out now.
	EventAdopted EventKind = "adopted"
	// EventRefreshTokenExpiring: the refresh token's foreseen end is less
	// than refresh_token_warning away and no refresh will move it (Error
	// says when and why, Next what to do). Once per foreseen end.
	EventRefreshTokenExpiring EventKind = "refresh_token_expiring"
)

// Event is one thing that happened to a connection. Events carry no tokens.
type Event struct {
	Connection string    `json:"connection"`
	Time       time.Time `json:"time"`
	Kind       EventKind `json:"kind"`
	From       State     `json:"from,omitempty"`
	To         State     `json:"to,omitempty"`
	Error      string    `json:"error,omitempty"`
	// Next is what a person does about Error.
	Next *nextstep.Step `json:"next,omitempty"`
	// Hint is advice in words that an older tokentray kept in the store,
	// as it said it; only when there is no Next.
	Hint string `json:"hint,omitempty"`
	// Generation is the generation of the tokens held when it happened
	// (StoredGeneration; 0 for none). The instances that share a store
	// hold the same generation, so it tells them apart from a later
	// happening of the same kind: an alert is told once for all of them.
	Generation uint64 `json:"generation,omitempty"`
}

// DefaultRequestTimeout bounds one call to the token endpoint when neither
// KeeperOptions nor the Connection sets one, and is the most a call is
// given: the default HTTP client's bound.
const DefaultRequestTimeout = 30 * time.Second

// Status is a snapshot of one connection, for people and scripts.
type Status struct {
	Name              string    `json:"name"`
	Grant             Grant     `json:"grant"`
	State             State     `json:"state"`
	Usable            bool      `json:"usable"` // a valid access token is held now
	AccessObtained    time.Time `json:"access_obtained,omitzero"`
	AccessExpiry      time.Time `json:"access_expiry,omitzero"`
	LifetimeGuessed   bool      `json:"lifetime_guessed,omitempty"`
	NextRefresh       time.Time `json:"next_refresh,omitzero"`
	LastRefresh       time.Time `json:"last_refresh,omitzero"`
	LastRefreshOK     bool      `json:"last_refresh_ok"`
	LastRefreshBy     string    `json:"last_refresh_by,omitempty"`
	HasRefreshToken   bool      `json:"has_refresh_token"`
	RefreshTokenSince time.Time `json:"refresh_token_since,omitzero"`
	LastError         string    `json:"last_error,omitempty"`
	// Hint is advice in words that an older tokentray kept in the store,
	// as it said it (a last_hint); only when there is no Next.
	Hint string `json:"hint,omitempty"`
	// LastCheck is the last "who am I" call against the API, if any.
	LastCheck *CheckResult `json:"last_check,omitempty"`
	// Endpoints are the URLs in use, including those discovered from the
	// issuer once its metadata was read.
	Endpoints Endpoints `json:"endpoints"`
	// Resolution is the authentication method in use and any warning
	// about the issuer's metadata (endpoint.go).
	Resolution
	// APIRefused says what the API answered when it refused a fresh token
	// (a call through the proxy); empty while it takes the token.
	APIRefused string `json:"api_refused,omitempty"`
	// RateLimit is the API's rate limit as the last proxied call saw it.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// RefreshTokenEnd is when the refresh token is expected to die (the
	// server's word, else the provider's rule); zero when unknown.
	RefreshTokenEnd time.Time `json:"refresh_token_end,omitzero"`
	// RefreshTokenEndAbout says what RefreshTokenEnd rests on.
	RefreshTokenEndAbout string `json:"refresh_token_end_about,omitempty"`
	// RefreshTokenRenewable: each refresh moves RefreshTokenEnd, and the
	// keeper refreshes in time.
	RefreshTokenRenewable bool `json:"refresh_token_renewable,omitempty"`
	// RefreshTokenEnding: a person was told that the end is near, and no
	// refresh will move it.
	RefreshTokenEnding bool `json:"refresh_token_ending,omitempty"`

	// Next is what a person does next (about LastError, a refresh token
	// that ends, a sign-in without one): the step, for each surface to say
	// in its own words.
	Next *nextstep.Step `json:"next,omitempty"`
}

// KeeperOptions are a Keeper's dependencies. Store and Locker are required.
type KeeperOptions struct {
	// Store keeps the connection's tokens and client secret (see Store's
	// contract); Locker serialises its writers across processes.
	Store  Store
	Locker Locker
	// Instance names this machine among those that share the Store (the
	// `instance` setting), in the refreshes it records; empty on one
	// machine.
	Instance string
	// Clock is every wait and every time read (SystemClock in programs).
	Clock Clock
	// HTTPClient talks to the authorization server; its POSTs (token,
	// revocation, pushed authorization, device) each go out on a
	// connection of their own (ownConnections).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// RequestTimeout bounds one call to the token endpoint (default 30 s;
	// for a refresh, lifetime/20 when shorter, but at least 10 s; and a
	// promise leaves 3 × lifetime/20, at least 3 s, before expiry: see
	// refreshMargin). Set, it bounds every call as it is.
	RequestTimeout time.Duration
	// LockTimeout bounds the wait for another process's refresh (default 2 min).
	LockTimeout time.Duration
	// Jitter returns a number in [0,1); tests make it fixed.
	Jitter func() float64
	// OpenBrowser opens a sign-in's authorization URL (Login); an error is
	// shown, and the URL is shown with ShowURL either way. ShowURL shows
	// it to the person (a terminal, a notification). Both are called on
	// the sign-in's goroutine and must return promptly; either may be nil.
	OpenBrowser func(url string) error
	ShowURL     func(url string)
	// OnTokens is called after new tokens were saved (refresh, sign-in) and
	// with nil after a sign-out, outside the keeper's lock, on the goroutine
	// that saved them: the export file. It must not call back into the
	// keeper's refresh.
	OnTokens func(t *TokenSet)
	// MaxSleep is the longest the scheduler sleeps before it looks at the
	// wall clock again (default 30 s): Go's timers stop while the machine
	// is suspended. A process that calls Wake after every suspend itself,
	// with one watch for all its keepers, sets it long, so that an idle
	// keeper wakes only when something is due.
	MaxSleep time.Duration
	// OnlyHolder says that this keeper hands out every access token of its
	// connection (the tray, the demo: everyone else asks it), so it knows
	// what it promised. Without it (a CLI process), any other process may
	// have handed out the current token until its scheduled refresh.
	OnlyHolder bool
}

// Backoff bounds for transient failures.
const (
	backoffBase = 5 * time.Second
	backoffMax  = 5 * time.Minute
	// pollInterval is the longest the scheduler sleeps before it looks at
	// the wall clock again, unless KeeperOptions.MaxSleep says otherwise:
	// after a suspend, a refresh that fell due while asleep starts within
	// this interval of waking.
	pollInterval = 30 * time.Second
)

// Keeper keeps one connection's tokens fresh. It is the only thing that
// refreshes: the tray, the CLI and the socket API all ask it. All methods are
// safe for concurrent use.
type Keeper struct {
	conn *Connection
	opt  KeeperOptions
	// post is opt.HTTPClient for POSTs to the authorization server: one
	// connection per request (ownConnections).
	post *http.Client
	log  *slog.Logger

	mu      sync.Mutex
	token   *TokenSet // as saved in the store; nil when none
	unsaved *TokenSet // newer than token, not yet saved: its refresh token is the live one
	// unsavedOver is the generation unsaved replaces: its write is a
	// compare-and-set on it.
	unsavedOver uint64
	state       State
	lastErr     *TokenError
	errText     string         // last error for people, also for non-token errors
	next        *nextstep.Step // what a person does about it
	said        string         // or an older tokentray's advice in words, as stored
	failures    int
	retryAt     time.Time
	expired     bool // EventAccessExpired was sent for the current degradation
	// storeDown: the last refresh could not take its lease, since the
	// shared store did not answer (ErrStoreUnreachable).
	storeDown bool
	// timingsTold is the lifetime that checkTimings said the shared
	// store's timings do not fit, so that it says so once.
	timingsTold time.Duration
	// stopping is closed when Run ends: a refresh that is only waiting
	// (out another instance's rescue window) gives up then, presenting
	// nothing, so that a stop is not held up for the window.
	stopping chan struct{}
	stopOnce sync.Once
	flight   *flight
	subs     map[int]chan Event
	nextSub  int
	loaded   bool
	// clientFixed: the provider refused the client settings stored with
	// the tokens, and other ones are in use now (Load saw them).
	clientFixed bool
	lastCheck   CheckResult
	signIn      *flight // the sign-in waiting for the browser, if any
	signInURL   string  // its authorize URL, to open again
	// signInDevice: the sign-in waiting is one with a code, which a
	// browser sign-in cannot join (nor the other way round).
	signInDevice bool
	// kick wakes the scheduler when the tokens or the state change (a
	// sign-in, a refresh by a caller), so it recomputes its next deadline.
	kick chan struct{}
	// metadata is the issuer's, for a connection that discovers its
	// endpoints, and when it was fetched.
	metadata   *Metadata
	metadataAt time.Time
	res        resolution // what resolving learnt beyond it (endpoint.go)
	// identity is the AT Protocol account the handle resolved to.
	identity *Identity
	// promisedUntil is how long the access token promisedFor was promised
	// to callers (OnlyHolder): no caller's refresh may revoke it before.
	promisedFor   Secret
	promisedUntil time.Time
	// apiRefused says what the API answered when it refused a fresh
	// token; empty while it takes the token (apiuse.go).
	apiRefused string
	rateLimit  *RateLimit
	rateToldAt time.Time
	// warnedEnd is the foreseen end of the refresh token that a person
	// was told of (EventRefreshTokenExpiring), also by an earlier process.
	warnedEnd time.Time
	// nonces are the DPoP nonces servers asked for, by origin.
	nonces dpopNonces
	// endToSave is a foreseen end just told of, to be kept with the
	// tokens (saveEndWarned) once the scheduler is out of the lock.
	endToSave time.Time
	// scaleTimeout: RequestTimeout was left to the default, so a refresh's
	// request timeout scales with the token's lifetime (requestTimeout).
	scaleTimeout bool
}

type flight struct {
	done chan struct{}
	err  error
}

// NewKeeper returns a keeper for conn. Call Load (or Run) before use.
func NewKeeper(conn *Connection, opt KeeperOptions) *Keeper {
	if opt.Clock == nil {
		opt.Clock = SystemClock{}
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: DefaultRequestTimeout}
	}
	if conn.RequestTimeout > 0 {
		opt.RequestTimeout = conn.RequestTimeout
	}
	scaleTimeout := opt.RequestTimeout <= 0
	if scaleTimeout {
		opt.RequestTimeout = DefaultRequestTimeout
	}
	if opt.MaxSleep <= 0 {
		opt.MaxSleep = pollInterval
	}
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = 2 * time.Minute
	}
	if opt.Jitter == nil {
		opt.Jitter = rand.Float64
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keeper{conn: conn, opt: opt, post: ownConnections(opt.HTTPClient), log: log.With("connection", conn.Name), state: StateDisconnected, subs: map[int]chan Event{}, kick: make(chan struct{}, 1), scaleTimeout: scaleTimeout, stopping: make(chan struct{})}
}

// ownConnections is client, but sending each request on a connection of its
// own, for the POSTs to the authorization server (token, revocation,
// pushed authorization, device). A kept-alive connection can be closed by
// the server, at the end of its idle timeout (5 s at Node's), just as a
// request goes out on it: the request fails after it was written, and Go
// does not send a POST again, since the server may have acted on it. For a
// refresh that is an unknown outcome, which at a provider without a reuse
// grace, on a shared store, is a lost grant. A new connection is not closed
// for idleness before its first request. It costs a handshake per token
// request, a few per refresh period. A RoundTripper of a caller's own (a
// test's) is left as it is.
func ownConnections(client *http.Client) *http.Client {
	rt := client.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return client
	}
	t = t.Clone()
	t.DisableKeepAlives = true
	c := *client
	c.Transport = t
	return &c
}

// Connection returns the keeper's connection.
func (k *Keeper) Connection() *Connection { return k.conn }

// Load reads the stored tokens and sets the initial state.
func (k *Keeper) Load(ctx context.Context) error {
	t, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if err != nil && !errors.Is(err, ErrNotStored) {
		return err
	}
	fixed := false
	if t != nil && t.RefusedClient != "" {
		// Refused earlier: if the client settings changed since (a new
		// secret, client id or method), the kept refresh token gets its try.
		if secret, err := k.opt.Store.ClientSecret(ctx, k.conn.Name); err == nil || errors.Is(err, ErrNotStored) {
			if k.clientFingerprint(secret) != t.RefusedClient {
				t2 := *t
				t2.RefusedClient = ""
				t, fixed = &t2, true
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.loaded = true
	k.clientFixed = fixed
	k.adoptLocked(t)
	return nil
}

// RetryClient is what follows a change of the client settings (a new
// client secret stored): a connection whose client the provider refused
// tries its kept refresh token again now, since a refused client needs no
// sign-in once it is fixed. Refresh itself sends nothing for the very
// settings that were refused. Any other connection is left as it is. The
// outcome is in the status.
func (k *Keeper) RetryClient(ctx context.Context) {
	k.mu.Lock()
	retry := k.state == StateClientRefused || k.clientFixed
	k.clientFixed = false
	k.mu.Unlock()
	if retry {
		_ = k.Refresh(ctx)
	}
}

// ensureLoaded loads the stored tokens unless Load (or a sign-in) did.
func (k *Keeper) ensureLoaded(ctx context.Context) error {
	k.mu.Lock()
	loaded := k.loaded
	k.mu.Unlock()
	if loaded {
		return nil
	}
	return k.Load(ctx)
}

// adoptLocked takes t (possibly nil) as the saved token set and derives the
// state, including the outcome of the last refresh as recorded in the store
// by whichever process made it.
func (k *Keeper) adoptLocked(t *TokenSet) {
	k.token = t
	now := k.opt.Clock.Now()
	if t != nil && t.EndWarned.After(k.warnedEnd) {
		k.warnedEnd = t.EndWarned
	}
	switch {
	case t == nil:
		k.setStateLocked(StateDisconnected)
	case t.Dead:
		next := t.LastNext // with the reason its writer gave, if any
		if next == nil {
			next = step(nextstep.SignInAgain, k.conn.Name)
		}
		k.adviseLocked(t.LastError, next)
		k.setStateLocked(StateNeedsReauth)
	case t.RefusedClient != "":
		k.adoptAdviceLocked(t)
		k.setStateLocked(StateClientRefused)
	case t.RefreshToken == "" && k.conn.Grant != GrantClientCredentials && !t.ValidFor(now, 0):
		k.adviseLocked("the access token expired and there is no refresh token", step(nextstep.SignInAgain, k.conn.Name))
		k.setStateLocked(StateNeedsReauth)
	case t.failedLast():
		k.adoptAdviceLocked(t)
		k.retryAt = t.RetryAt
		k.setStateLocked(StateDegraded)
	default:
		if k.state != StateDegraded {
			k.setStateLocked(StateConnected)
		}
	}
}

// adviseLocked sets the error a person sees and what they do about it.
func (k *Keeper) adviseLocked(errText string, next *nextstep.Step) {
	k.errText, k.next, k.said = errText, next, ""
}

// adoptAdviceLocked takes the error and the step recorded with t, or the
// advice in words an older tokentray recorded, shown as it is.
func (k *Keeper) adoptAdviceLocked(t *TokenSet) {
	k.adviseLocked(t.LastError, t.LastNext)
	if t.LastNext == nil {
		k.said = t.LastHint
	}
}

// Subscribe returns a channel of the keeper's events and a function that ends
// the subscription. A subscriber that falls more than 64 events behind loses
// events; Status always has the current truth.
func (k *Keeper) Subscribe() (<-chan Event, func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id := k.nextSub
	k.nextSub++
	ch := make(chan Event, 64)
	k.subs[id] = ch
	return ch, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if c, ok := k.subs[id]; ok {
			delete(k.subs, id)
			close(c)
		}
	}
}

func (k *Keeper) emitLocked(e Event) {
	select {
	case k.kick <- struct{}{}:
	default:
	}
	e.Connection = k.conn.Name
	e.Time = k.opt.Clock.Now()
	e.Generation = StoredGeneration(k.currentLocked())
	for _, ch := range k.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (k *Keeper) setStateLocked(s State) {
	if k.state == s {
		return
	}
	from := k.state
	k.state = s
	if s != StateDegraded {
		k.expired, k.storeDown = false, false
	}
	k.log.Info("state", "from", from, "to", s)
	ev := Event{Kind: EventState, From: from, To: s}
	if bad(s) {
		ev.Error, ev.Next, ev.Hint = k.errText, k.next, k.said
	}
	k.emitLocked(ev)
}

// bad reports whether s carries an error and advice for a person.
func bad(s State) bool {
	return s == StateDegraded || s == StateNeedsReauth || s == StateClientRefused
}

// Status returns a snapshot of the connection.
func (k *Keeper) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.opt.Clock.Now()
	st := Status{Name: k.conn.Name, Grant: k.conn.Grant, State: k.state}
	if t := k.currentLocked(); t != nil {
		st.Usable = t.ValidFor(now, 0)
		st.AccessObtained = t.ObtainedAt
		st.AccessExpiry = t.Expiry()
		st.LifetimeGuessed = t.LifetimeGuessed
		st.HasRefreshToken = t.RefreshToken != "" && !t.Dead
		st.RefreshTokenSince = t.RefreshTokenSince
		st.LastRefresh = t.LastRefresh
		st.LastRefreshOK = t.LastRefreshOK
		st.LastRefreshBy = t.LastRefreshBy
	}
	st.NextRefresh = k.nextDueLocked()
	if !k.lastCheck.Time.IsZero() {
		c := k.lastCheck
		st.LastCheck = &c
	}
	t := k.currentLocked()
	f := k.conn.forecast(t)
	if !f.End.IsZero() {
		st.RefreshTokenEnd, st.RefreshTokenEndAbout, st.RefreshTokenRenewable = f.End, f.About, f.Renewable
		st.RefreshTokenEnding = SameEnd(f.End, k.warnedEnd)
	}
	switch {
	case bad(k.state):
		st.LastError, st.Next, st.Hint = k.errText, k.next, k.said
	case t != nil && !t.LastRefreshOK && t.LastError != "":
		st.LastError = t.LastError
	case t != nil && t.RefreshToken == "" && k.conn.Grant == GrantAuthorizationCode:
		st.Next = NoRefreshToken(k.conn.Name)
	case st.RefreshTokenEnding:
		st.Next = ForecastStep(k.conn.Name, f)
	}
	st.Endpoints = k.endpointsLocked()
	st.Resolution = k.resolutionLocked()
	st.APIRefused = k.apiRefused
	if k.rateLimit != nil {
		rl := *k.rateLimit
		st.RateLimit = &rl
	}
	return st
}

// NoRefreshToken is the step after a sign-in that brought no refresh token.
func NoRefreshToken(name string) *nextstep.Step {
	return stepWith(nextstep.AskOfflineAccess, name, "The server issued no refresh token, so a new sign-in will be needed when the access token expires.")
}

// currentLocked is the newest token set, saved or not.
// Generation is the generation of the tokens held now (Event.Generation).
func (k *Keeper) Generation() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return StoredGeneration(k.currentLocked())
}

func (k *Keeper) currentLocked() *TokenSet {
	if k.unsaved != nil {
		return k.unsaved
	}
	return k.token
}

// nextDueLocked is when the scheduler should act next; zero for never.
func (k *Keeper) nextDueLocked() time.Time {
	switch k.state {
	case StateDegraded:
		return k.retryLocked()
	case StateConnected, StateRefreshing:
		t := k.token
		if t == nil {
			if k.conn.Grant == GrantClientCredentials {
				return k.opt.Clock.Now()
			}
			return time.Time{}
		}
		due := k.scheduled(t)
		if renew := k.conn.renewAt(t); !renew.IsZero() && renew.Before(due) {
			// Keeping the refresh token alive comes first, but not inside
			// a window promised to a caller.
			due = latest(renew, earliest(t.Promised, due))
		}
		return due
	}
	return time.Time{}
}

// retryLocked is when a failed refresh is tried again: after the backoff,
// but the first retry no later than one request timeout before the access
// token expires when its refresh was due within refreshMargin of expiry (a
// promise moved it there): the margin has room for that one retry. A
// provider's Retry-After is always respected.
func (k *Keeper) retryLocked() time.Time {
	t := k.currentLocked()
	if k.failures != 1 || t == nil || (k.lastErr != nil && k.lastErr.RetryAfter > 0) {
		return k.retryAt
	}
	if !k.promiseCap(t).After(k.conn.refreshAt(t.ObtainedAt, t.Lifetime)) {
		return k.retryAt // the lifetime is too short for the margin
	}
	last := t.Expiry().Add(-k.requestTimeout(t))
	if last.Before(k.retryAt) && k.opt.Clock.Now().Before(last) {
		return last
	}
	return k.retryAt
}

// Run keeps the connection fresh until ctx ends: it refreshes at refresh_at
// of each token's lifetime, retries transient failures with backoff and
// jitter, and looks at the wall clock at least every MaxSleep (30 s) so that
// a refresh that fell due during a suspend happens right after wake. On return, an
// in-flight refresh has finished and been saved.
func (k *Keeper) Run(ctx context.Context) error {
	if err := k.ensureLoaded(ctx); err != nil {
		return err
	}
	defer k.waitFlight()
	defer k.stopOnce.Do(func() { close(k.stopping) }) // before the wait for the flight
	if k.conn.Discover {
		// Off the loop: an issuer that does not answer must not hold up a
		// refresh that is due.
		go func() {
			if err := k.Resolve(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("issuer metadata not read; the next refresh tries again", "err", err)
			}
		}()
	}
	for {
		now := k.opt.Clock.Now()
		k.mu.Lock()
		due := k.lookLocked(now)
		expires := k.expiryNewsLocked()
		_, tellEnd := k.endToTellLocked()
		told := k.endToSave
		k.endToSave = time.Time{}
		k.mu.Unlock()
		if !told.IsZero() {
			k.saveEndWarned(ctx, told)
		}
		if !due.IsZero() && !now.Before(due) {
			if err := k.refresh(ctx, false, 0, nil); err != nil && ctx.Err() == nil {
				k.log.Warn("scheduled refresh failed", "err", err)
			}
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		wait := k.opt.MaxSleep
		if !due.IsZero() && due.Sub(now) < wait {
			wait = due.Sub(now)
		}
		if !expires.IsZero() && expires.Sub(now) < wait {
			wait = expires.Sub(now)
		}
		if !tellEnd.IsZero() && tellEnd.Sub(now) < wait {
			wait = max(tellEnd.Sub(now), 0)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-k.kick:
		case <-k.opt.Clock.After(wait):
		}
	}
}

// lookLocked is the scheduler's look at the connection: it announces an
// access token that expired while degraded and returns when to act next.
//
// A kick sent before or during this look is answered by it, so it is drained
// last: without the drain every refresh this loop makes would wake it once
// more, and drained before noteExpiryLocked the loop's own access_expired
// event would wake it once more. Such a spurious wake-up re-reads the clock
// and re-parks; a test (or anything) that moves the clock in between sees a
// park with no refresh at a due point. Kicks from changes are sent under
// k.mu, so draining here, under it, cannot miss one that comes after the look.
func (k *Keeper) lookLocked(now time.Time) time.Time {
	due := k.nextDueLocked()
	k.noteExpiryLocked(now)
	k.noteEndLocked(now)
	select {
	case <-k.kick:
	default:
	}
	return due
}

// Wake tells the scheduler that the machine has just resumed from suspend:
// it looks at the wall clock now instead of at its next poll, so a refresh
// that fell due while asleep starts at once.
func (k *Keeper) Wake() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// noteExpiryLocked sends EventAccessExpired once when the access token dies
// while the connection cannot get a new one.
// expiryNewsLocked is when the access token expires while degraded and its
// expiry was not yet announced: news of its own (EventAccessExpired), which
// may come before the next retry. Zero otherwise.
func (k *Keeper) expiryNewsLocked() time.Time {
	if t := k.currentLocked(); k.state == StateDegraded && !k.expired && t != nil {
		return t.Expiry()
	}
	return time.Time{}
}

func (k *Keeper) noteExpiryLocked(now time.Time) {
	if k.state != StateDegraded || k.expired {
		return
	}
	if t := k.currentLocked(); t == nil || !t.ValidFor(now, 0) {
		k.expired = true
		k.emitLocked(Event{Kind: EventAccessExpired, From: k.state, To: k.state, Error: k.errText, Next: k.next, Hint: k.said})
	}
}

func (k *Keeper) waitFlight() {
	k.mu.Lock()
	f := k.flight
	k.mu.Unlock()
	if f != nil {
		<-f.done
	}
}

// DefaultMinValid asks Token for the default margin instead of a duration
// the caller chose: the smaller of 2 minutes and the part of the token's
// lifetime after its refresh point. Unlike a fixed 2 minutes it fits every
// lifetime, so a plain `tokentray token NAME` works with 30 s tokens too.
const DefaultMinValid time.Duration = -1

// defaultMargin is the most DefaultMinValid asks for.
const defaultMargin = 2 * time.Minute

// ErrMinValidUnmeetable means the caller asked for a token that stays valid
// longer than the provider's tokens live: a mistake in the request, not a
// failure of the connection.
var ErrMinValidUnmeetable = errors.New("min-valid longer than the token lifetime")

// Handout is an access token handed to a caller.
type Handout struct {
	TokenSet
	// Warning is set when the token is handed out although the refresh it
	// called for did not happen (a failed refresh, a refused client, a
	// sign-in needed): it is still valid, but for less than was asked.
	Warning string
}

// Refresh refreshes now, unless another process refreshed since this keeper
// last looked (its result is taken instead). Concurrent calls share one
// refresh.
func (k *Keeper) Refresh(ctx context.Context) error {
	if err := k.ensureLoaded(ctx); err != nil {
		return err
	}
	return k.refresh(ctx, true, 0, nil)
}

// RefreshRefused refreshes because an API refused an access token (a 401):
// unless the current access token is no longer one that refused says was
// refused, since then someone refreshed already. Checked under the
// refresh lock, after re-reading the store, so a storm of 401s for one
// token costs one refresh, however they interleave with it.
func (k *Keeper) RefreshRefused(ctx context.Context, refused func(accessToken string) bool) error {
	if err := k.ensureLoaded(ctx); err != nil {
		return err
	}
	return k.refresh(ctx, true, 0, refused)
}

// refresh joins the in-flight refresh or starts one. The refresh itself runs
// detached from ctx: a caller that stops waiting must not cancel a request
// that the server may already have processed, since that would lose the
// rotated refresh token.
//
// A refresh that is not forced states its need: a token valid for minValid
// and not yet due (promise: minValid was explicit, so a token that covers
// it meets it, see meets). It ends without a call when the current token
// meets that need by the time it holds the lock, so a caller who saw the
// old token just before a shared refresh finished does not start a second
// one; and with errPromisesPending when a caller's refresh would revoke a
// token another process promised for longer than this one knew.
//
// A forced refresh (Refresh, RefreshRefused) and a caller's need longer
// than the current token lasts do not wait for promises: they may end one
// early at a server that revokes the previous access token.
func (k *Keeper) refresh(ctx context.Context, force bool, minValid time.Duration, refused func(string) bool) error {
	return k.refreshFor(ctx, force, minValid, false, false, refused)
}

// refreshFor is refresh for a caller's need: promise says it is one (an
// explicit min-valid), keep that the caller lets the promises made before
// run their course (the token it saw lasted its need).
func (k *Keeper) refreshFor(ctx context.Context, force bool, minValid time.Duration, promise, keep bool, refused func(string) bool) error {
	k.mu.Lock()
	f := k.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		k.flight = f
		if k.state == StateConnected {
			k.setStateLocked(StateRefreshing)
		}
		go func() {
			err := k.doRefresh(force, minValid, promise, keep, refused)
			k.mu.Lock()
			f.err = err
			k.flight = nil
			k.mu.Unlock()
			close(f.done)
		}()
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errPromisesPending: a caller's refresh was not made, since the stored
// tokens carry a promise that it would break; the caller waits for it.
var errPromisesPending = errors.New("the access token is promised to callers for longer")

func (k *Keeper) doRefresh(force bool, minValid time.Duration, promise, keep bool, refused func(string) bool) error {
	ctx := context.Background()
	lockCtx, cancel := context.WithTimeout(ctx, k.opt.LockTimeout)
	unlock, err := k.opt.Locker.Lock(lockCtx, k.conn.Name)
	cancel()
	if errors.Is(err, ErrStoreUnreachable) {
		// A shared store's lease: without it nobody may refresh; the
		// tokens held serve while they are valid.
		err = k.localFailure(fmt.Errorf("%s: not refreshed: %w", k.conn.Name, err),
			stepWith(nextstep.Wait, k.conn.Name, "the shared store cannot be reached; the valid tokens held are handed out meanwhile"))
		k.mu.Lock()
		k.storeDown = k.state == StateDegraded
		k.mu.Unlock()
		return err
	}
	if err != nil {
		return k.localFailure(fmt.Errorf("wait for another tokentray refreshing %s: %w", k.conn.Name, err), step(nextstep.StaleLock, k.conn.Name))
	}
	defer unlock()
	k.mu.Lock()
	k.storeDown = false
	k.mu.Unlock()

	// A newer token set that could not be saved holds the live refresh
	// token: save it before anything else, and never refresh past it.
	k.mu.Lock()
	unsaved, over := k.unsaved, k.unsavedOver
	k.mu.Unlock()
	var saveErr error
	if unsaved != nil {
		saveErr = k.opt.Store.SaveTokens(ctx, k.conn.Name, unsaved, over)
		if errors.Is(saveErr, ErrGenerationMoved) {
			// A sign-in or sign-out wrote since: the tokens held are of a
			// grant that is no longer this connection's, and are dropped,
			// never written over the newer ones.
			k.log.Warn("dropping refreshed tokens that were never saved: the stored tokens changed meanwhile", "err", saveErr)
			k.dropOvertaken(ctx, unsaved)
			k.mu.Lock()
			k.unsaved = nil
			k.mu.Unlock()
			unsaved = nil
		}
	}
	if unsaved != nil {
		if saveErr != nil {
			return k.localFailure(fmt.Errorf("the new tokens are still not saved: %w", saveErr), step(nextstep.KeepRunning, k.conn.Name))
		}
		if lease, shared := k.opt.Locker.(Lease); shared {
			k.settle(lease)
		}
		k.mu.Lock()
		k.unsaved = nil
		k.failures = 0
		k.adoptLocked(unsaved)
		k.setStateLocked(StateConnected)
		k.emitLocked(Event{Kind: EventRefreshed})
		k.mu.Unlock()
		k.tokensSaved(unsaved)
		return nil
	}

	// Re-read: another process (a CLI without the tray, or a second
	// keeper) may have refreshed while this one waited for the lock.
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if errors.Is(err, ErrNotStored) {
		stored, err = k.restoreDeleted(ctx, err)
	}
	switch {
	case errors.Is(err, ErrNotStored):
		if k.conn.Grant != GrantClientCredentials {
			k.mu.Lock()
			k.adoptLocked(nil)
			k.mu.Unlock()
			return withStep(fmt.Errorf("%s is not signed in (signed out elsewhere?): %w", k.conn.Name, ErrNeedsSignIn), step(nextstep.SignIn, k.conn.Name))
		}
	case err != nil:
		// Without reading the keyring we cannot know the live refresh token,
		// and a refresh now could not be saved either: wait for the keyring.
		return k.localFailure(err, stepWith(nextstep.UnlockKeyring, k.conn.Name, "The keyring could not be read."))
	}
	now := k.opt.Clock.Now()
	k.mu.Lock()
	if stored != nil && k.token != nil && !changedElsewhere(k.token, stored) && stored.Promised.After(k.token.Promised) {
		// The same tokens, promised by another process for longer.
		k.token = stored
	}
	if changedElsewhere(k.token, stored) {
		k.log.Info("adopting tokens refreshed by another process")
		k.adoptLocked(stored)
		if stored != nil && !stored.Dead && stored.ValidFor(now, 0) &&
			(force || now.Before(k.scheduled(stored))) {
			k.failures = 0
			k.setStateLocked(StateConnected)
			k.mu.Unlock()
			return nil
		}
	}
	current := k.token
	if refused != nil && current != nil && !current.Dead && current.ValidFor(now, 0) && !refused(current.AccessToken.Reveal()) {
		if k.state == StateRefreshing {
			k.setStateLocked(StateConnected)
		}
		k.mu.Unlock()
		return nil // a newer token than the refused one: someone refreshed
	}
	if !force && current != nil && !current.Dead && k.meets(current, now, minValid, promise) && !k.renewDue(current, now) {
		if k.state == StateRefreshing {
			k.setStateLocked(StateConnected)
		}
		k.mu.Unlock()
		return nil // already fresh enough: someone refreshed a moment ago
	}
	if !force && keep && current != nil && !current.Dead && current.ValidFor(now, 0) && now.Before(earliest(current.Promised, k.promiseCap(current))) {
		if k.state == StateRefreshing {
			k.setStateLocked(StateConnected)
		}
		k.mu.Unlock()
		return errPromisesPending
	}
	k.mu.Unlock()

	if current != nil && current.Dead {
		return fmt.Errorf("%s: the refresh token was rejected earlier: %w", k.conn.Name, ErrNeedsSignIn)
	}
	if k.conn.Grant != GrantClientCredentials && (current == nil || current.RefreshToken == "") {
		k.mu.Lock()
		next := step(nextstep.SignInAgain, k.conn.Name)
		k.adviseLocked("there is no refresh token", next)
		if current != nil {
			k.setStateLocked(StateNeedsReauth)
		}
		k.mu.Unlock()
		return withStep(fmt.Errorf("%s has no refresh token: %w", k.conn.Name, ErrNeedsSignIn), next)
	}

	secret, err := k.clientSecret(ctx)
	if errors.Is(err, ErrCredentialsRefused) {
		return k.clientRefusedError(err.Error(), NextStepOf(err))
	}
	if err != nil {
		return k.localFailure(err, nil)
	}
	fingerprint := k.clientFingerprint(secret)
	if current != nil && current.RefusedClient == fingerprint {
		// The provider refused exactly these client settings: sending them
		// again cannot help, and some providers count every refresh call
		// against the refresh token.
		k.mu.Lock()
		k.adoptAdviceLocked(current)
		next := current.LastNext
		if next == nil {
			// Kept by an older tokentray, in words: the status shows them;
			// the error names the step all the same.
			next = &nextstep.Step{Kind: nextstep.FixClient, Connection: k.conn.Name, KeepsRefreshToken: k.conn.Grant != GrantClientCredentials}
		}
		k.setStateLocked(StateClientRefused)
		k.mu.Unlock()
		return withStep(fmt.Errorf("%s: %s: %w", k.conn.Name, orUnknown(current.LastError), ErrCredentialsRefused), next)
	}
	conn, err := k.resolved(ctx)
	if err != nil {
		return k.discoveryFailed(current, err)
	}
	if conn, err = conn.forSecret(secret); err != nil {
		return k.clientRefusedError(err.Error(), NextStepOf(err))
	}
	key, kept, err := k.dpopKeyFor(current)
	if err != nil {
		return k.localFailure(err, stepWith(nextstep.SignInAgain, k.conn.Name, "The DPoP key kept with the tokens cannot be read; a new sign-in makes a new one."))
	}
	lease, shared := k.opt.Locker.(Lease)
	var lost *Intent
	if shared {
		var adopted bool
		current, lost, adopted, err = k.awaitIntent(ctx, lease, current)
		if err != nil || adopted {
			return err
		}
		// The end-to-end tests' build stops here: a holder paused past its
		// lease before the round trip that precedes its request.
		failpoint.Pause("before-intent")
		if err := k.intend(ctx, lease, current); err != nil {
			// The next holder refreshes, or this one once it holds the
			// lease again: the refresh token was not presented.
			return k.localFailure(err, stepWith(nextstep.Wait, k.conn.Name, "another tokentray may hold the lease on this connection now"))
		}
		// And here, for a holder killed with its intent recorded and its
		// request not sent (a pause here is the one gap, Lease step 2).
		failpoint.Pause("after-intent")
	}
	sent := k.opt.Clock.Now()
	callCtx, cancel := context.WithTimeout(ctx, k.callTimeout(current))
	tok, err := k.callTokenEndpoint(callCtx, conn, current, secret, key)
	cancel()
	if err != nil {
		err = k.refreshFailed(ctx, conn, current, fingerprint, err, lost)
		k.mu.Lock()
		unknown := k.lastErr != nil && k.lastErr.MaybeProcessed
		k.mu.Unlock()
		if shared && !unknown {
			// The provider answered: the refresh token was not rotated
			// (or is dead, as recorded), and nobody need wait for this
			// holder. Without an answer the intent stays.
			k.settle(lease)
		}
		return err
	}
	next := k.tokenSetFrom(tok, current, now)
	next.DPoPKey = kept
	if current != nil {
		// A new access token starts with no promise; the count of promise
		// writes goes on.
		next.PromiseVersion = current.PromiseVersion
	}
	prev := StoredGeneration(current)
	next.Generation = NextGeneration(prev, now)
	if !shared {
		return k.saveRefreshed(ctx, next, prev, time.Time{})
	}
	err = k.saveRefreshed(ctx, next, prev, sent.Add(k.rescueWindow(current)))
	if err == nil {
		k.settle(lease)
	}
	return err
}

// restoreDeleted handles a keyring that no longer has the tokens this keeper
// holds. Sign-outs go through the keeper, so an item that vanished was
// deleted by hand or by a keyring tool: the held refresh token is still
// live, and writing it back is what keeps the connection. With nothing live
// held it returns notStored unchanged.
func (k *Keeper) restoreDeleted(ctx context.Context, notStored error) (*TokenSet, error) {
	k.mu.Lock()
	held := k.token
	k.mu.Unlock()
	if held == nil || held.Dead || held.RefreshToken == "" {
		return nil, notStored
	}
	if err := k.opt.Store.SaveTokens(ctx, k.conn.Name, held, 0); err != nil {
		return nil, fmt.Errorf("the keyring item of %s was deleted outside tokentray and writing it back failed: %w", k.conn.Name, err)
	}
	msg := "the keyring item was deleted outside tokentray; the tokens held in memory were written back"
	k.log.Warn(msg)
	k.mu.Lock()
	k.emitLocked(Event{Kind: EventRestored, Error: msg, Next: step(nextstep.SignOutIfMeant, k.conn.Name)})
	k.mu.Unlock()
	return held, nil
}

// changedElsewhere reports whether the store holds something other than
// what this keeper last saw.
func changedElsewhere(mine, stored *TokenSet) bool {
	if mine == nil || stored == nil {
		return mine != stored
	}
	return StoredGeneration(mine) != StoredGeneration(stored) ||
		mine.RefreshToken != stored.RefreshToken || mine.AccessToken != stored.AccessToken || mine.Dead != stored.Dead
}

// saveRefreshed writes the new tokens to the store before anyone sees them,
// over generation prev: new tokens never replace tokens that another
// writer stored meanwhile. Until is the end of a shared store's rescue
// window (commit).
func (k *Keeper) saveRefreshed(ctx context.Context, next *TokenSet, prev uint64, until time.Time) error {
	err := k.commit(ctx, next, prev, until)
	if errors.Is(err, ErrGenerationMoved) {
		// A writer without the Locker, or, on a shared store, the next
		// holder that took this refresh over after its rescue window (this
		// process paused or was cut off): the result is dropped, never
		// written over theirs; the next look adopts them.
		k.log.Error("refreshed, but the stored tokens changed meanwhile; dropping this refresh's tokens", "err", err)
		k.dropOvertaken(ctx, next)
		return k.localFailure(fmt.Errorf("refreshed, but the new tokens were not saved: %w", err), nil)
	}
	if err != nil {
		k.mu.Lock()
		k.unsaved, k.unsavedOver = next, prev
		k.mu.Unlock()
		k.log.Error("new tokens could not be saved; holding them in memory", "err", err)
		return k.localFailure(fmt.Errorf("refreshed, but the new tokens could not be saved: %w", err), step(nextstep.KeepRunning, k.conn.Name))
	}
	k.mu.Lock()
	k.token = next
	k.failures, k.lastErr = 0, nil
	k.adviseLocked("", nil)
	k.setStateLocked(StateConnected)
	k.emitLocked(Event{Kind: EventRefreshed})
	k.mu.Unlock()
	k.log.Info("refreshed", "tokens", next)
	k.tokensSaved(next)
	return nil
}

// saveBookkeeping writes t, a token set as stored with bookkeeping
// changed (a failure's outcome, a promise, a marker), over its own
// generation: it never moves the generation, and is not written over new
// tokens stored meanwhile.
func (k *Keeper) saveBookkeeping(ctx context.Context, t *TokenSet) error {
	return k.opt.Store.SaveTokens(ctx, k.conn.Name, t, StoredGeneration(t))
}

// tokensSaved tells OnTokens about tokens that are now in the store.
func (k *Keeper) tokensSaved(t *TokenSet) {
	if k.opt.OnTokens != nil {
		k.opt.OnTokens(t)
	}
}

// endToTellLocked is the foreseen end of the refresh token that a person
// must hear of, and from when: one not told of yet that no refresh will
// move (a fixed end, or a renewable one while the keeper cannot refresh).
// Zero when there is none.
func (k *Keeper) endToTellLocked() (Forecast, time.Time) {
	f := k.conn.forecast(k.currentLocked())
	if f.End.IsZero() || SameEnd(f.End, k.warnedEnd) {
		return Forecast{}, time.Time{}
	}
	if f.Renewable && (k.state == StateConnected || k.state == StateRefreshing) {
		return Forecast{}, time.Time{}
	}
	return f, k.conn.warnAt(f)
}

// noteEndLocked sends EventRefreshTokenExpiring once when the refresh
// token's foreseen end comes within the warning time.
func (k *Keeper) noteEndLocked(now time.Time) {
	f, at := k.endToTellLocked()
	if at.IsZero() || now.Before(at) {
		return
	}
	k.warnedEnd, k.endToSave = f.End, f.End
	left := "has ended"
	if d := f.End.Sub(now); d > 0 {
		left = "ends in about " + duration.Approx(d)
	}
	msg := fmt.Sprintf("the refresh token %s, on %s (%s)", left, duration.EndDate(f.End), f.About)
	k.log.Warn("refresh token ending", "end", f.End, "about", f.About)
	k.emitLocked(Event{Kind: EventRefreshTokenExpiring, Error: msg, Next: ForecastStep(k.conn.Name, f)})
}

// saveEndWarned keeps with the stored tokens that end was told of, so that
// a restart does not tell it again even when no refresh saves them before
// (a refused client, a long-lived access token). Under the refresh lock,
// on the tokens as stored, as a failed refresh's outcome is recorded.
func (k *Keeper) saveEndWarned(ctx context.Context, end time.Time) {
	lockCtx, cancel := context.WithTimeout(ctx, k.opt.LockTimeout)
	unlock, err := k.opt.Locker.Lock(lockCtx, k.conn.Name)
	cancel()
	if err != nil {
		k.log.Warn("could not keep that the refresh token's end was told", "err", err)
		return
	}
	defer unlock()
	stored, err := k.opt.Store.LoadTokens(ctx, k.conn.Name)
	if err != nil || stored == nil || SameEnd(stored.EndWarned, end) || !SameEnd(k.conn.forecast(stored).End, end) {
		return
	}
	next := *stored
	next.EndWarned = end
	if err := k.saveBookkeeping(context.WithoutCancel(ctx), &next); err != nil {
		k.log.Warn("could not keep that the refresh token's end was told", "err", err)
		return
	}
	k.mu.Lock()
	if k.token != nil && !changedElsewhere(k.token, stored) {
		k.token = &next
	}
	k.mu.Unlock()
}

// endWarned is the end that ts's forecast was told of, if this keeper told
// of it: kept with the tokens, so a restart does not tell it again.
func (k *Keeper) endWarned(ts *TokenSet) time.Time {
	k.mu.Lock()
	w := k.warnedEnd
	k.mu.Unlock()
	if f := k.conn.forecast(ts); SameEnd(f.End, w) {
		return w
	}
	return time.Time{}
}

// renewDue reports whether t's refresh token should be used now so that
// its renewable end moves (an idle rule): a refresh that the access token
// alone would not call for yet.
func (k *Keeper) renewDue(t *TokenSet, now time.Time) bool {
	at := k.conn.renewAt(t)
	return !at.IsZero() && !now.Before(at)
}
