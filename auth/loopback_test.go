package auth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/tstest/fakeclock"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func flowFor(t *testing.T, srv *oauthServer, host string) (*LoopbackFlow, *Connection) {
	t.Helper()
	ru, err := ParseRedirectURI("http://" + net.JoinHostPort(host, strconv.Itoa(freePort(t))) + "/callback")
	if err != nil {
		t.Fatal(err)
	}
	if host == "localhost" {
		ru.Host = "localhost"
	}
	conn := &Connection{Name: "demo", Provider: &generic, ClientID: "c", RedirectURI: ru,
		Endpoints: Endpoints{AuthURL: srv.srv.URL + "/authorize", TokenURL: srv.srv.URL + "/token"}}
	return &LoopbackFlow{Conn: conn, Clock: fakeclock.New(t0), Timeout: time.Minute}, conn
}

// browse follows redirects like a browser and returns the final page.
func browse(target string) (int, string, error) {
	resp, err := http.Get(target)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestLoopbackSignInWithPKCE(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			srv := newOAuthServer(t)
			f, _ := flowFor(t, srv, host)
			f.OpenBrowser = func(u string) error {
				go func() { _, _, _ = browse(u) }()
				return nil
			}
			tok, err := f.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Fatalf("token %+v", tok)
			}
			if n := srv.exchangeCount(); n != 1 {
				t.Fatalf("exchanges = %d", n)
			}
		})
	}
}

func TestLocalhostListensOnBothLoopbacks(t *testing.T) {
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback on this machine")
	} else {
		l.Close()
	}
	srv := newOAuthServer(t)
	f, conn := flowFor(t, srv, "localhost")
	port := strconv.Itoa(conn.RedirectURI.Port)
	f.OpenBrowser = func(u string) error {
		go func() {
			// Probe ::1 first, as a browser that resolves localhost to ::1 would.
			if code, _, err := browse("http://[::1]:" + port + "/elsewhere"); err != nil || code != http.StatusNotFound {
				t.Errorf("::1 listener: %d %v", code, err)
			}
			_, _, _ = browse(u)
		}()
		return nil
	}
	if _, err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// callbackCase drives a flow whose "browser" sends one crafted callback.
func TestCallbackPages(t *testing.T) {
	tests := []struct {
		name      string
		query     func(state string) string
		path      string
		wantCode  int
		wantPage  string
		flowEnds  bool
		wantError string
	}{
		{"access denied ends the flow with a clear page", func(s string) string { return "error=access_denied&state=" + s }, "/callback", 200, "Access was not granted", true, "access_denied"},
		{"another provider error shows its description", func(s string) string {
			return "error=invalid_scope&error_description=nope&state=" + s
		}, "/callback", 200, "Provider said: nope", true, "invalid_scope"},
		{"wrong state is refused and the flow keeps waiting", func(string) string { return "code=x&state=forged" }, "/callback", 400, "not the current one", false, ""},
		{"missing state is refused and the flow keeps waiting", func(string) string { return "code=x" }, "/callback", 400, "not the current one", false, ""},
		{"another path is not the callback", func(s string) string { return "code=x&state=" + s }, "/favicon.ico", 404, "only answers the registered callback path", false, ""},
		{"no code and no error", func(s string) string { return "state=" + s }, "/callback", 400, "without an authorization code", true, "neither a code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newOAuthServer(t)
			f, conn := flowFor(t, srv, "127.0.0.1")
			clock := f.Clock.(*fakeclock.Clock)
			got := make(chan [2]string, 1)
			f.OpenBrowser = func(u string) error {
				au, _ := url.Parse(u)
				state := au.Query().Get("state")
				target := "http://127.0.0.1:" + strconv.Itoa(conn.RedirectURI.Port) + tc.path + "?" + tc.query(state)
				go func() {
					code, page, err := browse(target)
					if err != nil {
						t.Error(err)
					}
					got <- [2]string{strconv.Itoa(code), page}
					if !tc.flowEnds {
						clock.BlockUntil(1, 30*time.Second)
						clock.Advance(2 * time.Minute) // let the flow time out
					}
				}()
				return nil
			}
			_, err := f.Run(context.Background())
			r := <-got
			if r[0] != strconv.Itoa(tc.wantCode) || !strings.Contains(r[1], tc.wantPage) {
				t.Fatalf("page %s %q, want %d containing %q", r[0], r[1], tc.wantCode, tc.wantPage)
			}
			if tc.flowEnds {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want %q", err, tc.wantError)
				}
			} else if !errors.Is(err, ErrLoginTimeout) {
				t.Fatalf("err = %v: a bad callback must not end the sign-in", err)
			}
		})
	}
}

