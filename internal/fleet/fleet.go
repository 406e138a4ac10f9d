// Package fleet runs one keeper per configured connection and changes that
// set while tokentray runs: a connection saved in the editor, removed, or
// renamed takes effect at once, without a restart, and nothing writes under
// a connection's name while its keyring items are being moved.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/config"
)

// Options are what a fleet needs from the process that runs it.
type Options struct {
	// Store is where tokens and client secrets live (the keyring).
	Store auth.Store
	// NewKeeper builds the keeper of conn.
	NewKeeper func(conn *config.Resolved) *auth.Keeper
	// Started is called for each keeper of conn once it runs, with a
	// context that ends when the keeper is stopped (alert hooks follow it).
	Started func(ctx context.Context, k *auth.Keeper, conn *config.Resolved)
	// NewTestKeeper builds the keeper of an editor's test sign-in, whose
	// tokens go to store (in memory) and which opens the browser.
	NewTestKeeper func(conn *auth.Connection, store auth.Store) *auth.Keeper
	Log           *slog.Logger
}

// Fleet is the running set of keepers. Its methods are safe for concurrent
// use; changes are made one at a time.
type Fleet struct {
	opt Options

	change sync.Mutex // held for a whole change: one save or reload at a time

	mu        sync.Mutex
	cfg       *config.Config
	members   []*member // in the config file's order
	ctx       context.Context
	listeners []func()
	all       sync.WaitGroup
	stamp     string            // the config file as last read or written
	tests     map[string]tested // test sign-ins waiting for a Save
	// told are the broken tables that OnBroken's listeners were told of,
	// by label, with what was told: each is told once, and again only
	// when its problems change or it breaks again after a fix.
	told   map[string]string
	broken []func(config.Broken)
}

type member struct {
	keeper *auth.Keeper
	conn   *config.Resolved // as it was when the keeper was made
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a fleet for cfg; Start runs it.
func New(cfg *config.Config, o Options) *Fleet {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{opt: o, cfg: cfg, stamp: fileStamp(cfg.Path), tests: map[string]tested{}, told: map[string]string{}}
	for _, conn := range cfg.All() {
		f.members = append(f.members, f.newMember(conn))
	}
	return f
}

// Start runs every keeper until ctx ends or the keeper is removed.
func (f *Fleet) Start(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctx = ctx
	for _, m := range f.members {
		f.run(m)
	}
}

// Wait returns once every keeper has stopped (after ctx ended): a refresh
// in flight is saved first.
func (f *Fleet) Wait() { f.all.Wait() }

// Keepers returns the running keepers in the config file's order.
func (f *Fleet) Keepers() []*auth.Keeper {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*auth.Keeper, len(f.members))
	for i, m := range f.members {
		out[i] = m.keeper
	}
	return out
}

// Config returns the configuration the fleet runs.
func (f *Fleet) Config() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

// OnChange registers fn to run after each change of the set of keepers,
// or of the config's [[remote]] servers.
func (f *Fleet) OnChange(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listeners = append(f.listeners, fn)
}

// OnBroken registers fn to be told of each [[connection]] table that
// cannot be used: those broken now, at once, and each that breaks later
// (a file edited by hand), once per breakage.
func (f *Fleet) OnBroken(fn func(config.Broken)) {
	f.mu.Lock()
	f.broken = append(f.broken, fn)
	now := f.cfg.Broken
	for _, b := range now {
		f.told[b.Label] = b.Error()
	}
	f.mu.Unlock()
	for _, b := range now {
		fn(b)
	}
}

// newlyBroken are cfg's broken tables that the listeners have not been
// told of, as told now; f.mu is held.
func (f *Fleet) newlyBroken(cfg *config.Config) []config.Broken {
	var out []config.Broken
	told := map[string]string{}
	for _, b := range cfg.Broken {
		told[b.Label] = b.Error()
		if f.told[b.Label] != b.Error() {
			out = append(out, b)
		}
	}
	f.told = told
	return out
}

// Save is one connection as the editor hands it over.
type Save struct {
	// Replacing names the connection being edited; empty adds a new one.
	Replacing  string
	Connection config.Connection
	// Secret is a new client secret; empty keeps the stored one.
	Secret auth.Secret
	// TestID names a test sign-in (TestSignIn): its tokens are kept when it
	// was made with exactly this connection and secret.
	TestID string
}

