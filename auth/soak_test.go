package auth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// The soak: one keeper, its real scheduler (Run) on a simulated clock, an
// in-process OAuth server with single-use refresh tokens and reuse
// detection, and a tenth of all refresh calls faulted at random. Each cycle
// moves the clock to the keeper's own next due time and checks everything the
// keeper claims against what the server did.

// fault is what the soak server does to one refresh call.
type fault int

const (
	faultNone          fault = iota
	faultUnavailable         // 503 before processing
	faultTooMany             // 429 with Retry-After before processing
	faultHang                // no answer until the client gives up; not processed
	faultResetBefore         // connection reset before processing
	faultResetAfter          // processed, then the connection is reset
	faultTruncated           // processed, the JSON cut off mid-way
	faultGarbage             // processed, a 200 whose body is not JSON
	faultNoAccessToken       // processed, a 200 without access_token
	faultKinds
)

var faultNames = [...]string{"none", "503", "429 Retry-After", "hang past the timeout", "reset before processing",
	"reset after processing", "truncated JSON", "garbage body", "200 without access_token"}

func (f fault) String() string { return faultNames[f] }

// processedFirst reports whether the server retires the presented refresh
// token before the fault strikes: the answer carrying its successor is lost.
func (f fault) processedFirst() bool { return f >= faultResetAfter }

const soakRetryAfter = 120 * time.Second

// soakCall is one refresh call as the server saw it.
type soakCall struct {
	id        int
	rt        string
	fault     fault
	processed bool // the presented refresh token was live and is now retired
	reuse     bool // the presented refresh token had been retired before
	issuedAT  string
	issuedRT  string
}

type soakServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	rng      *rand.Rand
	rate     float64
	seq      int
	family   map[string]int  // refresh token -> grant
	live     map[string]bool // usable refresh tokens
	retired  map[string]bool // refresh tokens the server has processed
	codes    map[string]string
	calls    []soakCall
	lifetime int
}

func newSoakServer(t *testing.T, rng *rand.Rand, rate float64) *soakServer {
	s := &soakServer{rng: rng, rate: rate, family: map[string]int{}, live: map[string]bool{}, retired: map[string]bool{},
		codes: map[string]string{}, lifetime: 5400}
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", s.authorize)
	mux.HandleFunc("/token", s.token)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *soakServer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.seq++
	code := "code-" + strconv.Itoa(s.seq)
	s.codes[code] = q.Get("code_challenge")
	s.mu.Unlock()
	http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+q.Get("state"), http.StatusFound)
}

func (s *soakServer) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost { // a sign-in's check that the endpoint answers
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("grant_type") == "authorization_code" {
		s.exchange(w, r)
		return
	}
	s.mu.Lock()
	f := faultNone
	if s.rng.Float64() < s.rate {
		f = fault(1 + s.rng.IntN(int(faultKinds)-1))
	}
	c := soakCall{id: len(s.calls), rt: r.PostForm.Get("refresh_token"), fault: f}
	if f.processedFirst() || f == faultNone {
		switch {
		case s.live[c.rt]:
			delete(s.live, c.rt)
			s.retired[c.rt] = true
			c.processed = true
			s.seq++
			c.issuedAT, c.issuedRT = fmt.Sprintf("at-%d", s.seq), fmt.Sprintf("rt-%d", s.seq)
			s.live[c.issuedRT] = true
			s.family[c.issuedRT] = s.family[c.rt]
		case s.retired[c.rt]:
			// Reuse detection: a retired token presented again revokes its
			// whole grant, as oidc-provider and Procore do.
			c.reuse = true
			for rt, g := range s.family {
				if g == s.family[c.rt] {
					delete(s.live, rt)
				}
			}
		}
	}
	s.calls = append(s.calls, c)
	lifetime := s.lifetime
	s.mu.Unlock()

	w.Header().Set("X-Soak-Call", strconv.Itoa(c.id))
	if !c.processed && (f == faultNone || f.processedFirst()) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "refresh token is invalid, expired or revoked"})
		return
	}
	body, _ := json.Marshal(map[string]any{"access_token": c.issuedAT, "token_type": "bearer", "expires_in": lifetime, "refresh_token": c.issuedRT})
	switch f {
	case faultNone:
		writeJSON(w, http.StatusOK, json.RawMessage(body))
	case faultUnavailable:
		http.Error(w, "<html>down for maintenance</html>", http.StatusServiceUnavailable)
	case faultTooMany:
		w.Header().Set("Retry-After", strconv.Itoa(int(soakRetryAfter/time.Second)))
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case faultHang:
		// The headers go out, the body never comes: the client's transport
		// below turns this into the timeout the keeper would see.
		w.Header().Set("X-Soak-Hang", "1")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case faultResetBefore, faultResetAfter:
		reset(w)
	case faultTruncated:
		conn := hijack(w)
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:len(body)/2])
		_ = conn.Close()
	case faultGarbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
	case faultNoAccessToken:
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "bearer", "expires_in": lifetime})
	}
}

