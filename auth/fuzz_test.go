package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// FuzzCallback sends arbitrary callback requests to the sign-in listener.
// Whatever arrives, the handler must not panic, must not end the sign-in
// unless the state matches, and must never exchange a code without it.
func FuzzCallback(f *testing.F) {
	for _, seed := range []string{
		"/callback?code=abc&state=STATE",
		"/callback?error=access_denied&state=STATE",
		"/callback?state=forged&code=x",
		"/callback?code=x",
		"/callback?state=STATE&state=other&code=1",
		"/callback/../callback?code=%zz&state=STATE",
		"/elsewhere?code=x&state=STATE",
		"/callback?iss=https%3A%2F%2Fevil&code=c&state=STATE",
	} {
		f.Add(seed)
	}
	ru, _ := ParseRedirectURI("http://127.0.0.1:1/callback")
	conn := &Connection{Name: "fuzz", Provider: &generic, RedirectURI: ru}
	f.Fuzz(func(t *testing.T, target string) {
		target = strings.ReplaceAll(target, "STATE", "the-real-state")
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		exchanged := false
		h := &callbackHandler{conn: conn, state: "the-real-state", results: make(chan callbackResult, 1),
			exchange: func(string) (*oauth2.Token, error) { exchanged = true; return &oauth2.Token{AccessToken: "a"}, nil }}
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
		req.URL = u
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		stateOK := u.EscapedPath() == "/callback" && u.Query().Get("state") == "the-real-state"
		ended := len(h.results) == 1
		if ended && !stateOK {
			t.Fatalf("%q ended the sign-in without the right state", target)
		}
		if exchanged && !stateOK {
			t.Fatalf("%q exchanged a code without the right state", target)
		}
		if !stateOK && rec.Code < 400 {
			t.Fatalf("%q answered %d", target, rec.Code)
		}
	})
}

// FuzzTokenResponse feeds arbitrary token-endpoint answers to a refresh.
// The keeper must not panic, and the stored refresh token may only change
// when the answer was a usable token.
func FuzzTokenResponse(f *testing.F) {
	for _, seed := range []struct {
		status      int
		contentType string
		body        string
	}{
		{200, "application/json", `{"access_token":"a","token_type":"bearer","expires_in":5400,"refresh_token":"r2"}`},
		{200, "application/json", `{"access_token":"a"}`},
		{200, "application/json", `{"access_token":"","refresh_token":"r2"}`},
		{200, "application/json", `{"access_token":"a","expires_in":"soon"}`},
		{200, "application/json", `{"access_token":"a","expires_in":-5}`},
		{200, "application/json", `{"access_token": "tru`},
		{200, "application/x-www-form-urlencoded", "access_token=a&refresh_token=r2&expires_in=60"},
		{200, "text/plain", "%zz"},
		{400, "application/json", `{"error":"invalid_grant"}`},
		{401, "text/html", "<html>nope</html>"},
		{503, "", ""},
		{200, "application/json", `{"error":"invalid_grant","access_token":"a"}`},
	} {
		f.Add(seed.status, seed.contentType, seed.body)
	}
	f.Fuzz(func(t *testing.T, status int, contentType, body string) {
		if status < 200 || status > 599 {
			return
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if contentType != "" {
				w.Header().Set("Content-Type", contentType)
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		defer srv.Close()
		ru, _ := ParseRedirectURI("http://127.0.0.1:1/cb")
		conn := &Connection{Name: "f", Provider: &generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
			Endpoints: Endpoints{TokenURL: srv.URL}}
		store := NewMemoryStore()
		_ = store.SaveTokens(context.Background(), "f", &TokenSet{AccessToken: "old", RefreshToken: "r1", ObtainedAt: t0, Lifetime: 3600e9}, AnyGeneration)
		k := NewKeeper(conn, KeeperOptions{Store: store, Locker: &ProcessLocker{}, Jitter: func() float64 { return 0 }})
		if err := k.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		err := k.Refresh(context.Background())
		saved, _ := store.LoadTokens(context.Background(), "f")
		if err != nil {
			if saved.AccessToken != "old" || (saved.RefreshToken != "r1") {
				t.Fatalf("a failed refresh (%v) changed the stored tokens: %v", err, saved)
			}
			return
		}
		if saved.AccessToken == "" || saved.AccessToken == "old" || saved.RefreshToken == "" || saved.Lifetime <= 0 {
			t.Fatalf("a successful refresh stored %v", saved)
		}
	})
}
