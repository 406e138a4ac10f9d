package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
)

// shortLived signs the rig in with tokens of the given lifetime.
func (r *rig) shortLived(lifetime time.Duration) string {
	r.srv.mu.Lock()
	r.srv.lifetime = int(lifetime / time.Second)
	r.srv.mu.Unlock()
	rt := r.srv.issueRefreshToken()
	now := r.clock.Now()
	r.store.put(r.conn.Name, &TokenSet{AccessToken: "at-initial", TokenType: "bearer", RefreshToken: Secret(rt),
		ObtainedAt: now, Lifetime: lifetime, RefreshTokenSince: now})
	if err := r.k.Load(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	return rt
}

func TestThePlainTokenCallFitsShortLifetimes(t *testing.T) {
	r := newRig(t)
	r.shortLived(60 * time.Second) // default margin: min(2 min, 20 % of 60 s) = 12 s; refresh at 48 s
	r.clock.Advance(30 * time.Second)
	tok, err := r.k.Token(context.Background(), DefaultMinValid)
	if err != nil || tok.AccessToken != "at-initial" || tok.Warning != "" {
		t.Fatalf("at 30 s: %v, %v; want the held token, no refresh", tok, err)
	}
	r.clock.Advance(8 * time.Second) // 38 s + 12 s reaches past the refresh at 48 s
	tok = r.tokenAfterTheEarlierPromises(DefaultMinValid, 10*time.Second)
	if tok.AccessToken == "at-initial" || r.srv.refreshCount() != 1 {
		t.Fatalf("at 38 s: %v after %d refreshes; want a new token", tok, r.srv.refreshCount())
	}
	r.noReuse()
}

// tokenAfterTheEarlierPromises calls Token, which must wait (on the clock)
// for the tokens handed out before to run their course without refreshing,
// and after the clock moves by wait, hand out a new token.
func (r *rig) tokenAfterTheEarlierPromises(minValid, wait time.Duration) *Handout {
	r.t.Helper()
	type result struct {
		tok *Handout
		err error
	}
	done := make(chan result, 1)
	before := r.srv.refreshCount()
	go func() {
		tok, err := r.k.Token(context.Background(), minValid)
		done <- result{tok, err}
	}()
	if !r.clock.BlockUntil(1, 30*time.Second) {
		r.t.Fatal("Token did not wait for the earlier promises")
	}
	select {
	case res := <-done:
		r.t.Fatalf("Token answered without waiting: %+v, %v", res.tok, res.err)
	default:
	}
	if n := r.srv.refreshCount(); n != before {
		r.t.Fatalf("refreshed while tokens handed out before were still promised (%d calls)", n-before)
	}
	r.clock.Advance(wait)
	res := <-done
	if res.err != nil {
		r.t.Fatal(res.err)
	}
	return res.tok
}

// A refresh that a caller asks for must not revoke a token handed out a
// moment before (Hydra revokes the previous access token at each refresh):
// the keeper that hands out every token waits just as long as it promised.
func TestATokenHandedOutSurvivesTheNextCallersRefresh(t *testing.T) {
	r := newRig(t)
	r.k.opt.OnlyHolder = true
	r.shortLived(60 * time.Second) // margin 12 s, refresh at 48 s
	r.clock.Advance(30 * time.Second)
	first, err := r.k.Token(context.Background(), DefaultMinValid) // promised until 42 s
	if err != nil || first.AccessToken != "at-initial" {
		t.Fatal(first, err)
	}
	r.clock.Advance(8 * time.Second) // 38 s: the next caller's 12 s cross 48 s
	next := r.tokenAfterTheEarlierPromises(DefaultMinValid, 4*time.Second)
	if next.AccessToken == first.AccessToken {
		t.Fatal("the second caller got the old token")
	}
	// Without an earlier caller, a caller refreshes at once.
	r.clock.Advance(38 * time.Second) // 80 s: 12 s cross the new token's refresh at 90 s
	if tok, err := r.k.Token(context.Background(), DefaultMinValid); err != nil || tok.AccessToken == next.AccessToken {
		t.Fatalf("no promise outstanding: %v, %v; want an immediate refresh", tok, err)
	}
}

func TestAMinValidLongerThanTheLifetimeIsAUsageError(t *testing.T) {
	r := newRig(t)
	r.shortLived(60 * time.Second)
	_, err := r.k.Token(context.Background(), 2*time.Minute)
	if !errors.Is(err, ErrMinValidUnmeetable) || !strings.Contains(err.Error(), "valid for 1m0s") {
		t.Fatalf("err = %v, want ErrMinValidUnmeetable naming the 1m0s lifetime", err)
	}
	if r.srv.refreshCount() != 0 {
		t.Fatal("an impossible request spent a refresh token")
	}
	// When the grant is dead, that is what a person must hear first.
	r.srv.then(replyInvalidGrant)
	r.clock.Advance(50 * time.Second)
	_ = r.k.Refresh(context.Background())
	if _, err := r.k.Token(context.Background(), 2*time.Minute); !errors.Is(err, ErrNeedsSignIn) || errors.Is(err, ErrMinValidUnmeetable) {
		t.Fatalf("in needs_reauth: err = %v, want a sign-in needed", err)
	}
}

func TestAnOutageDoesNotTakeAValidTokenAway(t *testing.T) {
	r := newRig(t)
	r.shortLived(60 * time.Second)
	r.srv.then(replyUnavailable, replyUnavailable)
	r.clock.Advance(50 * time.Second) // due, 10 s left
	tok, err := r.k.Token(context.Background(), DefaultMinValid)
	if err != nil || tok.AccessToken != "at-initial" || !strings.Contains(tok.Warning, "HTTP 503") {
		t.Fatalf("during a 503: %+v, %v; want the held token with a warning", tok, err)
	}
	// An explicit promise that the held token cannot keep is refused.
	_, err = r.k.Token(context.Background(), 15*time.Second)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "expires at") {
		t.Fatalf("--min-valid 15s with 10 s left: err = %v, want ErrUnreachable saying when it expires", err)
	}
	// One that it can keep is kept.
	if tok, err := r.k.Token(context.Background(), 5*time.Second); err != nil || tok.AccessToken != "at-initial" {
		t.Fatalf("--min-valid 5s with 10 s left: %v, %v", tok, err)
	}
	if n := r.srv.refreshCount(); n != 1 {
		t.Fatalf("%d refresh calls during the backoff, want 1", n)
	}
	r.clock.Advance(11 * time.Second)
	if _, err := r.k.Token(context.Background(), DefaultMinValid); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("expired during the outage: err = %v, want ErrUnreachable", err)
	}
}

