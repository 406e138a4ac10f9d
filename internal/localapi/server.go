// Package localapi serves tokentray's local API: HTTP over a unix socket
// that only the same user can reach, served by the running process (the
// resident process, `serve`, a demo) and used by the CLI, the window
// process, the Go client package and any script (curl --unix-socket). Its
// keepers are the only refreshers; everyone else asks them. The wire types
// are in client/apitype; this package turns the core's values into them.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/op"
	"github.com/tokentray/tokentray/internal/proxy"
)

// Server serves the API for a set of keepers.
type Server struct {
	// Keepers lists the connections served. It is asked on every request:
	// the tray's connections change while it runs. Without it, the Hub's
	// keepers are served.
	Keepers func() []*auth.Keeper
	// Hub is the event stream; nil serves none.
	Hub *Hub
	// Connections is the config the editor changes; nil serves no config
	// endpoints (a demo).
	Connections Editable
	// ShowDashboard brings the tray's dashboard up (single instance).
	ShowDashboard func()
	// Remotes act on the connections of [[remote]] servers that the Hub
	// lists (NAME@REMOTE); nil: none are followed.
	Remotes Remotes
	// Proxy sends agents' API calls (…/NAME/api/PATH) with the token
	// added; nil: one with the defaults.
	Proxy *proxy.Proxy
	// Headless: no browser opens here (tokentray serve); a sign-in takes a
	// browser elsewhere and a pasted address.
	Headless bool
	// Clock reads the time for expires_in.
	Clock auth.Clock
	// HeaderTimeout drops a client that connects and sends no request
	// (default 5 s).
	HeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request (default 10 s).
	ReadTimeout time.Duration

	srv      *http.Server
	stopping chan struct{}

	mu     sync.Mutex
	pastes map[string]*pasteSignIn // sign-ins waiting for a pasted address, by connection
	// devices are the sign-ins with a code (RFC 8628) that wait for a
	// person, by connection.
	devices map[string]*deviceSignIn

	proxyOnce sync.Once
}

// proxy is the Proxy, one with the defaults when none was given.
func (s *Server) proxy() *proxy.Proxy {
	s.proxyOnce.Do(func() {
		if s.Proxy == nil {
			s.Proxy = &proxy.Proxy{Clock: s.Clock}
		}
	})
	return s.Proxy
}

// Remotes act on connections that [[remote]] servers keep. Their tokens
// stay there: this machine signs them in (its browser) and asks for a
// refresh, and nothing else.
type Remotes interface {
	// SignIn starts a sign-in of name through this machine's browser; how
	// it goes is told in the event log.
	SignIn(name string)
	// Refresh asks the server to refresh name now.
	Refresh(ctx context.Context, name string) error
}

// pasteSignIn is a sign-in of the server's that waits for the address the
// person's browser landed on.
type pasteSignIn struct {
	address *io.PipeWriter
	done    chan error    // the sign-in's outcome, once
	ended   chan struct{} // closed when the sign-in has returned
}

// keepers is Keepers(), or none when it is not set.
func (s *Server) keepers() []*auth.Keeper {
	switch {
	case s.Keepers != nil:
		return s.Keepers()
	case s.Hub != nil:
		return s.Hub.Keepers()
	}
	return nil
}

