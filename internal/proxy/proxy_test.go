package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

// rig is a keeper whose provider counts refreshes (each one issues at-N),
// an API the test writes, and the proxy in front of it, served over HTTP
// as the local API serves it.
type rig struct {
	t         *testing.T
	k         *auth.Keeper
	store     *auth.MemoryStore
	refreshes atomic.Int32
	// deadGrant makes the provider refuse every refresh (invalid_grant).
	deadGrant atomic.Bool
	proxy     *Proxy
	front     *httptest.Server
	api       *httptest.Server
}

func newRig(t *testing.T, api http.HandlerFunc, signedIn bool, p *Proxy) *rig {
	r := &rig{t: t, store: auth.NewMemoryStore(), proxy: p}
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if req.FormValue("grant_type") == "authorization_code" {
			fmt.Fprint(w, `{"access_token":"at-signed-in","token_type":"bearer","expires_in":3600,"refresh_token":"rt-s"}`)
			return
		}
		if r.deadGrant.Load() {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"grant revoked"}`)
			return
		}
		n := r.refreshes.Add(1)
		time.Sleep(20 * time.Millisecond) // a refresh in flight while others come
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"bearer","expires_in":3600,"refresh_token":"rt-%d"}`, n, n)
	}))
	t.Cleanup(provider.Close)
	r.api = httptest.NewServer(api)
	t.Cleanup(r.api.Close)
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	conn := &auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints:  auth.Endpoints{AuthURL: provider.URL + "/authorize", TokenURL: provider.URL + "/token", APIBase: r.api.URL + "/base"},
		APIHeaders: map[string]string{"Procore-Company-Id": "42"}}
	if signedIn {
		_ = r.store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-0", TokenType: "bearer",
			RefreshToken: "rt-0", ObtainedAt: time.Now().Add(-10 * time.Minute).Round(0), Lifetime: time.Hour}, auth.AnyGeneration)
	}
	r.k = auth.NewKeeper(conn, auth.KeeperOptions{Store: r.store, Locker: &auth.ProcessLocker{}})
	if err := r.k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := strings.TrimPrefix(req.URL.EscapedPath(), "/api/")
		if err := r.proxy.Forward(w, req, r.k, path); err != nil {
			status, code := http.StatusConflict, "keeper"
			var pe *Error
			if errors.As(err, &pe) {
				status, code = pe.Status, pe.Code
			}
			w.Header().Set("X-Test-Error-Code", code)
			w.WriteHeader(status)
			fmt.Fprint(w, err.Error())
		}
	}))
	t.Cleanup(r.front.Close)
	return r
}