func (s *soakServer) exchange(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	challenge, ok := s.codes[r.PostForm.Get("code")]
	delete(s.codes, r.PostForm.Get("code"))
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
		s.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	s.seq++
	at, rt := fmt.Sprintf("at-%d", s.seq), fmt.Sprintf("rt-%d", s.seq)
	s.live[rt] = true
	s.family[rt] = s.seq // a new grant
	lifetime := s.lifetime
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": at, "token_type": "bearer", "expires_in": lifetime, "refresh_token": rt})
}

func (s *soakServer) callsSince(n int) []soakCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]soakCall(nil), s.calls[n:]...)
}

func (s *soakServer) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *soakServer) isLive(rt string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[rt]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func hijack(w http.ResponseWriter) net.Conn {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	return conn
}

// reset closes the connection with a TCP RST.
func reset(w http.ResponseWriter) {
	conn := hijack(w)
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// deliveries records which calls' answers reached the keeper whole. An
// answer can also be lost to the keeper's own request timeout on a slow
// machine; the soak counts that like any other lost answer.
type deliveries struct {
	base http.RoundTripper
	mu   sync.Mutex
	got  map[int]bool
}

func (d *deliveries) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := d.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("X-Soak-Hang") != "" {
		// A hang past the keeper's request timeout, without waiting for a
		// real timer: a short real timeout also cut off answers that a busy
		// machine was merely slow to deliver, so that a due point saw no
		// call at all.
		_ = resp.Body.Close()
		return nil, os.ErrDeadlineExceeded // as a read deadline reports it
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if id, err := strconv.Atoi(resp.Header.Get("X-Soak-Call")); err == nil {
		d.mu.Lock()
		d.got[id] = true
		d.mu.Unlock()
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (d *deliveries) delivered(id int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.got[id]
}

// parkClock counts After calls: the scheduler calls After exactly once each
// time it parks, so a new call means it has finished reacting to a move.
type parkClock struct {
	*fakeclock.Clock
	mu    sync.Mutex
	calls int
	more  chan struct{}
}

func (c *parkClock) After(d time.Duration) <-chan time.Time {
	ch := c.Clock.After(d)
	c.mu.Lock()
	c.calls++
	close(c.more)
	c.more = make(chan struct{})
	c.mu.Unlock()
	return ch
}

func (c *parkClock) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func (c *parkClock) waitCount(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		calls, more := c.calls, c.more
		c.mu.Unlock()
		if calls >= n {
			return
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("%s: the scheduler did not park again within 10 s", what)
		}
	}
}

func soakSeed(t *testing.T) uint64 {
	if v := os.Getenv("TOKENTRAY_SOAK_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TOKENTRAY_SOAK_SEED=%q is not a number", v)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

func TestSoakTenThousandFaultedRefreshCycles(t *testing.T) {
	cycles := 10_000
	if testing.Short() {
		cycles = 1_000
	}
	seed := soakSeed(t)
	t.Logf("seed %d (rerun with TOKENTRAY_SOAK_SEED=%d)", seed, seed)
	srv := newSoakServer(t, rand.New(rand.NewPCG(seed, 1)), 0.10)
	jitter := rand.New(rand.NewPCG(seed, 2))

	port := freePort(t)
	ru, err := auth.ParseRedirectURI(fmt.Sprintf("http://127.0.0.1:%d/callback", port))
	if err != nil {
		t.Fatal(err)
	}
	generic, _ := auth.LookupPreset("generic")
	conn := &auth.Connection{Name: "soak", Provider: generic, Grant: auth.GrantAuthorizationCode, ClientID: "soak-client",
		RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{AuthURL: srv.srv.URL + "/authorize", TokenURL: srv.srv.URL + "/token"}}
	store := auth.NewMemoryStore()
	clock := &parkClock{Clock: fakeclock.New(time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC)), more: make(chan struct{})}
	recorder := &deliveries{base: http.DefaultTransport.(*http.Transport).Clone(), got: map[int]bool{}}
	browser := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	var jitterMu sync.Mutex
	k := auth.NewKeeper(conn, auth.KeeperOptions{
		Store: store, Locker: &auth.ProcessLocker{}, Clock: clock,
		HTTPClient:     &http.Client{Transport: recorder},
		RequestTimeout: time.Minute, // never reached: the hang fault is a timeout error from the transport
		Jitter: func() float64 {
			jitterMu.Lock()
			defer jitterMu.Unlock()
			return jitter.Float64()
		},
		OpenBrowser: func(url string) error {
			go func() {
				if resp, err := browser.Get(url); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}()
			return nil
		},
	})
	events, unsubscribe := k.Subscribe()
	defer unsubscribe()
	tracker := alerts.NewTracker()
	alertCount := map[alerts.Kind]int{}
	drain := func() (got []alerts.Kind) {
		for {
			select {
			case e := <-events:
				if a, ok := tracker.Observe(e); ok {
					alertCount[a.Kind]++
					got = append(got, a.Kind)
				}
			default:
				return got
			}
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- k.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()
	clock.waitCount(t, 1, "start")

	signIn := func(step int) {
		t.Helper()
		parked := clock.count()
		if err := k.Login(ctx, auth.LoginOptions{}); err != nil {
			t.Fatalf("cycle %d: sign-in: %v", step, err)
		}
		// The sign-in's own timeout is one After, the scheduler's re-park the other.
		clock.waitCount(t, parked+2, "after a sign-in")
	}
	signIn(0)
	drain()

	var (
		faults       [faultKinds]int
		lostByFault  [faultKinds]int
		lostToTimer  int
		reuses       int
		signIns      = 1
		successes    int
		pendingLost  = false // the stored refresh token died with a lost answer
		started      = clock.Now()
		wallStart    = time.Now()
		lifetime     = time.Duration(srv.lifetime) * time.Second
		refreshEvery = time.Duration(float64(lifetime) * 0.8)
	)
	for step := 1; step <= cycles; step++ {
		st := k.Status()
		if st.State == auth.StateNeedsReauth {
			signIn(step)
			signIns++
			drain()
			pendingLost = false
			if st := k.Status(); st.State != auth.StateConnected {
				t.Fatalf("cycle %d: after a sign-in the state is %s", step, st.State)
			}
			step-- // a sign-in is not a refresh cycle
			continue
		}
		now := clock.Now()
		due := st.NextRefresh
		if due.IsZero() || due.Before(now) {
			t.Fatalf("cycle %d: state %s, next refresh %v at %v: the scheduler has nothing due or missed it", step, st.State, due, now)
		}
		before := srv.callCount()
		parked := clock.count()
		clock.Set(due)
		clock.waitCount(t, parked+1, fmt.Sprintf("cycle %d", step))
		calls := srv.callsSince(before)
		if len(calls) != 1 {
			t.Fatalf("cycle %d: %d token calls at one due point, want exactly 1: %+v", step, len(calls), calls)
		}
		c := calls[0]
		got := drain()
		faults[c.fault]++
		st = k.Status()
		stored, err := store.LoadTokens(context.Background(), conn.Name)
		if err != nil {
			t.Fatalf("cycle %d: nothing stored: %v", step, err)
		}

		switch {
		case c.reuse:
			// Only a refresh token whose successor was lost in transit may
			// be presented again, and it ends in one call for a person.
			if !pendingLost {
				t.Fatalf("cycle %d: refresh token %s presented twice without a lost answer", step, c.rt)
			}
			reuses++
			if st.State != auth.StateNeedsReauth || !st.NextRefresh.IsZero() {
				t.Fatalf("cycle %d: after the reuse the state is %s with next refresh %v, want needs_reauth and nothing scheduled", step, st.State, st.NextRefresh)
			}
			if len(got) != 1 || got[0] != alerts.NeedsReauth {
				t.Fatalf("cycle %d: alerts %v, want exactly one needs_reauth", step, got)
			}
		case pendingLost && c.processed:
			t.Fatalf("cycle %d: a retired refresh token was accepted", step)
		case c.processed && c.fault == faultNone && recorder.delivered(c.id):
			successes++
			if st.State != auth.StateConnected || stored.RefreshToken.Reveal() != c.issuedRT || stored.AccessToken.Reveal() != c.issuedAT {
				t.Fatalf("cycle %d: after a good answer: state %s, stored tokens are not the issued ones", step, st.State)
			}
			if !st.AccessExpiry.Equal(due.Add(lifetime)) || !st.NextRefresh.Equal(due.Add(refreshEvery)) {
				t.Fatalf("cycle %d: expiry %v and next refresh %v, want %v and %v", step, st.AccessExpiry, st.NextRefresh, due.Add(lifetime), due.Add(refreshEvery))
			}
			tok, err := k.Token(ctx, 0)
			if err != nil || tok.AccessToken.Reveal() != c.issuedAT {
				t.Fatalf("cycle %d: Token() = %v, %v; want the issued access token", step, tok, err)
			}
		case c.processed:
			// The server rotated, the answer never arrived whole.
			if c.fault == faultNone {
				lostToTimer++
			} else {
				lostByFault[c.fault]++
			}
			pendingLost = true
			if st.State != auth.StateDegraded || stored.RefreshToken.Reveal() != c.rt {
				t.Fatalf("cycle %d (%s): state %s, want degraded with the presented token kept", step, c.fault, st.State)
			}
		default:
			// Refused before processing: the presented token is still live.
			if st.State != auth.StateDegraded || stored.RefreshToken.Reveal() != c.rt {
				t.Fatalf("cycle %d (%s): state %s, want degraded with the presented token kept", step, c.fault, st.State)
			}
			if !pendingLost && !srv.isLive(c.rt) {
				t.Fatalf("cycle %d (%s): the kept refresh token is not live at the server", step, c.fault)
			}
			minWait := 2500 * time.Millisecond
			if c.fault == faultTooMany {
				minWait = soakRetryAfter
			}
			if st.NextRefresh.Before(due.Add(minWait)) {
				t.Fatalf("cycle %d (%s): retry at %v, sooner than %v after the failure", step, c.fault, st.NextRefresh.Sub(due), minWait)
			}
		}
		if c.fault == faultNone && !c.reuse && !c.processed && !pendingLost {
			t.Fatalf("cycle %d: the server refused the keeper's live token", step)
		}
	}

	lost := lostToTimer
	for _, n := range lostByFault {
		lost += n
	}
	injected := 0
	for f := faultUnavailable; f < faultKinds; f++ {
		injected += faults[f]
	}
	simulated := clock.Now().Sub(started)
	t.Logf("%d refresh cycles over %.0f simulated days in %s: %d good refreshes, %d faults injected",
		cycles, simulated.Hours()/24, time.Since(wallStart).Round(time.Millisecond), successes, injected)
	for f := faultUnavailable; f < faultKinds; f++ {
		t.Logf("  %-26s %4d injected, %4d refresh tokens lost", f, faults[f], lostByFault[f])
	}
	t.Logf("  answers lost to the keeper's own timeout: %d", lostToTimer)
	t.Logf("lost refresh tokens %d, reuses %d, needs_reauth notifications %d, recovered %d, expired %d, sign-ins %d",
		lost, reuses, alertCount[alerts.NeedsReauth], alertCount[alerts.Recovered], alertCount[alerts.Expired], signIns)

	// Every lost answer ends in exactly one notification, found at the next
	// call (the last one may still be waiting for it).
	if reuses != lost && reuses != lost-1 {
		t.Errorf("%d lost answers but %d reuses: a lost refresh token went unnoticed or a token was reused without one", lost, reuses)
	}
	if alertCount[alerts.NeedsReauth] != reuses {
		t.Errorf("%d needs_reauth notifications for %d dead refresh tokens, want one each", alertCount[alerts.NeedsReauth], reuses)
	}
	if alertCount[alerts.Recovered] != signIns-1 {
		t.Errorf("%d recovered notifications for %d sign-ins after a dead refresh token", alertCount[alerts.Recovered], signIns-1)
	}
	if injected < cycles/20 {
		t.Errorf("only %d faults injected in %d cycles; the soak is not faulting", injected, cycles)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