func TestACallerWhoseWindowHoldsTheScheduledRefreshGetsTheNewToken(t *testing.T) {
	r := newRig(t)
	r.shortLived(60 * time.Second) // refresh at 48 s
	r.clock.Advance(45 * time.Second)
	// 6 s from 45 s crosses 48 s: the server would revoke a token handed out
	// now when tokentray refreshes three seconds later. Another process may
	// have handed the current one out until 48 s: wait for that, then refresh.
	tok := r.tokenAfterTheEarlierPromises(6*time.Second, 3*time.Second)
	if tok.AccessToken == "at-initial" {
		t.Fatalf("got %v; want the refreshed token", tok)
	}
	if due := r.k.Status().NextRefresh; !due.After(r.clock.Now().Add(6 * time.Second)) {
		t.Fatalf("the next scheduled refresh %v falls inside the 6 s just promised", due)
	}
}

func TestARefusedClientKeepsTheRefreshTokenAndANewSecretRecoversIt(t *testing.T) {
	r := newRig(t)
	rt := r.signedIn()
	r.clock.Advance(80 * time.Minute)
	r.srv.then(replyInvalidClient)
	err := r.k.Refresh(context.Background())
	if !errors.Is(err, ErrCredentialsRefused) {
		t.Fatalf("err = %v", err)
	}
	st := r.k.Status()
	if st.State != StateClientRefused || !st.HasRefreshToken || st.Next == nil || st.Next.Kind != nextstep.FixClient || !st.Next.KeepsRefreshToken {
		t.Fatalf("status %+v", st)
	}
	// The same client settings are not sent again: nothing at the server.
	calls := r.srv.refreshCount()
	if err := r.k.Refresh(context.Background()); !errors.Is(err, ErrCredentialsRefused) || r.srv.refreshCount() != calls {
		t.Fatalf("a retry with the refused secret: %v, %d calls (was %d)", err, r.srv.refreshCount(), calls)
	}
	// Another process sees the same state from the store.
	other := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock})
	if err := other.Load(context.Background()); err != nil || other.Status().State != StateClientRefused {
		t.Fatalf("another process: %v, %s", err, other.Status().State)
	}
	// A new secret: the kept refresh token is used, no sign-in.
	_ = r.store.SetClientSecret(context.Background(), r.conn.Name, "s3cret-fixed")
	if err := r.k.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh with the new secret: %v", err)
	}
	r.srv.mu.Lock()
	presented := r.srv.presented[rt]
	r.srv.mu.Unlock()
	if st := r.k.Status(); st.State != StateConnected || presented == 0 {
		t.Fatalf("after the new secret: %s, kept refresh token presented %d times", st.State, presented)
	}
	// And a process started after the fix does not report the old refusal.
	fresh := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock})
	if err := fresh.Load(context.Background()); err != nil || fresh.Status().State != StateConnected {
		t.Fatalf("a new process after the fix: %v, %s", err, fresh.Status().State)
	}
}

