// Package localapi is tokentray's local API: HTTP over a unix socket that
// only the same user can reach, served by the running tray and used by the
// CLI, the Go client package and any script (curl --unix-socket). The tray's
// keepers are the only refreshers; everyone else asks them.
package localapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// Server serves the API for a set of keepers.
type Server struct {
	// Keepers lists the connections served. It is asked on every request:
	// the tray's connections change while it runs.
	Keepers func() []*auth.Keeper
	// ShowDashboard brings the tray's dashboard up (single instance).
	ShowDashboard func()
	// Clock reads the time for expires_in.
	Clock auth.Clock
	// HeaderTimeout drops a client that connects and sends no request
	// (default 5 s).
	HeaderTimeout time.Duration

	srv *http.Server
}

// keepers is Keepers(), or none when it is not set.
func (s *Server) keepers() []*auth.Keeper {
	if s.Keepers == nil {
		return nil
	}
	return s.Keepers()
}

// Fixed serves the same keepers for the server's whole life.
func Fixed(keepers ...*auth.Keeper) func() []*auth.Keeper {
	return func() []*auth.Keeper { return keepers }
}

// Error is the API's error body. ExitCode has the CLI's meaning.
type Error struct {
	Code     string `json:"error"`
	Message  string `json:"message"`
	Hint     string `json:"hint,omitempty"`
	ExitCode int    `json:"exit_code"`
}

// Token is the body of GET /v1/connections/NAME/token.
type Token struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExpiresIn   int64     `json:"expires_in"`
	APIBase     string    `json:"api_base,omitempty"`
	// Provider is the connection's provider preset ("procore", "generic").
	Provider string `json:"provider,omitempty"`
	// Warning is set when the token is handed out although the refresh it
	// called for failed: it is still valid, until ExpiresAt.
	Warning string `json:"warning,omitempty"`
}

// SignedOut is the body of POST /v1/connections/NAME/logout.
type SignedOut struct {
	Connection
	auth.SignOut
}

// Connection is one entry of GET /v1/connections.
type Connection struct {
	auth.Status
	Provider    string `json:"provider"`
	Environment string `json:"environment,omitempty"`
	APIBase     string `json:"api_base,omitempty"`
}

type peerKey struct{}

// Serve answers on l until ctx ends. Requests from another user are
// refused; a client that connects and never sends a request is dropped.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.Clock == nil {
		s.Clock = auth.SystemClock{}
	}
	if s.HeaderTimeout <= 0 {
		s.HeaderTimeout = 5 * time.Second
	}
	s.srv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: s.HeaderTimeout,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, checkPeer(c))
		},
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(shutdown)
	}()
	if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handler routes the API, behind the peer check.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/connections", s.list)
	mux.HandleFunc("GET /v1/connections/{name}", s.one)
	mux.HandleFunc("GET /v1/connections/{name}/token", s.token)
	mux.HandleFunc("POST /v1/connections/{name}/refresh", s.refresh)
	mux.HandleFunc("POST /v1/connections/{name}/login", s.login)
	mux.HandleFunc("POST /v1/connections/{name}/logout", s.logout)
	mux.HandleFunc("POST /v1/dashboard", s.dashboard)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, Error{Code: "not_found", Message: r.Method + " " + r.URL.Path + " is not part of the API", Hint: "See the README's Local API section.", ExitCode: 2})
	})
	return sameUser(mux)
}

// peer is what the kernel says about the process at the other end.
type peer int

const (
	peerUnknown peer = iota // the platform cannot say; the socket's permissions protect it
	peerSameUser
	peerOtherUser
)

// sameUser refuses a peer that runs as another user.
func sameUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, _ := r.Context().Value(peerKey{}).(peer); p == peerOtherUser {
			writeError(w, http.StatusForbidden, Error{Code: "forbidden", Message: "this tokentray belongs to another user", ExitCode: 1})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) keeper(w http.ResponseWriter, r *http.Request) *auth.Keeper {
	name := r.PathValue("name")
	var names []string
	for _, k := range s.keepers() {
		if k.Connection().Name == name {
			return k
		}
		names = append(names, k.Connection().Name)
	}
	writeError(w, http.StatusNotFound, Error{Code: "unknown_connection", Message: "no connection named " + quote(name),
		Hint: "Configured: " + strings.Join(names, ", "), ExitCode: 2})
	return nil
}

