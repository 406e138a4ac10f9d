// Package localapi serves tokentray's local API: HTTP over a unix socket
// that only the same user can reach, served by the running tokentray (the
// tray, `serve`, a demo: internal/service) and used by the CLI, the window
// process, the Go client package and any script (curl --unix-socket). It
// is a table of handlers over a Backend: decoding, encoding, and errors to
// status codes; the operations themselves are the Backend's. The wire
// types are in client/apitype.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/op"
	"github.com/tokentray/tokentray/internal/proxy"
)

// Backend is what the API serves: the running tokentray
// (internal/service), whose methods implement each operation once. The
// handlers here decode a request, call one method, and encode its answer
// or its error; nothing else.
type Backend interface {
	Connections(ctx context.Context) ([]apitype.Connection, error)
	Connection(ctx context.Context, name string) (*apitype.Connection, error)
	// Token's minValid < 0 asks for the core's default margin.
	Token(ctx context.Context, name string, minValid time.Duration) (*apitype.Token, error)
	RefreshIfCurrent(ctx context.Context, name, stale string) (*apitype.Connection, error)
	StartLogin(ctx context.Context, name string, timeout time.Duration) error
	Login(ctx context.Context, name string, timeout time.Duration) (*apitype.Connection, error)
	StartPasteLogin(ctx context.Context, name string, timeout time.Duration) (*apitype.PasteSignIn, error)
	PasteLogin(ctx context.Context, name, address string) (*apitype.Connection, error)
	// StartDeviceLogin returns nil and no error when the sign-in it joined
	// is over and signed in.
	StartDeviceLogin(ctx context.Context, name string, timeout time.Duration) (*apitype.DeviceSignIn, error)
	WaitDeviceLogin(ctx context.Context, name string) (*apitype.Connection, error)
	SetClientSecret(ctx context.Context, name, secret string) (*apitype.Connection, error)
	Logout(ctx context.Context, name string, localOnly bool) (*apitype.SignedOut, error)
	Check(ctx context.Context, name string) (*apitype.Connection, error)
	ShowDashboard(ctx context.Context) error
	ShowEditor(ctx context.Context, name string) error
	Events(ctx context.Context, f func(apitype.Event) error) error
	// Forward answers r with name's API's answer at path; a refusal of
	// the proxy's own is a *proxy.Error, answered here.
	Forward(w http.ResponseWriter, r *http.Request, name, path string) error
	Config(ctx context.Context) (*apitype.Config, error)
	ConfigConnection(ctx context.Context, name string) (*apitype.ConfiguredConnection, error)
	SaveConnection(ctx context.Context, replacing string, s apitype.SaveConnection) (*apitype.Saved, error)
	RemoveConnection(ctx context.Context, name string, localOnly bool) (*apitype.Saved, error)
	TestSignIn(ctx context.Context, t apitype.TestSignIn) (*apitype.Tested, error)
}

// Server serves the API of a Backend.
type Server struct {
	Backend Backend
	// HeaderTimeout drops a client that connects and sends no request
	// (default 5 s).
	HeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request (default 10 s).
	ReadTimeout time.Duration

	srv      *http.Server
	stopping chan struct{}
}

type peerKey struct{}

// Serve answers on l until ctx ends. Requests from another user are
// refused; a client that connects and never sends a request is dropped.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
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
	mux.HandleFunc("POST /v1/connections/{name}/editor", s.editor)
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

// The handlers: each decodes its request, calls the Backend's method and
// writes its answer.

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.Connections(r.Context())
	answer(w, http.StatusOK, out, err)
}

func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.Connection(r.Context(), r.PathValue("name"))
	answer(w, http.StatusOK, out, err)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	minValid := time.Duration(-1)
	if v := r.URL.Query().Get("min_valid"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, apitype.Error{Code: apitype.CodeBadRequest, Message: "min_valid " + quote(v) + " is not a duration such as 2m or 90s"})
			return
		}
		minValid = d
	}
	out, err := s.Backend.Token(r.Context(), r.PathValue("name"), minValid)
	answer(w, http.StatusOK, out, err)
}

// refresh refreshes now. With ?stale=HASH (TokenHash of the access token a
// client saw refused), it refreshes only if that token is still the current
// one: a burst of 401s costs one refresh, not one each.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.RefreshIfCurrent(r.Context(), r.PathValue("name"), r.URL.Query().Get("stale"))
	answer(w, http.StatusOK, out, err)
}

// timeout is the request's ?timeout=, or 0 (the Backend's default).
func timeout(r *http.Request) time.Duration {
	if d, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && d > 0 {
		return d
	}
	return 0
}

// login starts a sign-in: in the browser (202), or with ?wait=true
// answering when it has ended, so that `tokentray login` can report it;
// with ?paste=true one completed by a pasted address (the URL to open,
// 202); with ?device=true one with a code (the code, 202).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	name, q := r.PathValue("name"), r.URL.Query()
	switch {
	case q.Get("paste") == "true":
		out, err := s.Backend.StartPasteLogin(r.Context(), name, timeout(r))
		answer(w, http.StatusAccepted, out, err)
	case q.Get("device") == "true":
		out, err := s.Backend.StartDeviceLogin(r.Context(), name, timeout(r))
		if err == nil && out == nil { // it joined a sign-in that finished
			c, err := s.Backend.Connection(r.Context(), name)
			answer(w, http.StatusOK, c, err)
			return
		}
		answer(w, http.StatusAccepted, out, err)
	case q.Get("wait") == "true":
		out, err := s.Backend.Login(r.Context(), name, timeout(r))
		if r.Context().Err() != nil {
			return // the client went away; the sign-in goes on
		}
		answer(w, http.StatusOK, out, err)
	default:
		err := s.Backend.StartLogin(r.Context(), name, timeout(r))
		answer(w, http.StatusAccepted, map[string]string{"status": "sign-in of " + name + " started: finish it in the browser"}, err)
	}
}