func TestANewSecretClearsARefusalWhenTheKeeperStarts(t *testing.T) {
	r := newRig(t)
	r.signedIn()
	r.clock.Advance(80 * time.Minute)
	r.srv.then(replyInvalidClient)
	_ = r.k.Refresh(context.Background())
	_ = r.store.SetClientSecret(context.Background(), r.conn.Name, "s3cret-fixed")
	restarted := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock})
	if err := restarted.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := restarted.Status(); st.State == StateClientRefused {
		t.Fatalf("a keeper started after a new secret still says %s", st.State)
	}
	if _, err := restarted.Token(context.Background(), DefaultMinValid); err != nil {
		t.Fatalf("token after the fix: %v", err)
	}
}

func TestTheLastFailureIsSeenByEveryProcess(t *testing.T) {
	r := newRig(t)
	r.signedIn()
	r.clock.Advance(91 * time.Minute) // expired
	r.srv.then(replyUnavailable)
	if err := r.k.Refresh(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Fatal(err)
	}
	other := NewKeeper(r.conn, KeeperOptions{Store: r.store, Locker: &memLocker{}, Clock: r.clock})
	if err := other.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := other.Status()
	if st.State != StateDegraded || st.Usable || !strings.Contains(st.LastError, "HTTP 503") || st.Next == nil || st.Next.Kind != nextstep.Wait {
		t.Fatalf("another process sees %+v", st)
	}
	// It respects the backoff the failing process chose.
	if _, err := other.Token(context.Background(), DefaultMinValid); !errors.Is(err, ErrUnreachable) || r.srv.refreshCount() != 1 {
		t.Fatalf("err = %v after %d calls; want no call during the backoff", err, r.srv.refreshCount())
	}
	if stored := r.store.stored(r.conn.Name); strings.Contains(fmt.Sprint(stored.LastError, stored.LastHint, *stored.LastNext), "rt-") {
		t.Fatal("a token reached the recorded error")
	}
}

// methodServer answers token requests for client "c1" / secret "s1" only
// with the client authentication method it was told, and records requests.
type methodServer struct {
	srv    *httptest.Server
	method string
	mu     sync.Mutex
	seen   []*http.Request
	forms  []string
	issuer string
	meta   map[string]any
}