// Save writes s into the config file and runs the result. A renamed
// connection keeps its tokens and client secret: they move to the new
// name. The file is validated before anything stops; the keepers that
// change are stopped before the file and keyring change under them.
func (f *Fleet) Save(ctx context.Context, s Save) error {
	f.change.Lock()
	defer f.change.Unlock()
	edit, err := config.PrepareSave(f.Config().Path, s.Replacing, s.Connection)
	if err != nil {
		return err
	}
	var tokens *auth.TokenSet
	if s.TestID != "" {
		if tokens, err = f.testTokens(s.TestID, s.Connection, s.Secret); err != nil {
			return err
		}
	}
	name := s.Connection.Name
	// A new secret or a test's tokens restart the keeper even when its table
	// is unchanged: it reads both only when it starts or refreshes, and a
	// connection that needed a sign-in must show the new one at once.
	restart := ""
	if s.Secret != "" || tokens != nil {
		restart = name
	}
	return f.apply(edit.Config, restart, func() error {
		if err := edit.Write(); err != nil {
			return err
		}
		var problems []error
		if s.Replacing != "" && s.Replacing != name {
			problems = append(problems, f.move(ctx, s.Replacing, name, s.Secret != "", tokens != nil))
		}
		if s.Secret != "" {
			if err := f.opt.Store.SetClientSecret(ctx, name, s.Secret); err != nil {
				problems = append(problems, fmt.Errorf("the client secret was not stored: %w; enter it again, or run `tokentray secret %s`", err, name))
			}
		}
		if tokens != nil {
			// A sign-in: a new grant, replacing whatever was stored.
			signedIn := *tokens
			signedIn.Generation = auth.NextGeneration(0, time.Now())
			if err := f.opt.Store.SaveTokens(ctx, name, &signedIn, auth.AnyGeneration); err != nil {
				problems = append(problems, fmt.Errorf("the test sign-in's tokens were not stored: %w; sign in again", err))
			}
		}
		if err := errors.Join(problems...); err != nil {
			return &SavedWithProblems{Name: name, Done: "is saved in the config file", Err: err}
		}
		return nil
	})
}

// SavedWithProblems means the config file was written and runs, but the
// keyring could not be brought in line with it.
type SavedWithProblems struct {
	Name string
	Done string // what happened to the file: "is saved in the config file"
	Err  error
}

func (e *SavedWithProblems) Error() string {
	return fmt.Sprintf("%s %s, but %v", e.Name, e.Done, e.Err)
}

func (e *SavedWithProblems) Unwrap() error { return e.Err }

// Remove signs name out, forgets its client secret and takes it out of the
// config file. A sign-out the provider did not confirm stops the removal,
// unless localOnly, which forgets the tokens here without telling it.
func (f *Fleet) Remove(ctx context.Context, name string, localOnly bool) error {
	f.change.Lock()
	defer f.change.Unlock()
	edit, err := config.PrepareRemove(f.Config().Path, name)
	if err != nil {
		return err
	}
	if k := f.keeper(name); k != nil {
		if _, err := k.Logout(ctx, localOnly); err != nil {
			return err
		}
	}
	return f.apply(edit.Config, "", func() error {
		if err := edit.Write(); err != nil {
			return err
		}
		if err := f.opt.Store.DeleteClientSecret(ctx, name); err != nil && !errors.Is(err, auth.ErrNotStored) {
			return &SavedWithProblems{Name: name, Done: "is removed from the config file", Err: fmt.Errorf("its client secret is still in the keyring: %w", err)}
		}
		return nil
	})
}

// Reload reads the config file again and runs what it says now: for a file
// edited by hand while the tray runs.
func (f *Fleet) Reload() error {
	f.change.Lock()
	defer f.change.Unlock()
	path := f.Config().Path
	f.mu.Lock()
	f.stamp = fileStamp(path) // a broken file is reported once, not at every look
	f.mu.Unlock()
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	return f.apply(cfg, "", func() error { return nil })
}

