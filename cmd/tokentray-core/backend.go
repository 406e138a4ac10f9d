package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/op"
	"github.com/tokentray/tokentray/internal/service"
	filestore "github.com/tokentray/tokentray/internal/store/file"
	keyringstore "github.com/tokentray/tokentray/internal/store/keyring"
)

// backend is where a command's work is done, answering in the API's wire
// types either way: the running tokentray over its socket
// (viaRunning), or, when none runs, this process (inProcess).
type backend interface {
	Connections(ctx context.Context) ([]apitype.Connection, error)
	Connection(ctx context.Context, name string) (*apitype.Connection, error)
	Token(ctx context.Context, name string, minValid time.Duration) (*apitype.Token, error)
	Refresh(ctx context.Context, name string) (*apitype.Connection, error)
	Logout(ctx context.Context, name string, localOnly bool) (*apitype.SignedOut, error)
	// Login signs name in through the browser, telling the person on
	// stderr where to look, and waits up to o.timeout for the outcome.
	Login(ctx context.Context, name string, o loginOptions) (*apitype.Connection, error)
	// SetClientSecret stores name's client secret, says where on stderr,
	// and tries a connection whose client was refused again (its refresh
	// token was kept for this).
	SetClientSecret(ctx context.Context, name string, secret auth.Secret) (*apitype.Connection, error)
}

// with runs f against the running tokentray, or, when none answers, against
// this process: the running one is the only refresher while it runs.
func (e *env) with(f func(b backend) error) error {
	if e.api != nil {
		if err := e.runsThisConfig(); err != nil {
			return err
		}
		if err := f(viaRunning{e.api, e.streams}); !errors.Is(err, apiclient.ErrNotRunning) {
			return err
		}
	}
	return f(inProcess{e})
}

// runsThisConfig refuses a command given --config while a tokentray runs
// another config: the running one would answer it, from its own
// connections and store (a client secret saved into another database). A
// command without --config, or with the running one's, goes to it.
func (e *env) runsThisConfig() error {
	if e.configFlag == "" {
		return nil
	}
	running, err := e.api.Config(context.Background())
	switch {
	case errors.Is(err, apiclient.ErrNotRunning):
		return nil
	case err != nil:
		return usageError{fmt.Errorf("a tokentray runs here without a config file of its own (%v), and commands go to it: stop it to use --config %s", err, e.configFlag)}
	case !samePath(running.Path, e.configFlag):
		return usageError{fmt.Errorf("the running tokentray keeps the connections of %s, not of --config %s, and commands go to it: run this without --config (or with its file), or stop it first", running.Path, e.configFlag)}
	}
	return nil
}

// samePath reports whether a and b name one file (symbolic links and
// relative paths resolved where they can be).
func samePath(a, b string) bool {
	resolve := func(p string) string {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Clean(p)
	}
	return resolve(a) == resolve(b)
}

// pasteLogin signs name in with a browser elsewhere: the running tokentray
// prepares the sign-in (its PKCE verifier and state never leave it), this
// process shows the URL and passes on what the person pastes, and the code
// is exchanged there.
func (r viaRunning) pasteLogin(ctx context.Context, name string, o loginOptions) (*apitype.Connection, error) {
	started, err := r.StartPasteLogin(ctx, name, o.timeout)
	if err != nil {
		return nil, err
	}
	if o.relay {
		if err := json.NewEncoder(r.streams.out).Encode(started); err != nil {
			return nil, err
		}
	} else {
		printPasteInstructions(r.streams, name, started.AuthorizeURL, started.RedirectURI)
	}
	line, err := bufio.NewReader(r.streams.in).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("no address was pasted: %w", err)
	}
	return r.PasteLogin(ctx, name, strings.TrimSpace(line))
}

// SetClientSecret has the running tokentray store the secret: its store
// may be one only it can write (an encrypted file store).
func (r viaRunning) SetClientSecret(ctx context.Context, name string, secret auth.Secret) (*apitype.Connection, error) {
	conn, err := r.Client.SetClientSecret(ctx, name, secret.Reveal())
	if err == nil {
		fmt.Fprintf(r.streams.err, "Saved the client secret of %s in the running tokentray's store.\n", name)
	}
	return conn, err
}

// viaRunning is the running tokentray, over its socket.
type viaRunning struct {
	*apiclient.Client
	streams streams
}