func newMethodServer(t *testing.T, method string) *methodServer {
	m := &methodServer{method: method}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		m.mu.Lock()
		m.seen = append(m.seen, r)
		m.forms = append(m.forms, r.PostForm.Encode())
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if used := clientAuthMethod(r); used != m.method {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "The OAuth 2.0 Client supports client authentication method '" + m.method + "', but method '" + used + "' was requested."})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-new", "token_type": "bearer", "expires_in": 60, "refresh_token": "rt-new"})
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(m.meta)
	})
	m.srv = httptest.NewServer(mux)
	t.Cleanup(m.srv.Close)
	m.issuer = m.srv.URL + "/"
	m.meta = map[string]any{"issuer": m.issuer, "authorization_endpoint": m.srv.URL + "/authorize", "token_endpoint": m.srv.URL + "/token",
		"revocation_endpoint": m.srv.URL + "/revoke", "userinfo_endpoint": m.srv.URL + "/userinfo",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic", "private_key_jwt", "none"}}
	return m
}

func (m *methodServer) keeper(t *testing.T, conn *Connection, secret Secret) (*Keeper, *memStore) {
	store := newMemStore()
	if secret != "" {
		_ = store.SetClientSecret(context.Background(), conn.Name, secret)
	}
	now := time.Now()
	store.put(conn.Name, &TokenSet{AccessToken: "at-old", RefreshToken: "rt-old", ObtainedAt: now.Add(-time.Hour), Lifetime: time.Hour + time.Second})
	k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &memLocker{}})
	if err := k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k, store
}

func genericConn(name string) *Connection {
	return &Connection{Name: name, Provider: &generic, Grant: GrantAuthorizationCode, ClientID: "c1", RefreshAt: 0.8}
}

func TestTheClientAuthenticationMethodIsTheConnections(t *testing.T) {
	for _, tc := range []struct {
		name, configured, server string
		secret                   Secret
	}{
		{"a secret without a method is sent as client_secret_basic", "", AuthMethodBasic, "s1"},
		{"client_secret_post sends it in the body", AuthMethodPost, AuthMethodPost, "s1"},
		{"no secret and no method is a public client", "", AuthMethodNone, ""},
		{"none never sends a stored secret", AuthMethodNone, AuthMethodNone, "s1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMethodServer(t, tc.server)
			conn := genericConn("m")
			conn.AuthMethod = tc.configured
			conn.Endpoints = Endpoints{AuthURL: m.srv.URL + "/authorize", TokenURL: m.srv.URL + "/token"}
			k, _ := m.keeper(t, conn, tc.secret)
			if err := k.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(m.seen) != 1 || strings.Contains(m.forms[0], "s1") && tc.server != AuthMethodPost {
				t.Fatalf("%d requests, form %q", len(m.seen), m.forms)
			}
		})
	}
}

func TestAWrongMethodIsRefusedOnceWithAHintNamingTheRightOne(t *testing.T) {
	m := newMethodServer(t, AuthMethodBasic)
	conn := genericConn("m")
	conn.AuthMethod = AuthMethodPost
	conn.Endpoints = Endpoints{AuthURL: m.srv.URL + "/authorize", TokenURL: m.srv.URL + "/token"}
	k, store := m.keeper(t, conn, "s1")
	err := k.Refresh(context.Background())
	if !errors.Is(err, ErrCredentialsRefused) {
		t.Fatalf("err = %v", err)
	}
	if st := k.Status(); st.Next == nil || st.Next.Kind != nextstep.FixClient || !strings.Contains(st.Next.Cause, `token_endpoint_auth_method = "client_secret_basic"`) {
		t.Fatalf("next %+v does not name the method the server asked for", st.Next)
	}
	// Never retried with the other method: one request, the refresh token kept.
	m.mu.Lock()
	n := len(m.seen)
	m.mu.Unlock()
	if n != 1 || store.stored("m").RefreshToken != "rt-old" || store.stored("m").Dead {
		t.Fatalf("%d requests; stored %v", n, store.stored("m"))
	}
}