// Fixed serves the same keepers for the server's whole life.
func Fixed(keepers ...*auth.Keeper) func() []*auth.Keeper {
	return func() []*auth.Keeper { return keepers }
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
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = 10 * time.Second
	}
	s.srv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: s.HeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, checkPeer(c))
		},
	}
	s.stopping = make(chan struct{})
	go func() {
		<-ctx.Done()
		close(s.stopping) // streams end, so that Shutdown need not wait for them
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
	mux.HandleFunc("POST /v1/connections/{name}/login/paste", s.loginPaste)
	mux.HandleFunc("GET /v1/connections/{name}/login/device", s.loginDevice)
	mux.HandleFunc("PUT /v1/connections/{name}/client_secret", s.setClientSecret)
	mux.HandleFunc("POST /v1/connections/{name}/logout", s.logout)
	mux.HandleFunc("POST /v1/connections/{name}/check", s.check)
	mux.HandleFunc("/v1/connections/{name}/api/{path...}", s.api)
	mux.HandleFunc("POST /v1/dashboard", s.dashboard)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/config", s.getConfig)
	mux.HandleFunc("GET /v1/config/connections/{name}", s.getConfigConnection)
	mux.HandleFunc("POST /v1/config/connections", s.saveConnection)
	mux.HandleFunc("PUT /v1/config/connections/{name}", s.saveConnection)
	mux.HandleFunc("DELETE /v1/config/connections/{name}", s.removeConnection)
	mux.HandleFunc("POST /v1/config/test", s.testSignIn)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, apitype.Error{Code: apitype.CodeNotFound, Message: r.Method + " " + r.URL.Path + " is not part of the API", Hint: "See the README's Local API section."})
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
			writeError(w, http.StatusForbidden, apitype.Error{Code: apitype.CodeForbidden, Message: "this tokentray belongs to another user"})
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
	if b, ok := s.broken(name); ok {
		writeError(w, http.StatusUnprocessableEntity, apitype.Error{Code: apitype.CodeInvalidConfig, Message: b.Error(),
			Hint: op.BrokenHint(s.Connections.Config().Path), Fields: b.Problems.ByKey()})
		return nil
	}
	if c, ok := s.remote(name); ok {
		there, _, _ := strings.Cut(name, "@")
		writeError(w, http.StatusConflict, apitype.Error{Code: apitype.CodeRemoteConnection,
			Message: name + " is kept by the tokentray on " + c.Remote + ": its tokens stay there",
			Hint:    "On " + c.Remote + " itself, its agents ask it (tokentray token " + there + ", or its own local API); from here it can be signed in and refreshed."})
		return nil
	}
	writeError(w, http.StatusNotFound, apitype.Error{Code: apitype.CodeUnknownConnection, Message: "no connection named " + quote(name),
		Hint: "Configured: " + strings.Join(names, ", ")})
	return nil
}

// broken is the broken table called name, if the config has one.
func (s *Server) broken(name string) (config.Broken, bool) {
	if s.Connections == nil {
		return config.Broken{}, false
	}
	return s.Connections.Config().BrokenNamed(name)
}

func (s *Server) list(w http.ResponseWriter, _ *http.Request) {
	keepers := s.keepers()
	out := make([]apitype.Connection, 0, len(keepers))
	for _, k := range keepers {
		out = append(out, s.describe(k))
	}
	if s.Connections != nil {
		cfg := s.Connections.Config()
		for _, b := range cfg.Broken {
			out = append(out, op.DescribeBroken(b, cfg.Path))
		}
	}
	if s.Hub != nil {
		out = append(out, s.Hub.RemoteConnections()...)
	}
	writeJSON(w, http.StatusOK, out)
}

// describe is Describe with what only the server knows: the API calls
// that wait for a sign-in.
func (s *Server) describe(k *auth.Keeper) apitype.Connection {
	c := op.Describe(k)
	c.Waiting = s.proxy().Waiting(k)
	return c
}

// remote is the remote connection name (NAME@REMOTE), if the hub has it.
func (s *Server) remote(name string) (apitype.Connection, bool) {
	if s.Hub == nil || !strings.Contains(name, "@") {
		return apitype.Connection{}, false
	}
	return s.Hub.RemoteConnection(name)
}

