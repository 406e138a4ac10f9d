package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/filelock"
	etcdstore "github.com/tokentray/tokentray/internal/store/etcd"
	pgstore "github.com/tokentray/tokentray/internal/store/postgres"
	"github.com/tokentray/tokentray/internal/tstest/etcdtest"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// With a shared store (store = "postgres" or "etcd"), the keepers of this
// process (a running tokentray's, a command's) take the engine's lease,
// which every instance sharing it takes: this machine's file lock would
// exclude only this machine's processes.
func TestASharedStoreComesWithItsLeaseAsTheLocker(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "store.key")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		store string
		cfg   func(t *testing.T) *config.Config
		lease func(any) bool
	}{
		{config.StorePostgres, func(t *testing.T) *config.Config {
			conn, _ := pgtest.Schema(t)
			return &config.Config{Store: config.StorePostgres, StoreURL: conn}
		}, func(l any) bool { _, ok := l.(*pgstore.Lease); return ok }},
		{config.StoreEtcd, func(t *testing.T) *config.Config {
			return &config.Config{Store: config.StoreEtcd, StoreEndpoints: etcdtest.Endpoints(t)}
		}, func(l any) bool { _, ok := l.(*etcdstore.Lease); return ok }},
	} {
		t.Run(tc.store, func(t *testing.T) {
			cfg := tc.cfg(t)
			cfg.StoreKeyFile, cfg.Instance = keyFile, "moby-1"
			e, err := newEnvWithConfig(cfg, os.Stderr)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := e.locker.(*filelock.Dir); !ok {
				t.Fatalf("before the store is opened: locker %T; want the file lock", e.locker)
			}
			store, locker, err := e.storage()
			if err != nil {
				t.Fatal(err)
			}
			defer store.(interface{ Close() }).Close()
			if !tc.lease(locker) {
				t.Fatalf("store = %q: locker %T; want its lease", tc.store, locker)
			}
			if e.locker != locker {
				t.Fatal("the keepers' locker is not the lease storage returned")
			}
			if h := locker.(interface{ Holder() string }).Holder(); !strings.HasPrefix(h, "moby-1/") {
				t.Fatalf("holder %q; want instance moby-1's", h)
			}
			opts, err := e.keeperOptions(&config.Resolved{})
			if err != nil {
				t.Fatal(err)
			}
			if opts.Locker != locker {
				t.Fatalf("keeper options: locker %T; want the lease", opts.Locker)
			}
		})
	}
}

// An instance given another key than the others' is stopped when it opens
// the shared store, whatever the command (serve, secret, login): it would
// fail each refresh and overwrite what the others sealed.
func TestAnInstanceWithAnotherKeyDoesNotOpenTheSharedStore(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]string{}
	for _, k := range []struct {
		name string
		b    byte
	}{{"ours", 7}, {"other", 9}} {
		keys[k.name] = filepath.Join(dir, k.name+".key")
		if err := os.WriteFile(keys[k.name], bytes.Repeat([]byte{k.b}, 32), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		store string
		cfg   func(t *testing.T) *config.Config
	}{
		{config.StorePostgres, func(t *testing.T) *config.Config {
			conn, _ := pgtest.Schema(t)
			return &config.Config{Store: config.StorePostgres, StoreURL: conn}
		}},
		{config.StoreEtcd, func(t *testing.T) *config.Config {
			return &config.Config{Store: config.StoreEtcd, StoreEndpoints: etcdtest.Endpoints(t)}
		}},
	} {
		t.Run(tc.store, func(t *testing.T) {
			cfg := tc.cfg(t)
			cfg.Connections = []*auth.Connection{{Name: "p"}}
			open := func(key, instance string) (auth.Store, error) {
				c := *cfg
				c.StoreKeyFile, c.Instance = keys[key], instance
				e, err := newEnvWithConfig(&c, os.Stderr)
				if err != nil {
					t.Fatal(err)
				}
				s, _, err := e.storage()
				if err == nil {
					t.Cleanup(s.(interface{ Close() }).Close)
				}
				return s, err
			}
			first, err := open("ours", "moby-1")
			if err != nil {
				t.Fatal(err)
			}
			if err := first.SetClientSecret(context.Background(), "p", "the-client-secret"); err != nil {
				t.Fatal(err)
			}
			if _, err := open("ours", "moby-2"); err != nil {
				t.Fatalf("the same key: %v", err)
			}
			_, err = open("other", "moby-3")
			if err == nil || !strings.Contains(err.Error(), "this instance's key is not the one the other instances use") ||
				!strings.Contains(err.Error(), "give this instance their key") {
				t.Fatalf("another key: %v", err)
			}
		})
	}
}