func TestSecondCallbackIsToldTheSignInEnded(t *testing.T) {
	srv := newOAuthServer(t)
	f, conn := flowFor(t, srv, "127.0.0.1")
	second := make(chan string, 1)
	srv.authorize = func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		cb := conn.RedirectURI.Raw + "?code=c1&state=" + q.Get("state")
		// The first callback is held inside the exchange; a second arrives meanwhile.
		http.Redirect(w, r, cb, http.StatusFound)
	}
	srv.then(replyHang)
	f.OpenBrowser = func(u string) error {
		au, _ := url.Parse(u)
		cb := conn.RedirectURI.Raw + "?code=c2&state=" + au.Query().Get("state")
		go func() { _, _, _ = browse(u) }()
		go func() {
			for srv.exchangeCount() == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			_, page, _ := browse(cb)
			second <- page
			srv.unhang()
		}()
		return nil
	}
	_, _ = f.Run(context.Background())
	if page := <-second; !strings.Contains(page, "no longer waiting") {
		t.Fatalf("second callback page: %q", page)
	}
}

func (s *oauthServer) exchangeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges
}

func TestPortInUseNamesThePortAndTheRedirectURI(t *testing.T) {
	srv := newOAuthServer(t)
	f, conn := flowFor(t, srv, "127.0.0.1")
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(conn.RedirectURI.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = f.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(conn.RedirectURI.Port)+" is already in use") ||
		!strings.Contains(err.Error(), conn.RedirectURI.Raw) {
		t.Fatalf("err = %v", err)
	}
}

func TestListenerIsClosedAfterTheSignIn(t *testing.T) {
	srv := newOAuthServer(t)
	f, conn := flowFor(t, srv, "127.0.0.1")
	f.OpenBrowser = func(u string) error { go func() { _, _, _ = browse(u) }(); return nil }
	if _, err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(conn.RedirectURI.Port)); err == nil {
		c.Close()
		t.Fatal("the callback port is still open after the sign-in")
	}
}

func TestSignInTimesOutAndCancels(t *testing.T) {
	srv := newOAuthServer(t)
	f, _ := flowFor(t, srv, "127.0.0.1")
	clock := f.Clock.(*fakeclock.Clock)
	go func() {
		clock.BlockUntil(1, 30*time.Second)
		clock.Advance(time.Minute)
	}()
	if _, err := f.Run(context.Background()); !errors.Is(err, ErrLoginTimeout) {
		t.Fatalf("err = %v, want timeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f2, _ := flowFor(t, srv, "127.0.0.1")
	f2.OpenBrowser = func(string) error { cancel(); return nil }
	if _, err := f2.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want cancelled", err)
	}
}

func TestPasteFlowChecksState(t *testing.T) {
	srv := newOAuthServer(t)
	ru, _ := ParseRedirectURI("https://example.com/oauth/done")
	conn := &Connection{Name: "p", Provider: &generic, ClientID: "c", RedirectURI: ru,
		Endpoints: Endpoints{AuthURL: srv.srv.URL + "/authorize", TokenURL: srv.srv.URL + "/token"}}
	pr, pw := io.Pipe()
	f := &LoopbackFlow{Conn: conn, Paste: pr, Clock: fakeclock.New(t0)}
	f.OpenBrowser = func(u string) error {
		// The provider would redirect to example.com; take its Location.
		go func() { _, _ = io.WriteString(pw, landing(t, u)+"\n") }()
		return nil
	}
	if _, err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.Paste = strings.NewReader("https://example.com/oauth/done?code=x&state=forged\n")
	f.OpenBrowser = nil
	if _, err := f.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "another sign-in") {
		t.Fatalf("forged state: %v", err)
	}
}

