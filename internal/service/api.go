package service

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/op"
)

// The operations of the running tokentray, each once: the local API
// (internal/localapi) is a table of handlers over them, and a command that
// finds no tokentray running calls the same methods of a one-shot Service
// (OneShot). They take and return the API's wire types; their refusals are
// *apitype.Error values and the core's errors keep their identity
// (op.ErrorOf turns either into the API's error).

// keepers are the keepers served: the fleet's, or the fixed ones of a
// one-shot service.
func (s *Service) keepers() []*auth.Keeper {
	if s.fleet == nil {
		return s.opt.Keepers
	}
	return s.fleet.Keepers()
}

// config is the config the keepers run, or nil (fixed keepers).
func (s *Service) config() *config.Config {
	if s.fleet == nil {
		return s.opt.Config
	}
	return s.fleet.Config()
}

// keeper is name's keeper, or the refusal that says why there is none: a
// broken table, a connection of a [[remote]] server, or no such name.
func (s *Service) keeper(name string) (*auth.Keeper, error) {
	var names []string
	for _, k := range s.keepers() {
		if k.Connection().Name == name {
			return k, nil
		}
		names = append(names, k.Connection().Name)
	}
	if cfg := s.config(); cfg != nil {
		if b, ok := cfg.BrokenNamed(name); ok {
			return nil, &apitype.Error{Code: apitype.CodeInvalidConfig, Message: b.Error(), Hint: op.BrokenHint(cfg.Path), Fields: b.Problems.ByKey()}
		}
	}
	if c, ok := s.remote(name); ok {
		there, _, _ := strings.Cut(name, "@")
		return nil, op.Refusal(apitype.CodeRemoteConnection, name+" is kept by the tokentray on "+c.Remote+": its tokens stay there",
			"On "+c.Remote+" itself, its agents ask it (tokentray token "+there+", or its own local API); from here it can be signed in and refreshed.")
	}
	return nil, op.Refusal(apitype.CodeUnknownConnection, "no connection named "+quote(name), "Configured: "+strings.Join(names, ", "))
}

// remote is the connection of a [[remote]] server called name
// (NAME@REMOTE), if one is followed.
func (s *Service) remote(name string) (apitype.Connection, bool) {
	if !strings.Contains(name, "@") {
		return apitype.Connection{}, false
	}
	return s.hub.RemoteConnection(name)
}

// describe is op.Describe with what only the running tokentray knows: the
// API calls that wait for a sign-in.
func (s *Service) describe(k *auth.Keeper) *apitype.Connection {
	c := op.Describe(k)
	c.Waiting = s.proxy.Waiting(k)
	return &c
}

// Connections is every connection: the keepers', the tables that cannot be
// used (with what to change), and the [[remote]] servers'.
//
// With a shared store, each says who is there (Shared): two reads of its
// database, for a person who asks (status, the dashboard).
func (s *Service) Connections(ctx context.Context) ([]apitype.Connection, error) {
	return s.connections(s.presence(ctx))
}

// ConnectionsHere is Connections as this process knows them, without
// asking a shared store who is there: for the tray's menu, redrawn every
// minute, which does not show it, so that an idle tray costs the database
// nothing.
func (s *Service) ConnectionsHere() []apitype.Connection {
	out, _ := s.connections(nil)
	return out
}

func (s *Service) connections(p *auth.Presence) ([]apitype.Connection, error) {
	keepers := s.keepers()
	out := make([]apitype.Connection, 0, len(keepers))
	for _, k := range keepers {
		c := s.describe(k)
		c.Shared = s.shared(p, c.Name)
		out = append(out, *c)
	}
	if cfg := s.config(); cfg != nil {
		for _, b := range cfg.Broken {
			out = append(out, op.DescribeBroken(b, cfg.Path))
		}
	}
	return append(out, s.hub.RemoteConnections()...), nil
}

// Connection is one connection, of this tokentray or of a [[remote]] one.
func (s *Service) Connection(ctx context.Context, name string) (*apitype.Connection, error) {
	if c, ok := s.remote(name); ok {
		return &c, nil
	}
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	c := s.describe(k)
	c.Shared = s.shared(s.presence(ctx), name)
	return c, nil
}

// presenceTimeout bounds the look at who is at a shared store: a status
// asked for while its database is away answers without it, soon.
const presenceTimeout = time.Second