func (r *rig) do(method, path string, body io.Reader, header http.Header) *http.Response {
	r.t.Helper()
	req, err := http.NewRequest(method, r.front.URL+"/api/"+path, body)
	if err != nil {
		r.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

func read(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOnlyPathsUnderTheAPIBaseAreReachable(t *testing.T) {
	for _, path := range []string{"../secret", "a/../../x", "a/%2e%2e/x", "a%2F..%2Fx", "a/%2E%2e", "/x", "a//b", "http://evil.example/x",
		"https:/evil.example", "a/..", "a/%5c..%5cx", "%zz"} {
		if u, err := Target("https://api.example.com/rest", path, ""); err == nil {
			t.Errorf("%q went to %s", path, u)
		}
	}
	for path, want := range map[string]string{
		"v1.0/me":                   "https://api.example.com/rest/v1.0/me",
		"projects/group%2Fname/x":   "https://api.example.com/rest/projects/group%2Fname/x",
		"v1/projects/p:run":         "https://api.example.com/rest/v1/projects/p:run",
		"files/a%20b.txt":           "https://api.example.com/rest/files/a%20b.txt",
		"":                          "https://api.example.com/rest/",
		"companies?per_page=100":    "https://api.example.com/rest/companies%3Fper_page=100",
		"with...dots/..hidden/end.": "https://api.example.com/rest/with...dots/..hidden/end.",
	} {
		u, err := Target("https://api.example.com/rest/", path, "")
		if err != nil || u.String() != want || u.Host != "api.example.com" {
			t.Errorf("%q: %v %v, want %s", path, u, err, want)
		}
	}
	u, _ := Target("https://api.example.com", "x", "b=2&tokentray_wait=5m&a=%20")
	if u.RawQuery != "b=2&a=%20" {
		t.Errorf("query %q: tokentray's own parameter goes, the others stay as written", u.RawQuery)
	}
}

// The agent's credentials, cookies, hop-by-hop and tokentray's own headers
// stay here; the connection's token and its extra headers go. The answer
// comes back without cookies, and the token is not in it even where the
// API echoes the request.
func TestHeadersGoOnWithoutTheAgentsCredentialsAndTheTokenNeverComesBack(t *testing.T) {
	var got http.Header
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		got = req.Header.Clone()
		w.Header().Set("Set-Cookie", "session=1")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("X-Echo", req.Header.Get("Authorization"))
		w.Header().Set("X-Rate-Limit-Limit", "600")
		w.Header().Set("X-Rate-Limit-Remaining", "412")
		w.Header().Set("X-Rate-Limit-Reset", "1893456000")
		fmt.Fprintf(w, "you sent %q and path %s", req.Header.Get("Authorization"), req.URL.EscapedPath())
	}, true, &Proxy{})
	resp := r.do("GET", "rest/v1.0/me", nil, http.Header{
		"Authorization": {"Bearer agent-own"}, "Cookie": {"c=1"}, "Proxy-Authorization": {"Basic x"},
		"Connection": {"X-Mine"}, "X-Mine": {"1"}, "Tokentray-Wait": {"1s"}, "X-Custom": {"kept"}, "Procore-Company-Id": {"7"},
	})
	body := read(t, resp)
	if got.Get("Authorization") != "Bearer at-0" || got.Get("Cookie") != "" || got.Get("Proxy-Authorization") != "" ||
		got.Get("X-Mine") != "" || got.Get("Tokentray-Wait") != "" || got.Get("X-Custom") != "kept" || got.Get("Procore-Company-Id") != "42" {
		t.Fatalf("the API got %v", got)
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Hop") != "" {
		t.Fatalf("the agent got %v", resp.Header)
	}
	if strings.Contains(body, "at-0") || strings.Contains(resp.Header.Get("X-Echo"), "at-0") ||
		body != `you sent "Bearer ****" and path /base/rest/v1.0/me` {
		t.Fatalf("the agent got %q, %v", body, resp.Header)
	}
	if st := r.k.Status(); st.RateLimit == nil || st.RateLimit.Limit != 600 || st.RateLimit.Remaining != 412 || st.RateLimit.Reset.Unix() != 1893456000 {
		t.Fatalf("rate limit %+v", st.RateLimit)
	}
	if resp := r.do("GET", "../x", nil, nil); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Test-Error-Code") != apitype.CodeBadRequest {
		t.Fatalf("a path out of the base: %d", resp.StatusCode)
	}
}

// A token split between two reads of the answer is masked as well.
func TestTheRedactorMasksATokenSplitAcrossWrites(t *testing.T) {
	var out bytes.Buffer
	rd := &redactor{w: &out, token: []byte("secret-token")}
	for _, part := range []string{"a secr", "et-tok", "en b secret-token", " c secret-"} {
		_ = rd.Write([]byte(part))
		_ = rd.flushSafe()
	}
	_ = rd.Close()
	if out.String() != "a ************ b ************ c secret-" {
		t.Fatalf("%q", out.String())
	}
}