func TestAnIssuerAloneIsEnough(t *testing.T) {
	m := newMethodServer(t, AuthMethodBasic)
	conn := genericConn("d")
	conn.Discover = true
	conn.Endpoints = Endpoints{Issuer: m.issuer}
	k, _ := m.keeper(t, conn, "s1")
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh through discovered endpoints with the discovered method: %v", err)
	}
	ep := k.Status().Endpoints
	if ep.TokenURL != m.srv.URL+"/token" || ep.RevokeURL != m.srv.URL+"/revoke" || ep.CheckURL != m.srv.URL+"/userinfo" || ep.AuthURL != m.srv.URL+"/authorize" {
		t.Fatalf("status endpoints %+v", ep)
	}
	// Set URLs win over discovered ones.
	conn2 := genericConn("d2")
	conn2.Discover = true
	conn2.Endpoints = Endpoints{Issuer: m.issuer, CheckURL: "https://api.example.com/me"}
	k2, _ := m.keeper(t, conn2, "s1")
	if err := k2.Resolve(context.Background()); err != nil || k2.Endpoints().CheckURL != "https://api.example.com/me" {
		t.Fatalf("override lost: %v %+v", err, k2.Endpoints())
	}
}

func TestDiscoveryFailuresSayWhatToDo(t *testing.T) {
	m := newMethodServer(t, AuthMethodBasic)
	m.meta["issuer"] = "https://elsewhere.example.com/"
	if _, err := Discover(context.Background(), http.DefaultClient, m.issuer); !errors.Is(err, ErrDiscovery) || !strings.Contains(err.Error(), "elsewhere") {
		t.Fatalf("issuer mismatch: %v", err)
	}
	_, err := Discover(context.Background(), http.DefaultClient, "http://127.0.0.1:1/")
	if !errors.Is(err, ErrDiscovery) || !strings.Contains(err.Error(), "set auth_url and token_url") {
		t.Fatalf("unreachable issuer: %v", err)
	}
	// A refresh that cannot discover is a transient failure, the tokens kept.
	conn := genericConn("d")
	conn.Discover = true
	conn.Endpoints = Endpoints{Issuer: "http://127.0.0.1:1/"}
	k, _ := m.keeper(t, conn, "s1")
	if err := k.Refresh(context.Background()); !errors.Is(err, ErrUnreachable) || k.Status().State != StateDegraded {
		t.Fatalf("refresh without metadata: %v, %s", err, k.Status().State)
	}
}

func TestExtraParametersReachTheAuthorizeAndEveryTokenRequest(t *testing.T) {
	m := newMethodServer(t, AuthMethodBasic)
	conn := genericConn("p")
	conn.Endpoints = Endpoints{AuthURL: m.srv.URL + "/authorize", TokenURL: m.srv.URL + "/token"}
	conn.AuthParams = map[string]string{"audience": "https://api.example.com", "prompt": "consent"}
	conn.TokenParams = map[string]string{"resource": "https://api.example.com"}
	k, _ := m.keeper(t, conn, "s1")
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	form := m.forms[0]
	m.mu.Unlock()
	if !strings.Contains(form, "resource=https%3A%2F%2Fapi.example.com") || !strings.Contains(form, "grant_type=refresh_token") {
		t.Fatalf("refresh form %q lacks the token parameter", form)
	}
	f := &LoopbackFlow{Conn: conn}
	var opened string
	f.OpenBrowser = func(u string) error { opened = u; return errors.New("no browser in this test") }
	ru, _ := ParseRedirectURI(fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t)))
	conn.RedirectURI = ru
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _ = f.Run(ctx)
	if !strings.Contains(opened, "audience=https%3A%2F%2Fapi.example.com") || !strings.Contains(opened, "prompt=consent") {
		t.Fatalf("authorize URL %q lacks the parameters", opened)
	}
}

