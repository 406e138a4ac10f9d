package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/filelock"
	pgstore "github.com/tokentray/tokentray/internal/store/postgres"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// With store = "postgres", the keepers of this process (a running
// tokentray's, a command's) take the database's lease, which every
// instance sharing it takes: this machine's file lock would exclude only
// this machine's processes.
func TestAPostgreSQLStoreComesWithItsLeaseAsTheLocker(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	keyFile := filepath.Join(t.TempDir(), "store.key")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := newEnvWithConfig(&config.Config{Store: config.StorePostgres, StoreURL: conn, StoreKeyFile: keyFile, Instance: "moby-1"}, os.Stderr)
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
	defer store.(*pgstore.Store).Close()
	lease, ok := locker.(*pgstore.Lease)
	if !ok {
		t.Fatalf("store = \"postgres\": locker %T; want its lease", locker)
	}
	if e.locker != locker {
		t.Fatal("the keepers' locker is not the lease storage returned")
	}
	if h := lease.Holder(); !strings.HasPrefix(h, "moby-1/") {
		t.Fatalf("holder %q; want instance moby-1's", h)
	}
	opts, err := e.keeperOptions(&config.Resolved{})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Locker != locker {
		t.Fatalf("keeper options: locker %T; want the lease", opts.Locker)
	}
}