// presence is who is at the shared store now; nil with a store of one
// machine, or when the store did not answer within presenceTimeout.
func (s *Service) presence(ctx context.Context) *auth.Presence {
	t, ok := s.opt.Store.(auth.PresenceTeller)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	p, err := t.Presence(ctx)
	if err != nil {
		s.opt.Log.Info("the status says nothing of the other instances: the shared store did not tell who is there", "err", err)
		return nil
	}
	return p
}

// shared is what p says of name, for its status.
func (s *Service) shared(p *auth.Presence, name string) *apitype.Shared {
	if p == nil {
		return nil
	}
	sh := &apitype.Shared{Instances: p.Instances, LeaseHolder: p.Leases[name]}
	if i, ok := s.opt.Store.(interface{ Instance() string }); ok {
		sh.Instance = i.Instance()
	}
	if in, ok := p.Intents[name]; ok {
		sh.IntentBy, sh.IntentAt = in.Instance, in.At
	}
	return sh
}

// Token hands out name's access token, valid for at least minValid (< 0:
// the core's margin).
func (s *Service) Token(ctx context.Context, name string, minValid time.Duration) (*apitype.Token, error) {
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	if minValid < 0 {
		minValid = auth.DefaultMinValid
	}
	t, err := op.Token(ctx, k, minValid, s.opt.Clock.Now)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Refresh refreshes name now; a [[remote]] server's connection is
// refreshed there.
func (s *Service) Refresh(ctx context.Context, name string) (*apitype.Connection, error) {
	return s.RefreshIfCurrent(ctx, name, "")
}

// RefreshIfCurrent is Refresh, but only while the access token whose
// apitype.TokenHash is stale is still the current one ("" for always): a
// burst of 401s costs one refresh, not one each.
func (s *Service) RefreshIfCurrent(ctx context.Context, name, stale string) (*apitype.Connection, error) {
	if c, ok := s.remote(name); ok && s.followsRemotes() {
		if err := s.refreshRemote(ctx, c.Name); err != nil {
			return nil, err
		}
		c, _ = s.remote(c.Name)
		return &c, nil
	}
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	c, err := op.Refresh(ctx, k, stale)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// headless refuses a browser sign-in where none opens (tokentray serve).
func (s *Service) headless(k *auth.Keeper) error {
	if s.opt.Role != Serve {
		return nil
	}
	return op.Refusal(apitype.CodeHeadless, "the tokentray running here is headless (tokentray serve): it opens no browser",
		"sign in with a browser on any machine: tokentray login "+k.Connection().Name+" --paste")
}

// StartLogin starts the sign-in of name and does not wait for it (the
// menu, a notification's action, POST …/login): in the browser, or, for a
// connection that signs in only with a code, with the code shown in the
// event log and by the shell; a [[remote]] server's connection through
// this machine's browser. How it goes is told in the event log. timeout 0
// is the core's default.
func (s *Service) StartLogin(_ context.Context, name string, timeout time.Duration) error {
	if c, ok := s.remote(name); ok && s.followsRemotes() {
		return s.signInRemote(c.Name)
	}
	k, err := s.keeper(name)
	if err != nil {
		return err
	}
	o := auth.LoginOptions{Timeout: loginTimeout(timeout)}
	if c := k.Connection(); c.RedirectURI.Raw == "" && c.Endpoints.DeviceAuthURL != "" {
		o.Timeout = timeout // as long as the code is valid, unless asked
		o.Device, o.ShowCode = true, func(code auth.DeviceCode) { s.showCode(name, "tokentray", *deviceCode(code)) }
		s.hub.Log(name, "sign-in with a code started")
	} else {
		if err := s.headless(k); err != nil {
			return err
		}
		s.hub.Log(name, "sign-in started: finish it in the browser")
	}
	go func() {
		// The sign-in outlives the request that started it, not the service.
		if err := k.Login(s.running, o); err != nil && !errors.Is(err, context.Canceled) {
			s.hub.Log(name, "sign-in failed: "+err.Error())
		}
	}()
	return nil
}

// Login signs name in through the browser and waits for the outcome, up
// to timeout (0: the core's default) or until ctx ends. The sign-in itself
// goes on when ctx ends: the person may be half-way through it.
func (s *Service) Login(ctx context.Context, name string, timeout time.Duration) (*apitype.Connection, error) {
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	if err := s.headless(k); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- k.Login(context.WithoutCancel(ctx), auth.LoginOptions{Timeout: loginTimeout(timeout)}) }()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		return s.describe(k), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func loginTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return auth.DefaultLoginTimeout
	}
	return d
}