func TestSignInStopsBeforeTheBrowserWhenItCannotSucceed(t *testing.T) {
	opened := 0
	open := func(string) error { opened++; return nil }
	// The server is down.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := dead.Addr().String()
	_ = dead.Close()
	conn := genericConn("down")
	conn.Endpoints = Endpoints{AuthURL: "http://" + addr + "/authorize", TokenURL: "http://" + addr + "/token"}
	conn.RedirectURI, _ = ParseRedirectURI(fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t)))
	k := NewKeeper(conn, KeeperOptions{Store: newMemStore(), Locker: &memLocker{}, OpenBrowser: open})
	err := k.Login(context.Background(), LoginOptions{Timeout: time.Minute})
	var te *TokenError
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &te) || te.Next == nil || te.Next.Kind != nextstep.CheckNetwork || !strings.Contains(te.Next.Cause, "Nothing was opened") {
		t.Fatalf("server down: err = %v", err)
	}
	// A confidential client without its secret.
	m := newMethodServer(t, AuthMethodBasic)
	conn2 := genericConn("nosecret")
	conn2.AuthMethod = AuthMethodBasic
	conn2.Endpoints = Endpoints{AuthURL: m.srv.URL + "/authorize", TokenURL: m.srv.URL + "/token"}
	conn2.RedirectURI = conn.RedirectURI
	k2 := NewKeeper(conn2, KeeperOptions{Store: newMemStore(), Locker: &memLocker{}, OpenBrowser: open})
	err = k2.Login(context.Background(), LoginOptions{Timeout: time.Minute})
	if next := NextStepOf(err); !errors.Is(err, ErrCredentialsRefused) || next == nil || next.Kind != nextstep.StoreSecret || next.Connection != "nosecret" {
		t.Fatalf("no secret: err = %v", err)
	}
	if opened != 0 {
		t.Fatalf("the browser was opened %d times for sign-ins that could not succeed", opened)
	}
}

func TestLogoutSaysWhenNothingWasRevoked(t *testing.T) {
	r := newRig(t)
	r.signedIn()
	r.conn.Endpoints.RevokeURL = ""
	out, err := r.k.Logout(context.Background(), false)
	if err != nil || out.Revoked || !strings.Contains(out.NotRevoked, "no revocation endpoint") {
		t.Fatalf("logout without a revocation endpoint: %+v, %v", out, err)
	}
	if r.store.stored(r.conn.Name) != nil {
		t.Fatal("tokens kept")
	}
}

func TestNoRefreshTokenIssuedIsSaidPlainly(t *testing.T) {
	r := newRig(t)
	r.srv.then(replyOKNoRefreshToken)
	r.k.opt.OpenBrowser = func(u string) error { go func() { _, _, _ = browse(u) }(); return nil }
	r.conn.RedirectURI, _ = ParseRedirectURI(fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t)))
	if err := r.k.Login(context.Background(), LoginOptions{}); err != nil {
		t.Fatal(err)
	}
	st := r.k.Status()
	if st.HasRefreshToken || st.Next == nil || st.Next.Kind != nextstep.AskOfflineAccess {
		t.Fatalf("status %+v", st)
	}
}

func TestAKeeperNotYetLoadedStillRefreshesForItsFirstCaller(t *testing.T) {
	r := newRig(t)
	rt := r.srv.issueRefreshToken()
	r.store.put(r.conn.Name, &TokenSet{AccessToken: "at-initial", TokenType: "bearer", RefreshToken: Secret(rt),
		ObtainedAt: r.clock.Now().Add(-80 * time.Minute), Lifetime: 90 * time.Minute})
	// No Load: the first Token call loads, and that must not use up its refresh.
	tok, err := r.k.Token(context.Background(), DefaultMinValid)
	if err != nil || tok.AccessToken == "at-initial" || tok.Warning != "" {
		t.Fatalf("got %+v, %v; want a refreshed token", tok, err)
	}
}