// Both directions stream: the API answers its first part before the
// agent has sent all of its body, and the agent reads that part before
// the API has written the rest.
func TestBodiesStreamBothWays(t *testing.T) {
	firstIn, goOn := make(chan string, 1), make(chan struct{})
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		buf := make([]byte, 5)
		n, _ := io.ReadFull(req.Body, buf)
		firstIn <- string(buf[:n])
		fmt.Fprint(w, "part 1;")
		w.(http.Flusher).Flush()
		<-goOn
		rest, _ := io.ReadAll(req.Body)
		fmt.Fprintf(w, "part 2: %s", rest)
	}, true, &Proxy{MaxReplay: 1})
	pr, pw := io.Pipe()
	done := make(chan *http.Response, 1)
	go func() { done <- r.do("POST", "upload", pr, nil) }()
	_, _ = pw.Write([]byte("hello"))
	if got := <-firstIn; got != "hello" {
		t.Fatalf("the API's first read: %q", got)
	}
	resp := <-done
	buf := make([]byte, len("part 1;"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "part 1;" {
		t.Fatalf("the agent's first read: %q %v", buf, err)
	}
	_, _ = pw.Write([]byte(" world"))
	pw.Close()
	close(goOn)
	if rest := read(t, resp); rest != "part 2:  world" {
		t.Fatalf("the rest: %q", rest)
	}
}

// A storm of 100 requests refused with the same token: one refresh, and
// each request sent once more, with its body, and answered.
func TestA401StormCostsOneRefreshAndOneReplayEach(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	all := make(chan struct{}) // every request has come with the old token
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		seen[req.Header.Get("Authorization")]++
		if seen["Bearer at-0"] == 100 && req.Header.Get("Authorization") == "Bearer at-0" {
			close(all)
		}
		mu.Unlock()
		if req.Header.Get("Authorization") == "Bearer at-0" {
			<-all // a storm: all refused before the first refresh
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "ok %s", body)
	}, true, &Proxy{})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := r.do("POST", "items", strings.NewReader(fmt.Sprintf("item %d", i)), nil)
			if body := read(t, resp); resp.StatusCode != 200 || body != fmt.Sprintf("ok item %d", i) {
				t.Errorf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if n := r.refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	if seen["Bearer at-0"] != 100 || seen["Bearer at-1"] != 100 || len(seen) != 2 {
		t.Fatalf("the API saw %v: want 100 refused and 100 replayed", seen)
	}
}