// NewToken is the API's answer for a token handed out at now.
func NewToken(t *auth.Handout, k *auth.Keeper, now time.Time) Token {
	return Token{AccessToken: t.AccessToken.Reveal(), TokenType: t.TokenType, ExpiresAt: t.Expiry().UTC(),
		ExpiresIn: int64(t.Expiry().Sub(now) / time.Second), APIBase: k.Connection().Endpoints.APIBase,
		Provider: k.Connection().Provider.Name, Warning: t.Warning}
}

func describe(k *auth.Keeper) Connection {
	c := k.Connection()
	return Connection{Status: k.Status(), Provider: c.Provider.Name, Environment: c.Environment, APIBase: c.Endpoints.APIBase}
}

func (s *Server) list(w http.ResponseWriter, _ *http.Request) {
	keepers := s.keepers()
	out := make([]Connection, 0, len(keepers))
	for _, k := range keepers {
		out = append(out, describe(k))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	if k := s.keeper(w, r); k != nil {
		writeJSON(w, http.StatusOK, describe(k))
	}
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	minValid := auth.DefaultMinValid
	if v := r.URL.Query().Get("min_valid"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, Error{Code: "bad_request", Message: "min_valid " + quote(v) + " is not a duration such as 2m or 90s", ExitCode: 2})
			return
		}
		minValid = d
	}
	t, err := k.Token(r.Context(), minValid)
	if err != nil {
		writeKeeperError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewToken(t, k, s.Clock.Now()))
}

// refresh refreshes now. With ?stale=HASH (TokenHash of the access token a
// client saw refused), it refreshes only if that token is still the current
// one: a burst of 401s costs one refresh, not one each.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	if stale := r.URL.Query().Get("stale"); stale != "" {
		if cur, err := k.Token(r.Context(), 0); err == nil && TokenHash(cur.AccessToken.Reveal()) != stale {
			writeJSON(w, http.StatusOK, describe(k))
			return
		}
	}
	if err := k.Refresh(r.Context()); err != nil {
		writeKeeperError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, describe(k))
}

// login starts the browser sign-in in the tray. With ?wait=true it answers
// when the sign-in has ended, so that `tokentray login` can report it.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	timeout := auth.DefaultLoginTimeout
	if v := r.URL.Query().Get("timeout"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			timeout = d
		}
	}
	done := make(chan error, 1)
	go func() { done <- k.Login(context.WithoutCancel(r.Context()), auth.LoginOptions{Timeout: timeout}) }()
	if r.URL.Query().Get("wait") != "true" {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "sign-in started: finish it in the browser"})
		return
	}
	select {
	case err := <-done:
		if err != nil {
			writeKeeperError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, describe(k))
	case <-r.Context().Done():
	}
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	out, err := k.Logout(r.Context(), r.URL.Query().Get("local_only") == "true")
	if err != nil {
		writeKeeperError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, SignedOut{Connection: describe(k), SignOut: out})
}

func (s *Server) dashboard(w http.ResponseWriter, _ *http.Request) {
	if s.ShowDashboard != nil {
		s.ShowDashboard()
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "shown"})
}

// writeKeeperError maps the keeper's errors to the CLI's exit codes.
func writeKeeperError(w http.ResponseWriter, err error) {
	e := Error{Code: "internal", Message: err.Error(), Hint: auth.HintOf(err), ExitCode: 1}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, auth.ErrMinValidUnmeetable):
		e.Code, e.ExitCode, status = "min_valid_unmeetable", 2, http.StatusBadRequest
	case errors.Is(err, auth.ErrCredentialsRefused):
		e.Code, e.ExitCode, status = "client_refused", 3, http.StatusConflict
	case errors.Is(err, auth.ErrNeedsSignIn):
		e.Code, e.ExitCode, status = "needs_sign_in", 3, http.StatusConflict
	case errors.Is(err, auth.ErrUnreachable), errors.Is(err, auth.ErrRevokeFailed):
		e.Code, e.ExitCode, status = "provider_unreachable", 4, http.StatusBadGateway
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, auth.ErrLoginTimeout):
		e.Code, status = "timeout", http.StatusGatewayTimeout
	}
	writeError(w, status, e)
}

func writeError(w http.ResponseWriter, status int, e Error) { writeJSON(w, status, e) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func quote(s string) string { return `"` + s + `"` }

// TokenHash names an access token without revealing it: the first 16 hex
// digits of its SHA-256.
func TokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return hex.EncodeToString(sum[:8])
}