func TestTheMethodHintNamesOnlyWhatTheServerAskedFor(t *testing.T) {
	conn := genericConn("m")
	for _, tc := range []struct{ configured, desc, want, not string }{
		// fosite (Ory Hydra), the client registered with basic, post sent.
		{AuthMethodPost, "The OAuth 2.0 Client supports client authentication method 'client_secret_basic', but method 'client_secret_post' was requested. You must configure the OAuth 2.0 client's 'token_endpoint_auth_method' value to accept 'client_secret_post'.", `token_endpoint_auth_method = "client_secret_basic"`, ""},
		// The same with the default method sent.
		{"", "The OAuth 2.0 Client supports client authentication method 'client_secret_post', but method 'client_secret_basic' was requested.", `token_endpoint_auth_method = "client_secret_post"`, ""},
		// A wrong secret: the standard text mentions "unsupported authentication method" too.
		{"", "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method). The provided client secret did not match.", "if the client is registered with another method", "The server's answer names"},
	} {
		conn.AuthMethod = tc.configured
		hint := diagnose(&TokenError{Op: "refresh", Code: "invalid_client", Description: tc.desc}, conn).Cause
		if !strings.Contains(hint, tc.want) || (tc.not != "" && strings.Contains(hint, tc.not)) {
			t.Errorf("configured %q, server said %q:\nhint %q", tc.configured, tc.desc, hint)
		}
	}
}

// A need as long as a whole refresh cycle cannot avoid the scheduled
// refresh even with a new token: one refresh, then the new token for all,
// and nobody waits (the e2e's 200 agents asked for 285 s of 300 s tokens).
func TestCallersWhoNeedMoreThanARefreshCycleShareOneRefresh(t *testing.T) {
	for _, onlyHolder := range []bool{true, false} {
		r := newRig(t)
		r.k.opt.OnlyHolder = onlyHolder
		r.shortLived(300 * time.Second)
		r.clock.Advance(20 * time.Second)
		var first string
		for i := range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // real time: a wait on the fake clock would hit it
			tok, err := r.k.Token(ctx, 285*time.Second)
			cancel()
			if err != nil {
				t.Fatalf("only holder %t, caller %d: %v", onlyHolder, i, err)
			}
			if first == "" {
				first = tok.AccessToken.Reveal()
			}
			if tok.AccessToken.Reveal() != first || first == "at-initial" {
				t.Fatalf("only holder %t, caller %d got %s; want the one new token", onlyHolder, i, tok.AccessToken.Reveal())
			}
		}
		if n := r.srv.refreshCount(); n != 1 {
			t.Fatalf("only holder %t: %d refreshes, want 1", onlyHolder, n)
		}
	}
}

// A caller that needs more than the token has left is served at once: the
// token could not serve it anyway.
func TestACallerWhoNeedsMoreThanTheTokenHasLeftDoesNotWait(t *testing.T) {
	r := newRig(t)
	r.shortLived(60 * time.Second)
	r.clock.Advance(30 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok, err := r.k.Token(ctx, 40*time.Second) // 30 s left
	if err != nil || tok.AccessToken == "at-initial" {
		t.Fatalf("got %v, %v; want a new token at once", tok, err)
	}
}

func TestAServiceAccountWithoutASecretIsToldOnceWhatToDo(t *testing.T) {
	m := newMethodServer(t, AuthMethodBasic)
	conn := genericConn("svc")
	conn.Grant = GrantClientCredentials
	conn.Endpoints = Endpoints{TokenURL: m.srv.URL + "/token"}
	k := NewKeeper(conn, KeeperOptions{Store: newMemStore(), Locker: &memLocker{}})
	_, err := k.Token(context.Background(), DefaultMinValid)
	if !errors.Is(err, ErrCredentialsRefused) || strings.Count(err.Error(), "no client secret is stored") != 1 ||
		strings.Count(err.Error(), ErrCredentialsRefused.Error()) > 1 {
		t.Fatalf("err = %q", err)
	}
	if next := NextStepOf(err); next == nil || *next != (nextstep.Step{Kind: nextstep.StoreSecret, Connection: "svc"}) {
		t.Fatalf("next %+v: a service account has no refresh token to keep", next)
	}
}
