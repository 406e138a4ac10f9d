package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/browser"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/filelock"
	"github.com/tokentray/tokentray/internal/service"
	etcdstore "github.com/tokentray/tokentray/internal/store/etcd"
	filestore "github.com/tokentray/tokentray/internal/store/file"
	keyringstore "github.com/tokentray/tokentray/internal/store/keyring"
	pgstore "github.com/tokentray/tokentray/internal/store/postgres"
	"github.com/tokentray/tokentray/internal/store/seal"
)

// streams are the command's standard streams.
type streams struct {
	in         io.Reader
	out, err   io.Writer
	inTerminal bool
	readSecret func() (string, error) // reads without echo from a terminal
}

func systemStreams() streams {
	return streams{
		in: os.Stdin, out: os.Stdout, err: os.Stderr,
		inTerminal: term.IsTerminal(int(os.Stdin.Fd())),
		readSecret: func() (string, error) {
			b, err := term.ReadPassword(int(os.Stdin.Fd()))
			return string(b), err
		},
	}
}

// env is what commands work with: the running tokentray to ask, and, for
// the work done here when none runs, the config, the store and the lock.
type env struct {
	// store is where this process keeps tokens: the config's choice,
	// opened by openStore on first use (tests set it).
	store auth.Store
	// locker serialises the writers of a connection: this machine's file
	// lock, or, once openStore opened a PostgreSQL store, its lease, which
	// every machine sharing the database takes (storage returns both).
	locker auth.Locker
	// fileLocks is this machine's file lock once locker is a shared
	// store's lease (nil until then: locker is the file lock).
	fileLocks auth.Locker
	// localStores replace the keyring or the file store (tests).
	localStores map[string]auth.Store
	clock       auth.Clock
	log         *slog.Logger
	streams     streams
	opener      func(string) error
	// api reaches the running tokentray; nil where there is none to ask
	// (tests).
	api *apiclient.Client

	// cfg is the config file, read on first use by config(): only work done
	// in this process reads it. A running tokentray answers from the config
	// it loaded, so a missing or half-edited file does not break the
	// scripts it serves.
	cfg     *config.Config
	cfgErr  error
	loadCfg func() (*config.Config, error)
	// configFlag is --config as given ("" without it): the running
	// tokentray answers a command only if it runs that config.
	configFlag string
}

// config is the config file, read once, its warnings printed once.
func (e *env) config() (*config.Config, error) {
	if e.cfg == nil && e.cfgErr == nil {
		if e.loadCfg == nil {
			return nil, errors.New("no config file to read")
		}
		e.cfg, e.cfgErr = e.loadCfg()
		if e.cfg != nil {
			for _, w := range e.cfg.Warnings {
				fmt.Fprintln(e.streams.err, "tokentray: warning: "+w)
			}
		}
	}
	return e.cfg, e.cfgErr
}

// openStore is the store the config chooses, opened once: only work done
// in this process needs one.
func (e *env) openStore() (auth.Store, error) {
	if e.store != nil {
		return e.store, nil
	}
	cfg, err := e.config()
	if err != nil {
		return nil, err
	}
	if cfg.Shared() {
		// The file lock excludes only this machine's processes: the
		// engine's lease excludes every instance.
		s, lease, err := openShared(cfg, e.log)
		if err != nil {
			return nil, fmt.Errorf("store = %q: %w", cfg.Store, err)
		}
		e.fileLocks = e.localLocker()
		e.store, e.locker = s, lease
		return s, nil
	}
	s, err := e.openLocal(cfg.Store)
	if err != nil {
		return nil, err
	}
	e.store = s
	return s, nil
}

// openLocal opens one of this machine's stores, the keyring or the file
// store (kind), which this machine's file lock guards (localLocker).
func (e *env) openLocal(kind string) (auth.Store, error) {
	if s := e.localStores[kind]; s != nil {
		return s, nil
	}
	if kind != config.StoreFile {
		return keyringstore.New(), nil
	}
	dir, err := filestore.DefaultDir()
	if err != nil {
		return nil, err
	}
	key, err := filestore.KeyFromCredentials()
	if err != nil {
		return nil, err
	}
	s, err := filestore.Open(dir, key)
	if err != nil {
		return nil, fmt.Errorf("store = \"file\": %w", err)
	}
	return s, nil
}

// localLocker is this machine's file lock, which the keyring's and the
// file store's writers hold, whatever store the config chooses.
func (e *env) localLocker() auth.Locker {
	if e.fileLocks != nil {
		return e.fileLocks
	}
	return e.locker
}

// storage is the store the config chooses and the Locker that goes with
// it: the file lock of this machine, or the PostgreSQL store's lease.
func (e *env) storage() (auth.Store, auth.Locker, error) {
	store, err := e.openStore()
	if err != nil {
		return nil, nil, err
	}
	return store, e.locker, nil
}

