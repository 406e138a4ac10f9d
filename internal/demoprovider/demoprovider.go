// Package demoprovider is a small OAuth 2.0 authorization server that runs
// inside tokentray for `tokentray demo`: loopback only, one demo user, PKCE
// S256 required, single-use rotating refresh tokens with reuse detection (a
// reused refresh token revokes the whole grant, as RFC 9700 advises),
// revocation, and a "who am I" API endpoint. Access tokens live minutes, so
// a new user sees a refresh, a failure and a recovery in one sitting.
//
// It is a demo and a teaching aid, not a server to deploy: state is in
// memory and every sign-in is approved by one click.
package demoprovider

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ClientID and ClientSecret are the demo client's credentials.
const (
	ClientID     = "tokentray-demo"
	ClientSecret = "demo-secret-not-for-production"
)

// Server is the demo authorization server.
type Server struct {
	// AccessTTL is the access token lifetime (default 2 minutes).
	AccessTTL time.Duration
	// RedirectURI is the only redirect URI the demo client may use.
	RedirectURI string

	mu       sync.Mutex
	codes    map[string]pendingCode
	access   map[string]grantRef
	refresh  map[string]grantRef
	used     map[string]string // consumed refresh token -> grant id
	grants   map[string]*grant
	listener net.Listener
	srv      *http.Server
	stats    Stats
}

// Stats counts what the server did, for tests and the demo's status line.
type Stats struct {
	Exchanges, Refreshes, Rejected, Revocations int
}

type pendingCode struct {
	challenge string
	redirect  string
	expires   time.Time
	scope     string
}

type grant struct {
	id      string
	revoked bool
	scope   string
}

type grantRef struct {
	grant   string
	expires time.Time
}

