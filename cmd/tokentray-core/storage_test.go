package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