// apply makes the running set match cfg: keepers whose table is unchanged
// keep running untouched, except restart's; the others stop, then between
// runs (the file and keyring change), then the new ones start. An error
// from between that is not SavedWithProblems means the file is unchanged:
// the stopped keepers start again as they were.
func (f *Fleet) apply(cfg *config.Config, restart string, between func() error) error {
	f.mu.Lock()
	old := f.cfg
	keep := map[string]*member{}
	var stop []*member
	for _, m := range f.members {
		name := m.keeper.Connection().Name
		now, err := cfg.Resolve(name)
		if err == nil && name != restart && reflect.DeepEqual(now.Table, m.conn.Table) && now.AlertCommand == m.conn.AlertCommand {
			keep[name] = m
		} else {
			stop = append(stop, m)
		}
	}
	f.mu.Unlock()

	for _, m := range stop {
		if m.cancel != nil { // nil: the fleet has not started yet
			m.cancel()
			<-m.done
		}
	}
	err := between()
	var partly *SavedWithProblems
	if err != nil && !errors.As(err, &partly) {
		cfg = old // nothing was written: run what ran before
	}

	f.mu.Lock()
	changed := len(stop) > 0 || len(keep) != len(f.members)
	next := make([]*member, 0, len(cfg.Connections))
	for i, conn := range cfg.All() {
		m, ok := keep[conn.Auth.Name]
		if !ok {
			m = f.newMember(conn)
			f.run(m)
		}
		changed = changed || i >= len(f.members) || f.members[i] != m
		next = append(next, m)
	}
	changed = changed || len(next) != len(f.members) || !reflect.DeepEqual(old.Remotes, cfg.Remotes)
	changed = changed || !reflect.DeepEqual(old.Broken, cfg.Broken)
	f.cfg, f.members = cfg, next
	f.stamp = fileStamp(cfg.Path)
	var listeners []func()
	if changed {
		listeners = append(listeners, f.listeners...)
	}
	broken, tell := f.newlyBroken(cfg), slices.Clone(f.broken)
	f.mu.Unlock()
	for _, fn := range listeners {
		fn()
	}
	for _, b := range broken {
		for _, fn := range tell {
			fn(b)
		}
	}
	return err
}

// ClientSecret returns the stored client secret of name, for the editor's
// test sign-in of a connection whose secret field was left empty.
func (f *Fleet) ClientSecret(ctx context.Context, name string) (auth.Secret, error) {
	return f.opt.Store.ClientSecret(ctx, name)
}

// SetClientSecret stores a new client secret of connection name, in the
// fleet's store (which only this process may be able to write: an
// encrypted file store's key is the service's). A keeper whose client was
// refused tries again with it, keeping its refresh token.
func (f *Fleet) SetClientSecret(ctx context.Context, name string, secret auth.Secret) error {
	f.mu.Lock()
	_, err := f.cfg.Resolve(name)
	var k *auth.Keeper
	for _, m := range f.members {
		if m.keeper.Connection().Name == name {
			k = m.keeper
		}
	}
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", config.ErrNoSuchConnection, err)
	}
	if err := f.opt.Store.SetClientSecret(ctx, name, secret); err != nil {
		return err
	}
	if k != nil {
		k.RetryClient(ctx)
	}
	return nil
}

// Watch reloads the config file whenever it changes on disk, from its
// return until ctx ends (it does not block). The file's directory is watched with inotify (or the platform's
// equivalent), so nothing polls: an editor's save by rename is seen too,
// and a burst of writes is read once, settleDelay after the last. Where
// the directory cannot be watched (it does not exist yet), the file is
// looked at every fallback interval instead. A file that does not load (a
// half-saved edit) is reported to problem and changes nothing that runs.
func (f *Fleet) Watch(ctx context.Context, fallback time.Duration, problem func(error)) {
	f.mu.Lock()
	path := f.cfg.Path
	f.mu.Unlock()
	look := func() {
		f.mu.Lock()
		seen := f.stamp
		f.mu.Unlock()
		if fileStamp(path) == seen {
			return
		}
		if err := f.Reload(); err != nil && problem != nil {
			problem(err)
		}
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(path)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		f.opt.Log.Info("the config file is looked at every "+fallback.String(), "path", path, "why", err)
		go func() {
			t := time.NewTicker(fallback)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					look()
				}
			}
		}()
		return
	}
	go f.follow(ctx, w, path, look)
}