func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	if c, ok := s.remote(r.PathValue("name")); ok {
		writeJSON(w, http.StatusOK, c)
		return
	}
	if k := s.keeper(w, r); k != nil {
		writeJSON(w, http.StatusOK, s.describe(k))
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
			writeError(w, http.StatusBadRequest, apitype.Error{Code: apitype.CodeBadRequest, Message: "min_valid " + quote(v) + " is not a duration such as 2m or 90s"})
			return
		}
		minValid = d
	}
	t, err := op.Token(r.Context(), k, minValid, s.Clock.Now)
	if err != nil {
		writeKeeperError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// refresh refreshes now. With ?stale=HASH (TokenHash of the access token a
// client saw refused), it refreshes only if that token is still the current
// one: a burst of 401s costs one refresh, not one each.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	if c, ok := s.remote(r.PathValue("name")); ok && s.Remotes != nil {
		if err := s.Remotes.Refresh(r.Context(), c.Name); err != nil {
			writeError(w, http.StatusBadGateway, apitype.Error{Code: apitype.CodeInternal, Message: err.Error()})
			return
		}
		c, _ = s.remote(c.Name)
		writeJSON(w, http.StatusOK, c)
		return
	}
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	c, err := op.Refresh(r.Context(), k, r.URL.Query().Get("stale"))
	if err != nil {
		writeKeeperError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// login starts the browser sign-in in the tray. With ?wait=true it answers
// when the sign-in has ended, so that `tokentray login` can report it.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	device := r.URL.Query().Get("device") == "true"
	if c, ok := s.remote(r.PathValue("name")); ok && s.Remotes != nil && r.URL.Query().Get("paste") != "true" && r.URL.Query().Get("wait") != "true" && !device {
		s.Remotes.SignIn(c.Name)
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "sign-in of " + c.Name + " started: finish it in the browser"})
		return
	}
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	timeout, asked := auth.DefaultLoginTimeout, time.Duration(0)
	if v := r.URL.Query().Get("timeout"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			timeout, asked = d, d
		}
	}
	if r.URL.Query().Get("paste") == "true" {
		s.startPaste(w, r, k, timeout)
		return
	}
	if device {
		s.startDevice(w, r, k, asked) // none asked: as long as the code is valid
		return
	}
	if s.Headless {
		writeError(w, http.StatusConflict, apitype.Error{Code: apitype.CodeHeadless,
			Message: "the tokentray running here is headless (tokentray serve): it opens no browser",
			Hint:    "sign in with a browser on any machine: tokentray login " + k.Connection().Name + " --paste"})
		return
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
		writeJSON(w, http.StatusOK, op.Describe(k))
	case <-r.Context().Done():
	}
}

// startPaste starts a sign-in that completes with a pasted address (the
// browser is on another machine: `tokentray login NAME --paste`). The PKCE
// verifier and the state stay here; the answer is the URL to open. The
// sign-in waits for POST …/login/paste until timeout.
func (s *Server) startPaste(w http.ResponseWriter, r *http.Request, k *auth.Keeper, timeout time.Duration) {
	name := k.Connection().Name
	pr, pw := io.Pipe()
	p := &pasteSignIn{address: pw, done: make(chan error, 1), ended: make(chan struct{})}
	s.mu.Lock()
	old := s.pastes[name]
	if s.pastes == nil {
		s.pastes = map[string]*pasteSignIn{}
	}
	s.pastes[name] = p
	s.mu.Unlock()
	if old != nil {
		// A person who started again: the earlier sign-in ends first, so
		// that this one is a sign-in of its own, not a wait for that one.
		_ = old.address.CloseWithError(errors.New("a newer sign-in by pasting replaced this one"))
		select {
		case <-old.ended:
		case <-r.Context().Done():
			return
		}
	}
	shown := make(chan string, 1)
	go func() {
		select {
		case <-s.Clock.After(timeout):
			_ = pw.CloseWithError(fmt.Errorf("%w: nothing was pasted within %s", auth.ErrLoginTimeout, timeout))
		case <-p.ended:
		}
	}()
	go func() {
		defer close(p.ended)
		err := k.Login(context.WithoutCancel(r.Context()), auth.LoginOptions{Timeout: timeout, Paste: pr, PasteOnly: true,
			ShowURL: func(u string) {
				select {
				case shown <- u:
				default:
				}
			}})
		s.mu.Lock()
		if s.pastes[name] == p {
			delete(s.pastes, name)
		}
		s.mu.Unlock()
		p.done <- err
	}()
	select {
	case u := <-shown:
		writeJSON(w, http.StatusAccepted, apitype.PasteSignIn{AuthorizeURL: u, RedirectURI: k.Connection().RedirectURI.Raw})
	case err := <-p.done:
		writeKeeperError(w, err)
	case <-r.Context().Done():
		_ = pw.CloseWithError(r.Context().Err())
	}
}