// openShared opens the shared store of cfg (PostgreSQL or etcd) and its
// lease, with the key of store_key_file or else of the systemd credential
// tokentray.key, and the instance name of the file or else the host name.
func openShared(cfg *config.Config, log *slog.Logger) (auth.Store, auth.Locker, error) {
	var key []byte
	var err error
	if cfg.StoreKeyFile != "" {
		key, err = seal.KeyFromFile(cfg.StoreKeyFile)
	} else {
		key, err = seal.KeyFromCredentials()
	}
	if err != nil {
		return nil, nil, err
	}
	instance := cfg.Instance
	if instance == "" {
		if instance, err = os.Hostname(); err != nil {
			return nil, nil, fmt.Errorf("name this machine with instance = \"…\" in the config: the host name is not known (%w)", err)
		}
	}
	ctx := context.Background()
	if cfg.Store == config.StoreEtcd {
		s, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: cfg.StoreEndpoints, TLSCA: cfg.StoreTLSCA, TLSCert: cfg.StoreTLSCert, TLSKey: cfg.StoreTLSKey,
			Key: key, Instance: instance, Log: log})
		if err != nil {
			return nil, nil, err
		}
		if err := s.CheckKey(ctx, connectionNames(cfg)); err != nil {
			s.Close()
			return nil, nil, err
		}
		lease, err := s.NewLease(etcdstore.LeaseOptions{Log: log, TTL: cfg.StoreLeaseTTL})
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		return s, lease, nil
	}
	s, err := pgstore.Open(ctx, pgstore.Options{URL: cfg.StoreURL, Key: key, Instance: instance, Log: log})
	if err != nil {
		return nil, nil, err
	}
	if err := s.CheckKey(ctx, connectionNames(cfg)); err != nil {
		s.Close()
		return nil, nil, err
	}
	lease, err := s.NewLease(pgstore.LeaseOptions{Log: log, TTL: cfg.StoreLeaseTTL})
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, lease, nil
}

// connectionNames are the names of cfg's connections, the broken ones too.
// A shared store's key is checked on what is stored of them: an instance
// given another key than the others' stops before it fails each refresh
// and overwrites what they sealed.
func connectionNames(cfg *config.Config) []string {
	var names []string
	for _, c := range cfg.Connections {
		names = append(names, c.Name)
	}
	for _, b := range cfg.Broken {
		names = append(names, b.Name)
	}
	return names
}

// envFactory builds the environment once flags are parsed; tests replace it.
type envFactory func(ctx context.Context, o globalOptions, io streams) (*env, error)

type globalOptions struct {
	configPath string
	verbose    bool
}

func newEnv(_ context.Context, o globalOptions, io streams) (*env, error) {
	path := o.configPath
	if path == "" {
		p, err := config.DefaultPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	e, err := newEnvWithConfig(nil, io.err)
	if err != nil {
		return nil, err
	}
	e.loadCfg = func() (*config.Config, error) { return config.Load(path) }
	e.configFlag = o.configPath
	if o.verbose {
		e.log = slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	e.streams = io
	return e, nil
}

// newEnvWithConfig is the real environment for an already loaded config.
func newEnvWithConfig(cfg *config.Config, logTo io.Writer) (*env, error) {
	locks, err := filelock.DefaultDir()
	if err != nil {
		return nil, err
	}
	return &env{
		cfg: cfg, locker: locks, clock: auth.SystemClock{},
		log:    slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelError})),
		opener: browser.Open,
		api:    apiclient.New(apiclient.DefaultPath()),
	}, nil
}

// keeper returns a loaded keeper for the named connection.
func (e *env) keeper(ctx context.Context, name string) (*auth.Keeper, error) {
	conn, err := e.lookup(name)
	if err != nil {
		return nil, err
	}
	opts, err := e.keeperOptions(conn)
	if err != nil {
		return nil, err
	}
	k := auth.NewKeeper(conn.Auth, opts)
	if err := k.Load(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// lookup finds a connection in the config file.
func (e *env) lookup(name string) (*config.Resolved, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, err
	}
	conn, err := cfg.Resolve(name)
	if err != nil {
		return nil, usageError{err}
	}
	return conn, nil
}

// keeperOptions are the options of every keeper this process makes: the
// store, the lock, the clock, the browser, and the export file if any.
func (e *env) keeperOptions(conn *config.Resolved) (auth.KeeperOptions, error) {
	store, locker, err := e.storage()
	if err != nil {
		return auth.KeeperOptions{}, err
	}
	return service.KeeperOptions(conn, auth.KeeperOptions{Store: store, Locker: locker, Clock: e.clock, Logger: e.log, OpenBrowser: e.opener}), nil
}