// follow reads the watcher's events for path until ctx ends.
func (f *Fleet) follow(ctx context.Context, w *fsnotify.Watcher, path string, look func()) {
	defer w.Close()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Clean(e.Name) == filepath.Clean(path) {
				settle.Reset(settleDelay)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			f.opt.Log.Warn("watching the config file", "err", err)
			settle.Reset(settleDelay) // events may have been lost: look
		case <-settle.C:
			look()
		}
	}
}

// settleDelay is how long the config file must be quiet before it is read:
// an editor saves in several writes.
const settleDelay = 200 * time.Millisecond

// fileStamp is what changes when a file is written, in place or by an
// editor's rename: its size or its modification time.
func fileStamp(path string) string {
	info, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d %d", info.Size(), info.ModTime().UnixNano())
}

func (f *Fleet) keeper(name string) *auth.Keeper {
	for _, k := range f.Keepers() {
		if k.Connection().Name == name {
			return k
		}
	}
	return nil
}

func (f *Fleet) newMember(conn *config.Resolved) *member {
	return &member{keeper: f.opt.NewKeeper(conn), conn: conn}
}

// run starts m's keeper. Call with f.mu held, after Start.
func (f *Fleet) run(m *member) {
	if f.ctx == nil {
		return // not started yet: Start runs it
	}
	ctx, cancel := context.WithCancel(f.ctx)
	m.cancel, m.done = cancel, make(chan struct{})
	f.all.Add(1)
	go func() {
		defer f.all.Done()
		defer close(m.done)
		if err := m.keeper.Run(ctx); err != nil {
			f.opt.Log.Error("keeper stopped", "connection", m.keeper.Connection().Name, "err", err)
		}
	}()
	if m.keeper.Connection().Endpoints.CheckURL != "" {
		go proveTokens(ctx, m.keeper)
	}
	if f.opt.Started != nil {
		f.opt.Started(ctx, m.keeper, m.conn)
	}
}

// proveTokens calls k's API check URL after every sign-in and refresh,
// until ctx ends: a token the provider issued but its API refuses (a wrong
// environment, a missing scope) shows at once, not when a script fails.
func proveTokens(ctx context.Context, k *auth.Keeper) {
	events, stop := k.Subscribe()
	go func() {
		<-ctx.Done()
		stop()
	}()
	for e := range events {
		if e.Kind == auth.EventSignedIn || e.Kind == auth.EventRefreshed {
			k.Check(ctx)
		}
	}
}

// move carries the tokens and the client secret of a renamed connection to
// its new name, except what the save brings new (replaced), whose old item
// is only deleted. Each is written under the new name before the old item
// goes, so a failure leaves a copy, never none.
func (f *Fleet) move(ctx context.Context, from, to string, newSecret, newTokens bool) error {
	st := f.opt.Store
	problems := []error{
		moveItem("tokens", newTokens,
			func() (*auth.TokenSet, error) { return st.LoadTokens(ctx, from) },
			func(t *auth.TokenSet) error { return st.SaveTokens(ctx, to, t, auth.AnyGeneration) },
			func() error { return st.DeleteTokens(ctx, from) }),
		moveItem("client secret", newSecret,
			func() (auth.Secret, error) { return st.ClientSecret(ctx, from) },
			func(s auth.Secret) error { return st.SetClientSecret(ctx, to, s) },
			func() error { return st.DeleteClientSecret(ctx, from) }),
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", from, to, err)
	}
	return nil
}

func moveItem[T any](what string, replaced bool, load func() (T, error), save func(T) error, remove func() error) error {
	if !replaced {
		v, err := load()
		switch {
		case errors.Is(err, auth.ErrNotStored):
			return nil
		case err != nil:
			return fmt.Errorf("moving the %s: %w; sign in or enter it again", what, err)
		}
		if err := save(v); err != nil {
			return fmt.Errorf("moving the %s: %w; sign in or enter it again", what, err)
		}
	}
	if err := remove(); err != nil && !errors.Is(err, auth.ErrNotStored) {
		return fmt.Errorf("the old name's %s item is still in the keyring: %w", what, err)
	}
	return nil
}
