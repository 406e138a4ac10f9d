package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// reply is what the fake token endpoint does with one request.
type reply int

const (
	replyOK reply = iota
	replyOKNoRefreshToken
	replyOKNoExpiresIn
	replyInvalidGrant
	replyInvalidClient
	replyTooMany
	replyUnavailable
	replyGarbage
	replyHang
	// replyHeldOK: replyOK once the test releases it (unhang), as a
	// holder paused mid-request would get it.
	replyHeldOK
	// replyTimeout: the answer never comes in time. The test's transport
	// (timeoutTransport) turns it into the timeout error the keeper's
	// request timeout gives, without a real timer that a busy machine
	// could also trip on a merely slow answer.
	replyTimeout
)

// timeoutTransport answers a replyTimeout with a timeout error.
type timeoutTransport struct{ base http.RoundTripper }

func (t timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.Header.Get("X-Test-Timeout") != "" {
		_ = resp.Body.Close()
		return nil, os.ErrDeadlineExceeded // as a read deadline reports it
	}
	return resp, err
}

// oauthServer is an in-process OAuth 2.0 server with single-use refresh
// tokens: presenting a refresh token a second time is recorded as reuse.
type oauthServer struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	script    []reply // replies for the next token requests; OK after that
	presented map[string]int
	live      map[string]bool // refresh tokens that may be used
	codes     map[string]string
	refreshes int
	exchanges int
	seq       int
	release   chan struct{} // closed to end replyHang
	lifetime  int
	forms     []map[string]string
	authorize func(w http.ResponseWriter, r *http.Request) // optional override
	method    string                                       // the client authentication method it accepts; any when empty
	extra     func() map[string]any                        // more fields of each token answer, when set
}

// clientAuthMethod names how the request authenticates its client.
func clientAuthMethod(r *http.Request) string {
	if _, _, ok := r.BasicAuth(); ok {
		return AuthMethodBasic
	}
	if r.PostForm.Get("client_secret") != "" {
		return AuthMethodPost
	}
	return AuthMethodNone
}

func newOAuthServer(t *testing.T) *oauthServer {
	s := &oauthServer{t: t, presented: map[string]int{}, live: map[string]bool{}, codes: map[string]string{},
		release: make(chan struct{}), lifetime: 5400}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/authorize", s.authorizeHandler)
	mux.HandleFunc("/revoke", s.revoke)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.unhang()
		s.srv.Close()
	})
	return s
}

func (s *oauthServer) unhang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

func (s *oauthServer) then(r ...reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, r...)
}

// issueRefreshToken makes a live refresh token, as a sign-in would.
func (s *oauthServer) issueRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rt := "rt-" + strconv.Itoa(s.seq)
	s.live[rt] = true
	return rt
}

func (s *oauthServer) reused() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for rt, n := range s.presented {
		if n > 1 {
			out = append(out, rt)
		}
	}
	return out
}

func (s *oauthServer) refreshCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

func (s *oauthServer) authorizeHandler(w http.ResponseWriter, r *http.Request) {
	if s.authorize != nil {
		s.authorize(w, r)
		return
	}
	q := r.URL.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "PKCE S256 required", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.seq++
	code := "code-" + strconv.Itoa(s.seq)
	s.codes[code] = q.Get("code_challenge")
	s.mu.Unlock()
	http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+q.Get("state"), http.StatusFound)
}