// Login has the running tokentray sign name in: its browser opens on this
// desktop, and it keeps the tokens.
func (r viaRunning) Login(ctx context.Context, name string, o loginOptions) (*apitype.Connection, error) {
	if _, err := r.Connections(ctx); err != nil {
		return nil, err // not running: this process signs in
	}
	if o.paste {
		return r.pasteLogin(ctx, name, o)
	}
	if o.device {
		started, err := r.StartDeviceLogin(ctx, name, o.timeout)
		if err != nil {
			return nil, err
		}
		if o.relay {
			if err := json.NewEncoder(r.streams.out).Encode(started); err != nil {
				return nil, err
			}
		} else {
			printDeviceCode(r.streams, name, *started, time.Now())
		}
		return r.WaitDeviceLogin(ctx, name)
	}
	fmt.Fprintf(r.streams.err, "Signing in to %s through the running tokentray: finish it in the browser that opens (waiting up to %s)…\n", name, o.timeout)
	return r.Client.Login(ctx, name, o.timeout)
}

// inProcess does a command's work in this process: a keeper per call, loaded
// from the store, refreshing under the connection's file lock. It is the
// only path that reads the config file.
type inProcess struct{ e *env }

// one is the one-shot service of name's keeper: the running tokentray's
// operations, in this process, over a keeper loaded from the store.
func (l inProcess) one(ctx context.Context, name string) (*service.Service, error) {
	k, err := l.e.keeper(ctx, name)
	if err != nil {
		return nil, err
	}
	store, err := l.e.openStore()
	if err != nil {
		return nil, err
	}
	return service.OneShot(service.Options{Store: store, Clock: l.e.clock}, k), nil
}

// Connections is every configured connection's status. A store that cannot
// be read leaves its connection "unknown" with the error, and the error of
// all of them is returned after the list (status prints the list first).
func (l inProcess) Connections(ctx context.Context) ([]apitype.Connection, error) {
	cfg, err := l.e.config()
	if err != nil {
		return nil, err
	}
	var unread unreadStores
	all := []apitype.Connection{}
	for _, conn := range cfg.Connections {
		st := apitype.Status{Name: conn.Name, State: "unknown"}
		if k, err := l.e.keeper(ctx, conn.Name); err != nil {
			st.LastError = err.Error()
			unread.add(conn.Name, err)
		} else {
			// The URLs and the authentication method in use come from the
			// issuer and the stored secret; a server that does not answer
			// costs a few seconds, not the status.
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = k.Resolve(rctx)
			cancel()
			st = op.Status(k.Status())
		}
		all = append(all, apitype.Connection{Status: st, Provider: conn.Provider.Name, Environment: conn.Environment, APIBase: conn.Endpoints.APIBase})
	}
	for _, b := range cfg.Broken {
		all = append(all, op.DescribeBroken(b, cfg.Path))
	}
	return all, unread.err()
}

func (l inProcess) Connection(ctx context.Context, name string) (*apitype.Connection, error) {
	svc, err := l.one(ctx, name)
	if err != nil {
		return nil, err
	}
	return svc.Connection(ctx, name)
}

func (l inProcess) Token(ctx context.Context, name string, minValid time.Duration) (*apitype.Token, error) {
	svc, err := l.one(ctx, name)
	if err != nil {
		return nil, err
	}
	return svc.Token(ctx, name, minValid)
}

func (l inProcess) Refresh(ctx context.Context, name string) (*apitype.Connection, error) {
	svc, err := l.one(ctx, name)
	if err != nil {
		return nil, err
	}
	return svc.Refresh(ctx, name)
}

// SetClientSecret stores the secret in this machine's store, says where,
// and tries a connection whose client was refused again.
func (l inProcess) SetClientSecret(ctx context.Context, name string, secret auth.Secret) (*apitype.Connection, error) {
	svc, err := l.one(ctx, name)
	if err != nil {
		return nil, err
	}
	c, err := svc.SetClientSecret(ctx, name, secret.Reveal())
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("the keyring (service %q)", keyringstore.Service)
	if store, err := l.e.openStore(); err == nil {
		switch s := store.(type) {
		case *filestore.Store:
			where = s.Dir
		case interface{ Where() string }: // a shared store
			where = s.Where() + ", sealed"
		}
	}
	fmt.Fprintf(l.e.streams.err, "Saved the client secret of %s in %s.\n", name, where)
	return c, nil
}

func (l inProcess) Logout(ctx context.Context, name string, localOnly bool) (*apitype.SignedOut, error) {
	svc, err := l.one(ctx, name)
	if err != nil {
		return nil, err
	}
	return svc.Logout(ctx, name, localOnly)
}