func TestParseRedirectURI(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"http://localhost:8765/callback", ""},
		{"http://127.0.0.1:8765/callback", ""},
		{"http://[::1]:8765/callback", ""},
		{"https://example.com/cb", ""},
		{"http://192.168.8.124:9876/callback", "refuse LAN IPs and host names"},
		{"http://moby-1:9876/callback", "refuse LAN IPs and host names"},
		{"http://localhost/callback", "has no port"},
		{"http://localhost:0/callback", "not between 1 and 65535"},
		{"ftp://localhost:1/x", "scheme must be"},
		{"localhost:8765", "not an absolute URL"},
		{"/callback", "not an absolute URL"},
	}
	for _, tc := range tests {
		_, err := ParseRedirectURI(tc.in)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err = %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	ts := &TokenSet{AccessToken: s, RefreshToken: s, ObtainedAt: t0, Lifetime: time.Hour}
	for _, out := range []string{
		s.String(), s.GoString(), ts.String(),
		fmtAll(s), fmtAll(ts), fmtAll(*ts),
	} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %q", out)
		}
	}
}

func TestASecondSignInJoinsTheFirstAndReopensItsPage(t *testing.T) {
	r := newRig(t)
	port := freePort(t)
	r.conn.RedirectURI, _ = ParseRedirectURI("http://127.0.0.1:" + strconv.Itoa(port) + "/callback")
	opened := make(chan string, 4)
	r.k.opt.OpenBrowser = func(u string) error { opened <- u; return nil }
	first := make(chan error, 1)
	go func() { first <- r.k.Login(context.Background(), LoginOptions{}) }()
	url1 := <-opened
	second := make(chan error, 1)
	go func() { second <- r.k.Login(context.Background(), LoginOptions{}) }()
	url2 := <-opened
	if url2 != url1 {
		t.Fatalf("the second sign-in opened another page:\n%s\n%s", url1, url2)
	}
	if _, _, err := browse(url2); err != nil { // the person signs in once, on the reopened page
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the joined sign-in: %v", err)
	}
	if n := r.srv.exchangeCount(); n != 1 {
		t.Fatalf("%d code exchanges, want 1", n)
	}
}

func TestCallbackIssuerIsChecked(t *testing.T) {
	tests := []struct {
		name       string
		configured string // the connection's issuer
		iss        func(server string) string
		errorReply bool // the provider answers with an error instead of a code
		wantErr    error
	}{
		{"no iss is accepted", "", nil, false, nil},
		{"iss on the authorize URL's server is accepted", "", func(s string) string { return s }, false, nil},
		{"iss of another server is refused", "", func(string) string { return "https://evil.example" }, false, ErrWrongIssuer},
		{"the configured issuer matches exactly", "https://issuer.example/tenant", func(string) string { return "https://issuer.example/tenant" }, false, nil},
		{"a near miss of the configured issuer is refused", "https://issuer.example/tenant", func(string) string { return "https://issuer.example/tenant/" }, false, ErrWrongIssuer},
		{"an error response from another server is refused too", "", func(string) string { return "https://evil.example" }, true, ErrWrongIssuer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newOAuthServer(t)
			f, conn := flowFor(t, srv, "127.0.0.1")
			conn.Endpoints.Issuer = tc.configured
			srv.authorize = func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				srv.mu.Lock()
				srv.seq++
				code := "code-" + strconv.Itoa(srv.seq)
				srv.codes[code] = q.Get("code_challenge")
				srv.mu.Unlock()
				back := url.Values{"state": {q.Get("state")}}
				if tc.errorReply {
					back.Set("error", "access_denied")
				} else {
					back.Set("code", code)
				}
				if tc.iss != nil {
					back.Set("iss", tc.iss(srv.srv.URL))
				}
				http.Redirect(w, r, q.Get("redirect_uri")+"?"+back.Encode(), http.StatusFound)
			}
			pages := make(chan string, 1)
			f.OpenBrowser = func(u string) error {
				go func() {
					_, page, _ := browse(u)
					pages <- page
				}()
				return nil
			}
			_, err := f.Run(context.Background())
			page := <-pages
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("sign-in failed: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if n := srv.exchangeCount(); n != 0 {
				t.Fatalf("the code of a refused response was exchanged (%d exchanges)", n)
			}
			if !strings.Contains(page, "different authorization server") {
				t.Fatalf("the page does not say why: %q", page)
			}
		})
	}
}