func (s *oauthServer) revoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	s.mu.Lock()
	delete(s.live, r.PostForm.Get("token"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *oauthServer) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost { // a sign-in's check that the endpoint answers
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	method := s.method
	s.mu.Unlock()
	if used := clientAuthMethod(r); method != "" && used != method {
		// As fosite (Ory Hydra) words it.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": fmt.Sprintf(
			"Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method). The OAuth 2.0 Client supports client authentication method '%s', but method '%s' was requested.", method, used)})
		return
	}
	s.mu.Lock()
	form := map[string]string{}
	for k := range r.PostForm {
		form[k] = r.PostForm.Get(k)
	}
	s.forms = append(s.forms, form)
	next := replyOK
	if len(s.script) > 0 {
		next, s.script = s.script[0], s.script[1:]
	}
	grant := r.PostForm.Get("grant_type")
	switch grant {
	case "refresh_token":
		s.refreshes++
		rt := r.PostForm.Get("refresh_token")
		wasLive := s.live[rt]
		// Single use once processed, successful or not (as Procore). A 429
		// or 503 here models a front end that refused before processing; a
		// client that fails authentication never gets as far as its token.
		if next != replyTooMany && next != replyUnavailable && next != replyInvalidClient {
			s.presented[rt]++
			delete(s.live, rt)
		}
		if !wasLive && next == replyOK {
			next = replyInvalidGrant
		}
	case "authorization_code":
		s.exchanges++
		challenge, ok := s.codes[r.PostForm.Get("code")]
		delete(s.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if (!ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge) && next == replyOK {
			next = replyInvalidGrant
		}
	}
	s.seq++
	seq := s.seq
	release := s.release
	lifetime := s.lifetime
	extra := s.extra
	s.mu.Unlock()
	if next == replyHeldOK {
		<-release
		next = replyOK
	}

	writeJSON := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	newRT := fmt.Sprintf("rt-%d", seq)
	ok := map[string]any{"access_token": fmt.Sprintf("at-%d", seq), "token_type": "bearer", "expires_in": lifetime, "refresh_token": newRT, "created_at": time.Now().Unix()}
	if extra != nil {
		maps.Copy(ok, extra())
	}
	switch next {
	case replyOK, replyOKNoRefreshToken, replyOKNoExpiresIn:
		if next == replyOKNoRefreshToken {
			delete(ok, "refresh_token")
			if grant == "refresh_token" { // the old one stays usable
				s.mu.Lock()
				s.live[r.PostForm.Get("refresh_token")] = true
				s.mu.Unlock()
			}
		} else {
			s.mu.Lock()
			s.live[newRT] = true
			s.mu.Unlock()
		}
		if next == replyOKNoExpiresIn {
			delete(ok, "expires_in")
		}
		writeJSON(http.StatusOK, ok)
	case replyInvalidGrant:
		writeJSON(http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "The provided authorization grant is invalid"})
	case replyInvalidClient:
		writeJSON(http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."})
	case replyTooMany:
		w.Header().Set("Retry-After", "120")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case replyUnavailable:
		http.Error(w, "<html>maintenance</html>", http.StatusServiceUnavailable)
	case replyGarbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token": "at-trunc`))
	case replyHang:
		select {
		case <-release:
		case <-r.Context().Done():
		}
	case replyTimeout:
		w.Header().Set("X-Test-Timeout", "1")
		w.WriteHeader(http.StatusOK)
	}
}

// memStore is the MemoryStore with failures on demand.
type memStore struct {
	*MemoryStore
	mu       sync.Mutex
	failSave int   // fail this many SaveTokens calls
	failLoad error // LoadTokens returns this when set
}

func newMemStore() *memStore { return &memStore{MemoryStore: NewMemoryStore()} }

var errKeyringDown = errors.New("keyring unavailable: test says so")

func (m *memStore) LoadTokens(ctx context.Context, name string) (*TokenSet, error) {
	m.mu.Lock()
	fail := m.failLoad
	m.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	return m.MemoryStore.LoadTokens(ctx, name)
}

func (m *memStore) SaveTokens(ctx context.Context, name string, t *TokenSet, prev uint64) error {
	m.mu.Lock()
	if m.failSave > 0 {
		m.failSave--
		m.mu.Unlock()
		return errKeyringDown
	}
	m.mu.Unlock()
	return m.MemoryStore.SaveTokens(ctx, name, t, prev)
}

// stored is what the store holds for name, bypassing the failures.
func (m *memStore) stored(name string) *TokenSet {
	t, err := m.MemoryStore.LoadTokens(context.Background(), name)
	if err != nil {
		return nil
	}
	return t
}

// put stores t for name, as another process would.
func (m *memStore) put(name string, t *TokenSet) {
	_ = m.MemoryStore.SaveTokens(context.Background(), name, t, AnyGeneration)
}

// memLocker is the in-process Locker.
type memLocker = ProcessLocker