// loginPaste completes the sign-in a ?paste=true login began with the
// address the browser landed on (or an out-of-band code), and answers when
// the code has been exchanged and the tokens saved.
func (s *Server) loginPaste(w http.ResponseWriter, r *http.Request) {
	var in apitype.Pasted
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil || strings.TrimSpace(in.Address) == "" {
		writeError(w, http.StatusBadRequest, apitype.Error{Code: apitype.CodeBadRequest, Message: `the body must be {"address": "…"}, one line: the whole address the browser landed on, or the code`})
		return
	}
	out, err := s.Backend.PasteLogin(r.Context(), r.PathValue("name"), in.Address)
	if r.Context().Err() != nil {
		return
	}
	answer(w, http.StatusOK, out, err)
}

// loginDevice waits for the sign-in with a code to end.
func (s *Server) loginDevice(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.WaitDeviceLogin(r.Context(), r.PathValue("name"))
	if r.Context().Err() != nil {
		return
	}
	answer(w, http.StatusOK, out, err)
}

// setClientSecret stores a connection's new client secret in the running
// tokentray's store (`tokentray secret NAME`), and answers with the
// connection: a client that was refused has been tried again.
func (s *Server) setClientSecret(w http.ResponseWriter, r *http.Request) {
	var in apitype.ClientSecret
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil || in.ClientSecret == "" {
		writeError(w, http.StatusBadRequest, apitype.Error{Code: apitype.CodeBadRequest, Message: `the body must be {"client_secret": "…"}, not empty`})
		return
	}
	out, err := s.Backend.SetClientSecret(r.Context(), r.PathValue("name"), in.ClientSecret)
	answer(w, http.StatusOK, out, err)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.Logout(r.Context(), r.PathValue("name"), r.URL.Query().Get("local_only") == "true")
	answer(w, http.StatusOK, out, err)
}

// api sends the request to the connection's API with its access token
// added: the agent never holds the token.
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	// An upload or a stream takes as long as it takes: no read deadline.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	path := ""
	if parts := strings.SplitN(r.URL.EscapedPath(), "/", 6); len(parts) == 6 {
		path = parts[5] // "", v1, connections, NAME, api, PATH
	}
	s.forward(w, r, r.PathValue("name"), path)
}

// forward sends r to name's API at path, and answers the proxy's own
// failures as the API does.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, name, path string) {
	if err := s.Backend.Forward(w, r, name, path); err != nil {
		var pe *proxy.Error
		if errors.As(err, &pe) {
			writeError(w, pe.Status, apitype.Error{Code: pe.Code, Message: pe.Message, Hint: pe.Hint})
			return
		}
		writeBackendError(w, err)
	}
}

// check calls the connection's API check URL with its token now.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.Check(r.Context(), r.PathValue("name"))
	answer(w, http.StatusOK, out, err)
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	err := s.Backend.ShowDashboard(r.Context())
	answer(w, http.StatusOK, map[string]string{"status": "shown"}, err)
}

// editor opens the connection's editor in the tray's window process.
func (s *Server) editor(w http.ResponseWriter, r *http.Request) {
	err := s.Backend.ShowEditor(r.Context(), r.PathValue("name"))
	answer(w, http.StatusOK, map[string]string{"status": "shown"}, err)
}

// events streams the Backend's events as JSON lines until the client
// goes, the server stops, or the client falls too far behind.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.stopping: // streams end, so that Shutdown need not wait for them
			cancel()
		case <-ctx.Done():
		}
	}()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	_ = s.Backend.Events(ctx, func(e apitype.Event) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		return rc.Flush()
	})
}

// statusOf is the HTTP status of an error answer with code: one rule, so
// that a code means the same status from every endpoint.
func statusOf(code string) int {
	switch code {
	case apitype.CodeNotFound, apitype.CodeUnknownConnection:
		return http.StatusNotFound
	case apitype.CodeBadRequest, apitype.CodeMinValidUnmeetable:
		return http.StatusBadRequest
	case apitype.CodeForbidden:
		return http.StatusForbidden
	case apitype.CodeInvalidConfig:
		return http.StatusUnprocessableEntity
	case apitype.CodeClientRefused, apitype.CodeNeedsSignIn, apitype.CodeHeadless, apitype.CodeRemoteConnection,
		apitype.CodeTokenBound, apitype.CodeCheckFailed:
		return http.StatusConflict
	case apitype.CodeProviderUnreachable, apitype.CodeAPIUnreachable, apitype.CodeStoreUnreachable:
		return http.StatusBadGateway
	case apitype.CodeTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// answer writes v with status, or err's answer.
func answer(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, status, v)
}

// writeBackendError answers with the Backend's error (op.ErrorOf).
func writeBackendError(w http.ResponseWriter, err error) {
	e := op.ErrorOf(err)
	writeError(w, statusOf(e.Code), e)
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