func TestPasteFlowChecksIssuer(t *testing.T) {
	srv := newOAuthServer(t)
	ru, _ := ParseRedirectURI("https://example.com/oauth/done")
	conn := &Connection{Name: "p", Provider: &generic, ClientID: "c", RedirectURI: ru,
		Endpoints: Endpoints{AuthURL: srv.srv.URL + "/authorize", TokenURL: srv.srv.URL + "/token"}}
	pr, pw := io.Pipe()
	f := &LoopbackFlow{Conn: conn, Paste: pr, Clock: fakeclock.New(t0)}
	f.ShowURL = func(u string) {
		au, _ := url.Parse(u)
		go func() {
			_, _ = io.WriteString(pw, "https://example.com/oauth/done?code=x&iss=https%3A%2F%2Fevil.example&state="+au.Query().Get("state")+"\n")
		}()
	}
	if _, err := f.Run(context.Background()); !errors.Is(err, ErrWrongIssuer) {
		t.Fatalf("err = %v, want a refused issuer", err)
	}
	if n := srv.exchangeCount(); n != 0 {
		t.Fatalf("%d exchanges for a refused response", n)
	}
}

// --paste: a loopback redirect URI, but the browser is on another machine.
// Nothing listens on the port; the pasted address completes the sign-in,
// its state checked; without a terminal to paste into, the error says so.
func TestPasteOnlyWithALoopbackRedirectURI(t *testing.T) {
	srv := newOAuthServer(t)
	ru, _ := ParseRedirectURI("http://localhost:1/callback") // port 1: nothing could listen there
	conn := &Connection{Name: "p", Provider: &generic, ClientID: "c", RedirectURI: ru,
		Endpoints: Endpoints{AuthURL: srv.srv.URL + "/authorize", TokenURL: srv.srv.URL + "/token"}}
	pr, pw := io.Pipe()
	var shown string
	f := &LoopbackFlow{Conn: conn, Paste: pr, PasteOnly: true, Clock: fakeclock.New(t0), ShowURL: func(u string) {
		shown = u
		go func() { _, _ = io.WriteString(pw, "  "+landing(t, u)+"  \n") }()
	}}
	tok, err := f.Run(context.Background())
	if err != nil || tok.AccessToken == "" || !strings.Contains(shown, "code_challenge=") {
		t.Fatalf("paste sign-in: %v (URL %q)", err, shown)
	}
	f = &LoopbackFlow{Conn: conn, PasteOnly: true, Clock: fakeclock.New(t0)}
	if _, err := f.Run(context.Background()); err == nil || NextStepOf(err) == nil || NextStepOf(err).Kind != nextstep.SignInPasting {
		t.Fatalf("no terminal: %v (next %+v)", err, NextStepOf(err))
	}
}

// The out-of-band redirect URI: the provider shows the code, and the code
// alone is pasted. PKCE still binds it to this sign-in.
func TestOutOfBandCode(t *testing.T) {
	srv := newOAuthServer(t)
	ru, err := ParseRedirectURI(OOBRedirectURI)
	if err != nil || !ru.OOB {
		t.Fatalf("parse %s: %+v %v", OOBRedirectURI, ru, err)
	}
	conn := &Connection{Name: "p", Provider: &generic, ClientID: "c", RedirectURI: ru,
		Endpoints: Endpoints{AuthURL: srv.srv.URL + "/authorize", TokenURL: srv.srv.URL + "/token"}}
	pr, pw := io.Pipe()
	f := &LoopbackFlow{Conn: conn, Paste: pr, Clock: fakeclock.New(t0), ShowURL: func(u string) {
		go func() {
			loc, _ := url.Parse(landing(t, u))
			_, _ = io.WriteString(pw, loc.Query().Get("code")+"\n")
		}()
	}}
	if tok, err := f.Run(context.Background()); err != nil || tok.AccessToken == "" {
		t.Fatalf("out-of-band sign-in: %v", err)
	}
	f = &LoopbackFlow{Conn: conn, Paste: strings.NewReader("not-a-code-it-issued\n"), Clock: fakeclock.New(t0)}
	if _, err := f.Run(context.Background()); err == nil {
		t.Fatal("a code the server never issued was accepted")
	}
}

// landing is where the browser goes after the fake provider's sign-in at
// authURL: its redirect, not followed (nothing need listen there).
func landing(t *testing.T, authURL string) string {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Error(err)
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("Location")
}