// Start listens on 127.0.0.1 (a free port) and serves until Close.
func (s *Server) Start() (baseURL string, err error) {
	if s.AccessTTL <= 0 {
		s.AccessTTL = 2 * time.Minute
	}
	s.codes, s.access, s.refresh = map[string]pendingCode{}, map[string]grantRef{}, map[string]grantRef{}
	s.used, s.grants = map[string]string{}, map[string]*grant{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.listener = l
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", s.authorize)
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/revoke", s.revoke)
	mux.HandleFunc("/api/me", s.me)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

// URL is the server's base URL, once started.
func (s *Server) URL() string {
	if s.listener == nil {
		return ""
	}
	return "http://" + s.listener.Addr().String()
}

// Close stops the server.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// BreakRefreshTokens revokes every grant, as a provider does when an admin
// revokes the app: the next refresh gets invalid_grant.
func (s *Server) BreakRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.grants {
		g.revoked = true
	}
}

var consentPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo provider · sign in</title>
<style>
 :root { color-scheme: light dark; }
 body { margin:0; min-height:100vh; display:grid; place-items:center; background:#eef1f6; font:16px/1.5 system-ui, sans-serif; color:#1d2330; }
 @media (prefers-color-scheme: dark) { body { background:#11151f; color:#e8ebf2; } main { background:#1c2130 !important; } }
 main { width:min(460px, calc(100vw - 32px)); background:#fff; border-radius:14px; padding:32px 36px; box-shadow:0 10px 30px rgba(0,0,0,.1); }
 h1 { font-size:21px; margin:0 0 6px; } p { margin:8px 0; color:#5b6475; } code { font-size:13px; white-space:nowrap; }
 .row { display:flex; gap:12px; margin-top:22px; }
 button { font:inherit; border:0; border-radius:8px; padding:10px 18px; cursor:pointer; }
 .allow { background:#1f9d55; color:#fff; } .deny { background:rgba(127,127,127,.18); color:inherit; }
</style></head>
<body><main>
 <h1>Demo provider</h1>
 <p><strong>tokentray demo</strong> asks to access the demo API as <code>demo-user</code>.</p>
 <p>This server runs inside tokentray on 127.0.0.1 so you can try everything without an account.</p>
 <form method="post" action="/authorize">
  {{range $k, $v := .}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
  <div class="row">
   <button class="allow" name="decision" value="allow" type="submit">Sign in as demo-user</button>
   <button class="deny" name="decision" value="deny" type="submit">Deny</button>
  </div>
 </form>
</main></body></html>`))
})

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	p := r.Form
	redirect := p.Get("redirect_uri")
	if p.Get("client_id") != ClientID || redirect != s.RedirectURI {
		// Never redirect to an unregistered URI (RFC 6749 §4.1.2.1).
		http.Error(w, "unknown client or redirect_uri not registered: "+redirect, http.StatusBadRequest)
		return
	}
	back := func(q url.Values) {
		q.Set("state", p.Get("state"))
		q.Set("iss", "http://"+r.Host)
		http.Redirect(w, r, redirect+"?"+q.Encode(), http.StatusFound)
	}
	if p.Get("response_type") != "code" {
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	}
	if p.Get("code_challenge_method") != "S256" || len(p.Get("code_challenge")) < 43 {
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE with S256 is required"}})
		return
	}
	if r.Method == http.MethodGet {
		fields := map[string]string{}
		for _, k := range []string{"client_id", "redirect_uri", "response_type", "state", "code_challenge", "code_challenge_method", "scope"} {
			fields[k] = p.Get(k)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = consentPage().Execute(w, fields)
		return
	}
	if p.Get("decision") != "allow" {
		back(url.Values{"error": {"access_denied"}, "error_description": {"the demo user denied access"}})
		return
	}
	code := random()
	s.mu.Lock()
	s.codes[code] = pendingCode{challenge: p.Get("code_challenge"), redirect: redirect, expires: time.Now().Add(time.Minute), scope: p.Get("scope")}
	s.mu.Unlock()
	back(url.Values{"code": {code}})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "POST a form")
		return
	}
	f := r.PostForm
	// Both methods of RFC 6749 §2.3.1: HTTP Basic (which every server must
	// support) and the form body; one request uses one of them.
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = f.Get("client_id"), f.Get("client_secret")
	}
	if (basic && f.Get("client_secret") != "") ||
		subtle.ConstantTimeCompare([]byte(id), []byte(ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(ClientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch f.Get("grant_type") {
	case "authorization_code":
		pc, ok := s.codes[f.Get("code")]
		delete(s.codes, f.Get("code"))
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if !ok || time.Now().After(pc.expires) || pc.redirect != f.Get("redirect_uri") ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != pc.challenge {
			s.stats.Rejected++
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the code is unknown, used, expired, or the PKCE verifier does not match")
			return
		}
		s.stats.Exchanges++
		g := &grant{id: random(), scope: pc.scope}
		s.grants[g.id] = g
		s.issue(w, g)
	case "refresh_token":
		rt := f.Get("refresh_token")
		ref, ok := s.refresh[rt]
		if !ok {
			if gid, reused := s.used[rt]; reused {
				// Reuse of a rotated token: someone else may hold it. Revoke the grant.
				if g := s.grants[gid]; g != nil {
					g.revoked = true
				}
			}
			s.stats.Rejected++
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, expired, revoked or already used")
			return
		}
		delete(s.refresh, rt)
		s.used[rt] = ref.grant
		g := s.grants[ref.grant]
		if g == nil || g.revoked {
			s.stats.Rejected++
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the grant was revoked")
			return
		}
		s.stats.Refreshes++
		s.issue(w, g)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "use authorization_code or refresh_token")
	}
}

// issue writes a new access and refresh token pair for g. Callers hold mu.
func (s *Server) issue(w http.ResponseWriter, g *grant) {
	at, rt := "demo-at-"+random(), "demo-rt-"+random()
	now := time.Now()
	s.access[at] = grantRef{grant: g.id, expires: now.Add(s.AccessTTL)}
	s.refresh[rt] = grantRef{grant: g.id}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": at, "token_type": "bearer", "expires_in": int(s.AccessTTL / time.Second),
		"refresh_token": rt, "scope": g.scope, "created_at": now.Unix(),
	})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "POST a form")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := r.PostForm.Get("token")
	for _, m := range []map[string]grantRef{s.refresh, s.access} {
		if ref, ok := m[tok]; ok {
			if g := s.grants[ref.grant]; g != nil {
				g.revoked = true
			}
			s.stats.Revocations++
		}
	}
	w.WriteHeader(http.StatusOK) // RFC 7009: also for unknown tokens
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	ref, found := s.access[at]
	g := s.grants[ref.grant]
	s.mu.Unlock()
	if !ok || !found || time.Now().After(ref.expires) || g == nil || g.revoked {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"id":1,"login":"demo-user","name":"Demo User"}`))
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Consent plays the person at the consent page of authURL (the address a
// sign-in opens in the browser) without a browser: it loads the page and
// submits its form with decision ("allow" or "deny"), and follows the
// server on to the redirect URI, as a browser would. For tests, and
// programs that sign in to the demo unattended.
func Consent(authURL, decision string) error {
	landing, err := Landing(authURL, decision)
	if err != nil {
		return err
	}
	resp, err := http.Get(landing)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Landing is Consent for a browser on another machine, where the redirect
// URI does not load: it returns the address the browser lands on, as the
// person would copy it from the address bar.
func Landing(authURL, decision string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", err
	}
	resp, err := http.Get(authURL)
	if err != nil {
		return "", err
	}
	page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the consent page answered HTTP %d: %.200s", resp.StatusCode, page)
	}
	form := url.Values{"decision": {decision}}
	for _, m := range hiddenInput().FindAllStringSubmatch(string(page), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.PostForm(u.Scheme+"://"+u.Host+"/authorize", form)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	landing := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || landing == "" {
		return "", fmt.Errorf("the consent was answered HTTP %d, not a redirect", resp.StatusCode)
	}
	return landing, nil
}

var hiddenInput = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
})