// loginPaste completes the sign-in startPaste began with the address the
// browser landed on (or an out-of-band code), and answers when the code
// has been exchanged and the tokens saved.
func (s *Server) loginPaste(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	var in apitype.Pasted
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil || strings.TrimSpace(in.Address) == "" || strings.ContainsAny(in.Address, "\r\n") {
		writeError(w, http.StatusBadRequest, apitype.Error{Code: apitype.CodeBadRequest, Message: `the body must be {"address": "…"}, one line: the whole address the browser landed on, or the code`})
		return
	}
	s.mu.Lock()
	p := s.pastes[k.Connection().Name]
	s.mu.Unlock()
	if p == nil {
		writeError(w, http.StatusConflict, apitype.Error{Code: apitype.CodeBadRequest, Message: "no sign-in of " + quote(k.Connection().Name) + " waits for a pasted address",
			Hint: "start one: tokentray login " + k.Connection().Name + " --paste"})
		return
	}
	if _, err := io.WriteString(p.address, strings.TrimSpace(in.Address)+"\n"); err != nil {
		writeKeeperError(w, <-p.done)
		return
	}
	select {
	case err := <-p.done:
		if err != nil {
			writeKeeperError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, op.Describe(k))
	case <-r.Context().Done():
	}
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	out, err := op.Logout(r.Context(), k, r.URL.Query().Get("local_only") == "true")
	if err != nil {
		writeKeeperError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// api sends the request to the connection's API with its access token
// added (internal/proxy): the agent never holds the token.
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	// An upload or a stream takes as long as it takes: no read deadline.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	path := ""
	if parts := strings.SplitN(r.URL.EscapedPath(), "/", 6); len(parts) == 6 {
		path = parts[5] // "", v1, connections, NAME, api, PATH
	}
	s.forward(w, r, k, path)
}

// forward sends r to k's API at path, and answers the proxy's own
// failures as the API does.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, k *auth.Keeper, path string) {
	if err := s.proxy().Forward(w, r, k, path); err != nil {
		var pe *proxy.Error
		if errors.As(err, &pe) {
			writeError(w, pe.Status, apitype.Error{Code: pe.Code, Message: pe.Message, Hint: pe.Hint})
			return
		}
		writeKeeperError(w, err)
	}
}

// check calls the connection's API check URL with its token now.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	if k.Connection().Endpoints.CheckURL == "" {
		writeError(w, http.StatusConflict, apitype.Error{Code: apitype.CodeBadRequest, Message: k.Connection().Name + " has no check_url to call",
			Hint: "Set check_url in its [[connection]] table: a cheap GET that answers 200 to a valid token."})
		return
	}
	k.Check(r.Context())
	writeJSON(w, http.StatusOK, op.Describe(k))
}

func (s *Server) dashboard(w http.ResponseWriter, _ *http.Request) {
	if s.ShowDashboard == nil {
		writeError(w, http.StatusConflict, apitype.Error{Code: apitype.CodeHeadless,
			Message: "the tokentray running here has no windows (tokentray serve, or a demo in the terminal)",
			Hint:    "tokentray status shows its connections"})
		return
	}
	s.ShowDashboard()
	writeJSON(w, http.StatusOK, map[string]string{"status": "shown"})
}

// ErrorOf is the wire error for an error of the core, with the HTTP status
// that goes with it. The CLI maps its own errors to exit codes with it too,
// so that a command means the same with and without a running tokentray.
func ErrorOf(err error) (int, apitype.Error) {
	code, status := apitype.CodeInternal, http.StatusInternalServerError
	switch {
	case errors.Is(err, auth.ErrMinValidUnmeetable):
		code, status = apitype.CodeMinValidUnmeetable, http.StatusBadRequest
	case errors.Is(err, auth.ErrBoundToken):
		code, status = apitype.CodeTokenBound, http.StatusConflict
	case errors.Is(err, auth.ErrSignInBusy), errors.Is(err, auth.ErrNoSignIn):
		code, status = apitype.CodeBadRequest, http.StatusConflict
	case errors.Is(err, auth.ErrCredentialsRefused):
		code, status = apitype.CodeClientRefused, http.StatusConflict
	case errors.Is(err, auth.ErrNeedsSignIn):
		code, status = apitype.CodeNeedsSignIn, http.StatusConflict
	case errors.Is(err, auth.ErrUnreachable), errors.Is(err, auth.ErrRevokeFailed):
		code, status = apitype.CodeProviderUnreachable, http.StatusBadGateway
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, auth.ErrLoginTimeout):
		code, status = apitype.CodeTimeout, http.StatusGatewayTimeout
	}
	next := auth.NextStepOf(err)
	return status, apitype.Error{Code: code, Message: err.Error(), Hint: op.Hint(next, ""), Next: next, ExitCode: apitype.ExitCodeOf(code)}
}