// Check calls name's API check URL with its token now.
func (s *Service) Check(ctx context.Context, name string) (*apitype.Connection, error) {
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	if k.Connection().Endpoints.CheckURL == "" {
		return nil, op.Refusal(apitype.CodeBadRequest, k.Connection().Name+" has no check_url to call",
			"Set check_url in its [[connection]] table: a cheap GET that answers 200 to a valid token.")
	}
	k.Check(ctx)
	return s.describe(k), nil
}

// Logout signs name out: the provider is asked to revoke its tokens
// unless localOnly, and they are forgotten here.
func (s *Service) Logout(ctx context.Context, name string, localOnly bool) (*apitype.SignedOut, error) {
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	out, err := op.Logout(ctx, k, localOnly)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetClientSecret stores name's client secret in this tokentray's store
// (its store may be one only it can write: a sealed file store) and tries
// a connection whose client was refused again, with the new secret.
func (s *Service) SetClientSecret(ctx context.Context, name, secret string) (*apitype.Connection, error) {
	if secret == "" {
		return nil, op.Refusal(apitype.CodeBadRequest, "the client secret is empty", "")
	}
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	if s.fleet != nil && s.Editable() {
		err = s.fleet.SetClientSecret(ctx, name, auth.Secret(secret))
	} else if err = s.opt.Store.SetClientSecret(ctx, name, auth.Secret(secret)); err == nil {
		// Loaded again, the keeper sees that the refused client's settings
		// changed (and a keeper of a command had loaded before the secret
		// was there).
		if err = k.Load(ctx); err == nil {
			k.RetryClient(ctx)
		}
	}
	if err != nil {
		return nil, err
	}
	return s.describe(k), nil
}

// ShowDashboard brings the tray's dashboard up.
func (s *Service) ShowDashboard(context.Context) error {
	if s.shell == nil {
		return op.Refusal(apitype.CodeHeadless, "the tokentray running here has no windows (tokentray serve, or a demo in the terminal)",
			"tokentray status shows its connections")
	}
	s.shell.ShowDashboard()
	return nil
}

// ShowEditor opens the editor of the connection called name: one of this
// tokentray's own (a broken one too: the editor is where it is fixed). A
// tokentray://edit/NAME link asks for it, so a name that is not one of
// them opens nothing.
func (s *Service) ShowEditor(_ context.Context, name string) error {
	if s.shell == nil {
		return op.Refusal(apitype.CodeHeadless, "the tokentray running here has no windows (tokentray serve, or a demo in the terminal)",
			"change "+name+"'s [[connection]] table in the config file")
	}
	f, err := s.editable()
	if err != nil {
		return err
	}
	if _, ok := f.Config().BrokenNamed(name); !ok {
		if _, err := s.keeper(name); err != nil {
			return err
		}
	}
	s.hub.Log(name, "the editor was asked for")
	s.shell.ShowEditor(name)
	return nil
}

// Events calls f with every connection's status, the recent log lines and
// "ready", then with each event as it happens, until ctx ends, f fails, or
// f falls too far behind (follow again for a new snapshot).
func (s *Service) Events(ctx context.Context, f func(apitype.Event) error) error {
	return s.hub.Follow(ctx, f)
}

// Forward sends r to name's API at path with its access token added
// (internal/proxy), and answers with the API's answer: the agent never
// holds the token. A refusal of the proxy's own is a *proxy.Error.
func (s *Service) Forward(w http.ResponseWriter, r *http.Request, name, path string) error {
	k, err := s.keeper(name)
	if err != nil {
		return err
	}
	return s.proxy.Forward(w, r, k, path)
}

// errNotEditable refuses the config operations of a tokentray that runs no
// config file (a demo, a one-shot service).
var errNotEditable = &apitype.Error{Code: apitype.CodeNotFound, Message: "this tokentray runs no config file that could be edited",
	ExitCode: apitype.ExitCodeOf(apitype.CodeNotFound)}

func quote(s string) string { return `"` + s + `"` }