// A 401 to a fresh token goes back as it came, and a person hears of it
// once, not once per request; when the API takes the token again, that
// is told too.
func TestASecond401GoesBackAsItCameWithOneAlert(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if refuse.Load() {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"nope"}`)
			return
		}
		fmt.Fprint(w, "ok")
	}, true, &Proxy{})
	events, stop := r.k.Subscribe()
	defer stop()
	for range 3 {
		resp := r.do("GET", "me", nil, nil)
		if body := read(t, resp); resp.StatusCode != 401 || body != `{"error":"nope"}` || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("the agent got %d %q", resp.StatusCode, body)
		}
	}
	refuse.Store(false)
	if resp := r.do("GET", "me", nil, nil); read(t, resp) != "ok" {
		t.Fatal("not accepted")
	}
	stop()
	var kinds []string
	for e := range events {
		if e.Kind == auth.EventAPIRefused || e.Kind == auth.EventAPIAccepted {
			kinds = append(kinds, string(e.Kind))
		}
	}
	if strings.Join(kinds, ",") != "api_refused,api_accepted" {
		t.Fatalf("events %v, want one api_refused and one api_accepted", kinds)
	}
	// The first 401 refreshed; the fresh token's 401s did not refresh again.
	if n := r.refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes for 3 refused requests, want 1", n)
	}
}

// 429 and 503 with a Retry-After within bounds are waited out once, for
// idempotent methods; a POST gets its 429 back as it came.
func TestRetryAfterIsHonouredOnceForIdempotentMethods(t *testing.T) {
	clock := fakeclock.New(time.Now())
	var calls atomic.Int32
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if calls.Add(1)%2 == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	}, true, &Proxy{Clock: clock})
	done := make(chan *http.Response, 1)
	go func() { done <- r.do("GET", "list", nil, nil) }()
	if !clock.BlockUntil(1, 10*time.Second) {
		t.Fatal("the proxy does not wait for the Retry-After")
	}
	if d := clock.Deadlines()[0].Sub(clock.Now()); d != 7*time.Second {
		t.Fatalf("waits %s, want the 7 s the API asked for", d)
	}
	clock.Advance(7 * time.Second)
	if resp := <-done; resp.StatusCode != 200 || read(t, resp) != "ok" {
		t.Fatalf("after the wait: %d", resp.StatusCode)
	}
	if resp := r.do("POST", "create", strings.NewReader("x"), nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a POST: %d, want its 429 as it came", resp.StatusCode)
	}
	// A wait beyond the bound goes back to the agent at once.
	calls.Store(0)
	r2 := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	}, true, &Proxy{Clock: clock})
	if resp := r2.do("GET", "list", nil, nil); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3600" {
		t.Fatalf("a long Retry-After: %d", resp.StatusCode)
	}
}

// A body larger than what is kept streams through once: on a 401 the
// agent gets the 401, and the refresh happens for its own retry.
func TestALargeUploadIsNotSentAgain(t *testing.T) {
	var sizes []int
	var mu sync.Mutex
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		sizes = append(sizes, len(b))
		mu.Unlock()
		if req.Header.Get("Authorization") == "Bearer at-0" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "stored")
	}, true, &Proxy{MaxReplay: 1024})
	big := strings.Repeat("x", 4096)
	if resp := r.do("PUT", "file", strings.NewReader(big), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a large upload refused: %d, want the 401 as it came", resp.StatusCode)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if tok, err := r.k.Token(context.Background(), 0); err == nil && tok.AccessToken.Reveal() == "at-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no refresh for the agent's retry")
		}
	}
	if resp := r.do("PUT", "file", strings.NewReader(big), nil); resp.StatusCode != 200 {
		t.Fatalf("the agent's retry: %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 2 || sizes[0] != 4096 || sizes[1] != 4096 {
		t.Fatalf("the API got bodies of %v bytes: want the agent's two sends, whole", sizes)
	}
}

// In needs_reauth, a request without a wait fails at once; with one it
// waits, in line; when a person signs in, the waiting requests go on with
// the new token in the order they came; one whose wait runs out gets
// needs_sign_in.
func TestRequestsWaitForASignInAndGoOnInOrder(t *testing.T) {
	clock := fakeclock.New(time.Now())
	var mu sync.Mutex
	var order []string
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		order = append(order, req.URL.Query().Get("n")+" "+req.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, "ok")
	}, false, &Proxy{Clock: clock})

	if resp := r.do("GET", "x?n=now", nil, nil); resp.StatusCode != http.StatusConflict || !strings.Contains(read(t, resp), "sign") {
		t.Fatalf("without a wait: %d", resp.StatusCode)
	}
	type answer struct {
		n    int
		resp *http.Response
	}
	answers := make(chan answer, 3)
	for i := 1; i <= 3; i++ {
		go func() {
			answers <- answer{i, r.do("GET", fmt.Sprintf("x?n=%d&tokentray_wait=10m", i), nil, nil)}
		}()
		// The next one comes once this one is in line.
		for deadline := time.Now().Add(10 * time.Second); r.proxy.Waiting(r.k) != i; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("request %d is not waiting", i)
			}
		}
	}
	// One more, whose wait runs out.
	late := make(chan *http.Response, 1)
	go func() { late <- r.do("GET", "x?n=late", nil, http.Header{WaitHeader: {"30s"}}) }()
	for deadline := time.Now().Add(10 * time.Second); r.proxy.Waiting(r.k) != 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the late request is not waiting")
		}
	}
	clock.Advance(30 * time.Second)
	if resp := <-late; resp.StatusCode != http.StatusConflict || !strings.Contains(read(t, resp), "waited 30s") {
		t.Fatalf("a wait that ran out: %d", resp.StatusCode)
	}

	r.signIn()
	for range 3 {
		a := <-answers
		if body := read(t, a.resp); a.resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d after the sign-in: %d %q", a.n, a.resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ", ") != "1 Bearer at-signed-in, 2 Bearer at-signed-in, 3 Bearer at-signed-in" {
		t.Fatalf("the API got %v", order)
	}
}

// signIn signs the rig's connection in as a person would (the address the
// browser lands on, pasted).
func (r *rig) signIn() {
	r.t.Helper()
	pr, pw := io.Pipe()
	err := r.k.Login(context.Background(), auth.LoginOptions{Paste: pr, PasteOnly: true, Timeout: time.Minute, ShowURL: func(u string) {
		parsed, _ := url.Parse(u)
		go fmt.Fprintf(pw, "http://127.0.0.1:1/cb?code=c&state=%s\n", parsed.Query().Get("state"))
	}})
	if err != nil {
		r.t.Fatal(err)
	}
}

// The grant is revoked: the API refuses the token still held, and the
// refresh is refused too. A request that may wait waits for the sign-in
// and goes on with the new token; one that may not gets needs_sign_in.
func TestARefusedTokenWithADeadGrantWaitsForTheSignIn(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer at-signed-in" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	}, true, &Proxy{})
	r.deadGrant.Store(true)
	if resp := r.do("GET", "me", nil, nil); resp.StatusCode != http.StatusConflict || !strings.Contains(read(t, resp), "invalid_grant") {
		t.Fatalf("without a wait: %d", resp.StatusCode)
	}
	done := make(chan *http.Response, 1)
	go func() { done <- r.do("POST", "me", strings.NewReader("body"), http.Header{WaitHeader: {"5m"}}) }()
	for deadline := time.Now().Add(10 * time.Second); r.proxy.Waiting(r.k) != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request does not wait")
		}
	}
	r.signIn()
	if resp := <-done; resp.StatusCode != 200 || read(t, resp) != "ok" {
		t.Fatalf("after the sign-in: %d", resp.StatusCode)
	}
}

// An agent that asks for a compressed answer gets the API's answer still
// searched for the token: the proxy takes it uncompressed from the API.
func TestACompressedEchoDoesNotCarryTheToken(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		echo := "you sent " + req.Header.Get("Authorization")
		if strings.Contains(req.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, echo)
			_ = zw.Close()
			return
		}
		_, _ = io.WriteString(w, echo)
	}, true, &Proxy{})
	req, _ := http.NewRequest("GET", r.front.URL+"/api/me", nil)
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: the client leaves the body as it comes
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw := read(t, resp)
	plain := raw
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(strings.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(zr)
		plain = string(b)
	}
	if strings.Contains(plain, "at-0") || !strings.HasPrefix(plain, "you sent Bearer ****") {
		t.Fatalf("the agent got %q", plain)
	}
}

// A cut-off answer is not passed on as a whole one: the agent's
// connection is dropped.
func TestAnAnswerCutOffIsNotTakenForAWholeOne(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "only a part")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the API's connection breaks
	}, true, &Proxy{})
	resp := r.do("GET", "me", nil, nil)
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a truncated answer was read to its end without an error")
	}
}

// A DPoP-bound token goes with a proof for each request; an API that asks
// for its nonce gets the request again with it, once; a 401 about the proof
// (a nonce changed again) goes back as it came, and spends no refresh.
func TestDPoPBoundTokensGoWithAProofAndNonceRefusalsSpendNoRefresh(t *testing.T) {
	var mu sync.Mutex
	var proofs []string
	nonce := 0
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		proofs = append(proofs, req.Header.Get("DPoP"))
		if !strings.HasPrefix(req.Header.Get("Authorization"), "DPoP ") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		// A nonce that changes at every answer: the retry's is stale too
		// when the path says so.
		nonce++
		w.Header().Set("DPoP-Nonce", fmt.Sprintf("n-%d", nonce))
		if strings.Contains(req.URL.Path, "always") || len(proofs) == 1 {
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}, false, &Proxy{})
	key, _ := auth.NewDPoPKey()
	stored, _ := key.Marshal()
	_ = r.store.SaveTokens(context.Background(), "p", &auth.TokenSet{AccessToken: "at-0", TokenType: "DPoP", RefreshToken: "rt-0",
		ObtainedAt: time.Now().Add(-10 * time.Minute).Round(0), Lifetime: time.Hour, DPoPKey: stored}, auth.AnyGeneration)
	if err := r.k.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp := r.do(http.MethodGet, "me", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, read(t, resp))
	}
	mu.Lock()
	if len(proofs) != 2 || proofs[0] == "" || proofs[0] == proofs[1] {
		t.Fatalf("%d requests; each needs a proof of its own", len(proofs))
	}
	mu.Unlock()
	if resp := r.do(http.MethodGet, "always", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a nonce refused twice: HTTP %d, want the 401 back", resp.StatusCode)
	}
	if n := r.refreshes.Load(); n != 0 {
		t.Fatalf("%d refreshes for refusals of the proof", n)
	}
}