// writeKeeperError answers with the keeper's error.
func writeKeeperError(w http.ResponseWriter, err error) {
	status, e := ErrorOf(err)
	writeError(w, status, e)
}

// writeError answers with e; its exit code follows from its code.
func writeError(w http.ResponseWriter, status int, e apitype.Error) {
	e.ExitCode = apitype.ExitCodeOf(e.Code)
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func quote(s string) string { return `"` + s + `"` }

// deviceSignIn is a sign-in with a code that waits for a person.
type deviceSignIn struct {
	code  chan auth.DeviceCode // the code, once shown
	err   error                // the outcome, once ended
	ended chan struct{}        // closed when the sign-in has returned
}

func (d *deviceSignIn) over() bool {
	select {
	case <-d.ended:
		return true
	default:
		return false
	}
}

// startDevice starts a sign-in with a code (`tokentray login NAME
// --device`, headless servers included) and answers with the code; the
// sign-in goes on here. A second start while one waits answers with the
// code of that one. The last one's outcome is kept until the next starts,
// for GET …/login/device however late it asks.
func (s *Server) startDevice(w http.ResponseWriter, r *http.Request, k *auth.Keeper, timeout time.Duration) {
	name := k.Connection().Name
	s.mu.Lock()
	d := s.devices[name]
	if d == nil || d.over() {
		if s.devices == nil {
			s.devices = map[string]*deviceSignIn{}
		}
		d = &deviceSignIn{code: make(chan auth.DeviceCode, 1), ended: make(chan struct{})}
		s.devices[name] = d
		go func() {
			err := k.Login(context.WithoutCancel(r.Context()), auth.LoginOptions{Timeout: timeout, Device: true,
				ShowCode: func(c auth.DeviceCode) { d.code <- c }})
			s.mu.Lock()
			d.err = err
			s.mu.Unlock()
			close(d.ended)
		}()
	}
	s.mu.Unlock()
	answer := func(c auth.DeviceCode) {
		d.code <- c // for the next caller
		writeJSON(w, http.StatusAccepted, apitype.DeviceSignIn{UserCode: c.UserCode, VerificationURI: c.VerificationURI,
			VerificationURIComplete: c.VerificationURIComplete, Expires: c.Expires})
	}
	select {
	case c := <-d.code:
		answer(c)
	case <-d.ended:
		select {
		case c := <-d.code: // shown, then over at once: the code was shown
			answer(c)
			return
		default:
		}
		s.mu.Lock()
		err := d.err
		s.mu.Unlock()
		if err == nil {
			// Over without a code (it joined a sign-in that finished).
			writeJSON(w, http.StatusOK, op.Describe(k))
			return
		}
		writeKeeperError(w, err)
	case <-r.Context().Done():
	}
}

// loginDevice waits for the sign-in with a code to end.
func (s *Server) loginDevice(w http.ResponseWriter, r *http.Request) {
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	s.mu.Lock()
	d := s.devices[k.Connection().Name]
	s.mu.Unlock()
	if d == nil {
		writeError(w, http.StatusConflict, apitype.Error{Code: apitype.CodeBadRequest, Message: "no sign-in of " + quote(k.Connection().Name) + " with a code is waiting",
			Hint: "start one: tokentray login " + k.Connection().Name + " --device"})
		return
	}
	select {
	case <-d.ended:
		s.mu.Lock()
		err := d.err
		s.mu.Unlock()
		if err != nil {
			writeKeeperError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, op.Describe(k))
	case <-r.Context().Done():
	}
}
