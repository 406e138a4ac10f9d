package service_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/service"
)

// shell is a Shell that counts what it was asked.
type shell struct {
	dashboards, problems atomic.Int32
	edited               chan string
}

func (s *shell) Problem(string)                                { s.problems.Add(1) }
func (s *shell) ShowDashboard()                                { s.dashboards.Add(1) }
func (s *shell) ShowEditor(name string)                        { s.edited <- name }
func (s *shell) Resumed()                                      {}
func (s *shell) Alert(alerts.Alert)                            {}
func (s *shell) ShowCode(string, string, apitype.DeviceSignIn) {}
func (s *shell) Unreachable(string, time.Time, string)         {}
func (s *shell) Reachable(string)                              {}

// signedIn is a config of one connection "a" whose fresh tokens are in the
// store: no request reaches its (unreachable) provider.
func signedIn(t *testing.T) (*config.Config, auth.Store) {
	t.Helper()
	store := auth.NewMemoryStore()
	_ = store.SaveTokens(context.Background(), "a", &auth.TokenSet{AccessToken: "at-a", TokenType: "bearer", RefreshToken: "rt-a",
		ObtainedAt: time.Now().Round(0), Lifetime: 90 * time.Minute}, auth.AnyGeneration)
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/cb")
	conn := &auth.Connection{Name: "a", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{AuthURL: "https://127.0.0.1:1/authorize", TokenURL: "https://127.0.0.1:1/token"}}
	return &config.Config{Path: filepath.Join(t.TempDir(), "config.toml"), Connections: []*auth.Connection{conn}}, store
}

// socketPath is a socket path short enough for a unix socket.
func socketPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "tt-svc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "run", "api.sock")
}

// start runs a service of role with sh until the test ends.
func start(t *testing.T, role service.Role, sh service.Shell) *apiclient.Client {
	t.Helper()
	cfg, store := signedIn(t)
	sock := socketPath(t)
	svc := service.New(service.Options{Role: role, Config: cfg, Store: store, SocketPath: sock})
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Start(ctx, sh); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); svc.Wait() })
	if !svc.Served() {
		t.Fatal("the API is not served")
	}
	return apiclient.New(sock)
}

// Each role starts from the one constructor and answers the local API
// with the connection's token; what differs is what the role is for.
func TestEachRoleStartsFromOneConstructorAndAnswersTheAPI(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		role service.Role
	}{{"tray", service.Tray}, {"serve", service.Serve}, {"demo", service.Demo}} {
		t.Run(tc.name, func(t *testing.T) {
			sh := &shell{edited: make(chan string, 10)}
			var s service.Shell = sh
			if tc.role == service.Serve {
				s = nil // a server has no shell
			}
			api := start(t, tc.role, s)
			tok, err := api.Token(ctx, "a", 0)
			if err != nil || tok.AccessToken != "at-a" {
				t.Fatalf("token: %+v, %v", tok, err)
			}
			conns, err := api.Connections(ctx)
			if err != nil || len(conns) != 1 || conns[0].Name != "a" || conns[0].State != apitype.StateConnected {
				t.Fatalf("connections: %+v, %v", conns, err)
			}

			// The config can be edited through the API where a config
			// file runs, not in the demo.
			_, err = api.Config(ctx)
			if editable := tc.role != service.Demo; (err == nil) != editable {
				t.Errorf("config: %v; want it served: %v", err, editable)
			}
			// A browser opens only where a person sits.
			_, err = api.Login(ctx, "a", time.Second)
			var apiErr *apiclient.APIError
			if headless := errors.As(err, &apiErr) && apiErr.Body.Code == apitype.CodeHeadless; headless != (tc.role == service.Serve) {
				t.Errorf("login: %v; want headless: %v", err, tc.role == service.Serve)
			}
			// A second start shows the shell's dashboard.
			err = api.ShowDashboard(ctx)
			if tc.role == service.Serve {
				if err == nil {
					t.Error("a server showed a dashboard")
				}
			} else if err != nil || sh.dashboards.Load() != 1 {
				t.Errorf("dashboard: %v, shown %d times", err, sh.dashboards.Load())
			}
			// A tokentray://edit/NAME link opens the editor of one of its
			// own connections, where a config file can be edited, and
			// nothing else.
			err = api.ShowEditor(ctx, "a")
			if want := tc.role == service.Tray; (err == nil) != want {
				t.Errorf("the editor of a: %v; want it shown: %t", err, want)
			}
			err = api.ShowEditor(ctx, "nope")
			if !errors.As(err, &apiErr) || (tc.role == service.Tray && apiErr.Body.Code != apitype.CodeUnknownConnection) {
				t.Errorf("the editor of an unknown connection: %v", err)
			}
			close(sh.edited)
			var edited []string
			for name := range sh.edited {
				edited = append(edited, name)
			}
			if want := map[bool]int{true: 1}[tc.role == service.Tray]; len(edited) != want || (want == 1 && edited[0] != "a") {
				t.Errorf("editors shown: %q", edited)
			}
		})
	}
}

// serve exists to answer the API: a socket it cannot serve stops it
// before any keeper runs. The other roles run without (a demo beside the
// tray that already serves it).
func TestServeRefusesToRunWithoutItsAPI(t *testing.T) {
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(blocked, "api.sock") // its directory is a file
	for _, role := range []service.Role{service.Serve, service.Demo} {
		cfg, store := signedIn(t)
		svc := service.New(service.Options{Role: role, Config: cfg, Store: store, SocketPath: sock})
		ctx, cancel := context.WithCancel(context.Background())
		err := svc.Start(ctx, nil)
		switch {
		case role == service.Serve && !errors.Is(err, service.ErrAPINotServed):
			t.Errorf("serve: %v; want %v", err, service.ErrAPINotServed)
		case role != service.Serve && (err != nil || svc.Served()):
			t.Errorf("demo: %v, served %v; want it running without the API", err, svc.Served())
		}
		cancel()
		svc.Wait()
	}
}

// sharedStore is a store that several machines share, opened as moby-2.
type sharedStore struct{ *auth.MemoryStore }

func (sharedStore) Instance() string { return "moby-2" }

// Every keeper of a store that several machines share records this
// machine's name with its refreshes, as the store was opened with it; a
// store of this machine's names none.
func TestKeepersOfASharedStoreKnowTheirInstance(t *testing.T) {
	conn := &config.Resolved{Auth: &auth.Connection{Name: "p"}}
	if o := service.KeeperOptions(conn, auth.KeeperOptions{Store: sharedStore{auth.NewMemoryStore()}}); o.Instance != "moby-2" {
		t.Fatalf("instance %q with a shared store, want moby-2", o.Instance)
	}
	if o := service.KeeperOptions(conn, auth.KeeperOptions{Store: auth.NewMemoryStore()}); o.Instance != "" {
		t.Fatalf("instance %q with a store of this machine's, want none", o.Instance)
	}
}
