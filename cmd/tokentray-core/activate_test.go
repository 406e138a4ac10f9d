package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/service"
)

// linkShell records the editors a link opened.
type linkShell struct{ edited chan string }

func (linkShell) Problem(string)                                {}
func (linkShell) ShowDashboard()                                {}
func (s linkShell) ShowEditor(name string)                      { s.edited <- name }
func (linkShell) Resumed()                                      {}
func (linkShell) Alert(alerts.Alert)                            {}
func (linkShell) ShowCode(string, string, apitype.DeviceSignIn) {}
func (linkShell) Unreachable(string, time.Time, string)         {}
func (linkShell) Reachable(string)                              {}

// A tokentray: link, as Windows starts tokentray for a notification's
// button: the running tray signs the connection in (its browser opens) or
// opens its editor; anything else, from any web page, starts nothing.
func TestALinkAsksTheRunningTokentray(t *testing.T) {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})) // any answer: the endpoints are up
	t.Cleanup(provider.Close)
	runDir, err := os.MkdirTemp("", "tt-link-") // short enough for a unix socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	t.Setenv("XDG_RUNTIME_DIR", runDir)

	generic, _ := auth.LookupPreset("generic")
	free, err := net.Listen("tcp", "127.0.0.1:0") // a port for the sign-in's redirect
	if err != nil {
		t.Fatal(err)
	}
	_ = free.Close()
	ru, err := auth.ParseRedirectURI("http://" + free.Addr().String() + "/callback")
	if err != nil {
		t.Fatal(err)
	}
	conn := &auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{AuthURL: provider.URL + "/authorize", TokenURL: provider.URL + "/token"}}
	cfg := &config.Config{Path: filepath.Join(t.TempDir(), "config.toml"), Connections: []*auth.Connection{conn}}
	opened := make(chan string, 10)
	sh := linkShell{edited: make(chan string, 10)}
	svc := service.New(service.Options{Role: service.Tray, Config: cfg, Store: auth.NewMemoryStore(), SocketPath: apiclient.DefaultPath(),
		OpenBrowser: func(u string) error { opened <- u; return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Start(ctx, sh); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); svc.Wait() })

	link := func(l string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{l}, streams{in: strings.NewReader(""), out: &out, err: &errb}, deps{})
		if out.Len() > 0 {
			t.Errorf("%s wrote to stdout: %q", l, out.String())
		}
		return code, errb.String()
	}

	if code, said := link("tokentray://reauth/p"); code != 0 {
		t.Fatalf("reauth: exit %d: %s", code, said)
	}
	select {
	case u := <-opened:
		if !strings.HasPrefix(u, provider.URL+"/authorize?") {
			t.Fatalf("the browser opened %s", u)
		}
	case <-time.After(30 * time.Second): // a hang's bound, not a measure
		c, err := apiclient.New(apiclient.DefaultPath()).Connection(context.Background(), "p")
		t.Fatalf("reauth opened no sign-in page: %+v %v", c, err)
	}
	if code, said := link("tokentray://edit/p"); code != 0 || len(sh.edited) != 1 || <-sh.edited != "p" {
		t.Fatalf("edit: exit %d: %s", code, said)
	}

	for l, want := range map[string]string{
		"tokentray://reauth/nope":                  "nope",
		"tokentray://edit/nope":                    "nope",
		"tokentray://logout/p":                     `the verb "logout" is not one`,
		"tokentray://reauth/p?next=https://x.test": "no query",
		"tokentray:":                               "no connection",
	} {
		code, said := link(l)
		if code != apitype.ExitUsage || !strings.Contains(said, want) {
			t.Errorf("%s: exit %d, %q; want exit %d saying %q", l, code, said, apitype.ExitUsage, want)
		}
	}
	if len(opened) != 0 || len(sh.edited) != 0 {
		t.Fatalf("a refused link still opened %d pages and %d editors", len(opened), len(sh.edited))
	}
}

// With no tokentray running, a link says so and what to do.
func TestALinkWithNoTokentrayRunningSaysSo(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	var errb bytes.Buffer
	code := run(context.Background(), []string{"tokentray://reauth/p"}, streams{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &errb}, deps{})
	if code == 0 || !strings.Contains(errb.String(), "start tokentray") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// A command given --config while a tokentray runs another config is
// refused: the running one would answer it from its own connections and
// store. With the running one's file, it goes to it.
func TestAnotherConfigThanTheRunningOnesIsRefused(t *testing.T) {
	runDir, err := os.MkdirTemp("", "tt-cfg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	t.Setenv("XDG_RUNTIME_DIR", runDir)
	dir := t.TempDir()
	running := filepath.Join(dir, "running.toml")
	generic, _ := auth.LookupPreset("generic")
	ru, _ := auth.ParseRedirectURI("http://127.0.0.1:1/callback")
	conn := &auth.Connection{Name: "p", Provider: generic, ClientID: "c", RedirectURI: ru, RefreshAt: 0.8,
		Endpoints: auth.Endpoints{AuthURL: "http://127.0.0.1:1/authorize", TokenURL: "http://127.0.0.1:1/token"}}
	svc := service.New(service.Options{Role: service.Serve, Config: &config.Config{Path: running, Connections: []*auth.Connection{conn}},
		Store: auth.NewMemoryStore(), SocketPath: apiclient.DefaultPath()})
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Start(ctx, nil); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); svc.Wait() })
	for _, f := range []string{running, filepath.Join(dir, "other.toml")} {
		if err := os.WriteFile(f, []byte("[[connection]]\nname = \"p\"\nprovider = \"generic\"\nclient_id = \"c\"\nauth_url = \"http://127.0.0.1:1/a\"\ntoken_url = \"http://127.0.0.1:1/t\"\nredirect_uri = \"http://127.0.0.1:1/callback\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secret := func(cfg string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"--config", cfg, "secret", "p"}, streams{in: strings.NewReader("s3cret\n"), out: &out, err: &errb}, deps{env: newEnv})
		return code, errb.String()
	}
	if code, said := secret(filepath.Join(dir, "other.toml")); code != apitype.ExitUsage || !strings.Contains(said, "the running tokentray keeps the connections of "+running) {
		t.Fatalf("--config of another file: exit %d: %s", code, said)
	}
	if code, said := secret(running); code != 0 || !strings.Contains(said, "running tokentray") {
		t.Fatalf("--config of the running one's file: exit %d: %s", code, said)
	}
}
