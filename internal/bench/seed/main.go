// Command seed writes N signed-in connections for the idle benchmarks: a
// config file and token sets whose access tokens live a day, so that
// nothing refreshes while the tray is measured. They go to the OS keyring,
// or with -file to the file store of a server ($XDG_STATE_HOME/tokentray),
// with -postgres URL -key FILE to a shared PostgreSQL store, or with -etcd
// ENDPOINTS -key FILE to a shared etcd store.
//
// usage: go run ./internal/bench/seed [-file | -postgres URL -key FILE | -etcd URL,… -key FILE] N CONFIG_PATH
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
	etcdstore "github.com/tokentray/tokentray/internal/store/etcd"
	filestore "github.com/tokentray/tokentray/internal/store/file"
	keyringstore "github.com/tokentray/tokentray/internal/store/keyring"
	pgstore "github.com/tokentray/tokentray/internal/store/postgres"
	"github.com/tokentray/tokentray/internal/store/seal"
)

func main() {
	file := flag.Bool("file", false, "the file store (a server's), not the OS keyring")
	pg := flag.String("postgres", "", "the PostgreSQL store of this store_url, not the OS keyring")
	etcd := flag.String("etcd", "", "the etcd store of these store_endpoints (comma-separated), not the OS keyring")
	keyFile := flag.String("key", "", "with -postgres or -etcd: the store_key_file")
	flag.Parse()
	n, err := strconv.Atoi(flag.Arg(0))
	if err != nil || flag.NArg() != 2 {
		log.Fatal("usage: seed [-file] N CONFIG_PATH")
	}
	var cfg strings.Builder
	var store auth.Store = keyringstore.New()
	if *pg != "" {
		key, err := seal.KeyFromFile(*keyFile)
		if err != nil {
			log.Fatal(err)
		}
		s, err := pgstore.Open(context.Background(), pgstore.Options{URL: *pg, Key: key, Instance: "seed"})
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close()
		store = s
		fmt.Fprintf(&cfg, "store = \"postgres\"\nstore_url = %q\nstore_key_file = %q\ninstance = \"bench\"\n\n", *pg, *keyFile)
	}
	if *etcd != "" {
		key, err := seal.KeyFromFile(*keyFile)
		if err != nil {
			log.Fatal(err)
		}
		endpoints := strings.Split(*etcd, ",")
		s, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: endpoints, Key: key, Instance: "seed"})
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close()
		store = s
		fmt.Fprintf(&cfg, "store = \"etcd\"\nstore_endpoints = [\"%s\"]\nstore_key_file = %q\ninstance = \"bench\"\n\n", strings.Join(endpoints, `", "`), *keyFile)
	}
	if *file {
		cfg.WriteString("store = \"file\"\n\n")
		dir, err := filestore.DefaultDir()
		if err != nil {
			log.Fatal(err)
		}
		if store, err = filestore.Open(dir, nil); err != nil {
			log.Fatal(err)
		}
	}
	now := time.Now().Round(0)
	for i := range n {
		name := fmt.Sprintf("conn-%03d", i)
		fmt.Fprintf(&cfg, "[[connection]]\nname = %q\nprovider = \"generic\"\nclient_id = \"bench\"\nredirect_uri = \"http://localhost:%d/callback\"\nauth_url = \"http://127.0.0.1:9/auth\"\ntoken_url = \"http://127.0.0.1:9/token\"\n\n", name, 20000+i)
		t := &auth.TokenSet{AccessToken: auth.Secret(strings.Repeat("a", 1200)), TokenType: "bearer", RefreshToken: "rt-bench",
			ObtainedAt: now, Lifetime: 24 * time.Hour, RefreshTokenSince: now}
		if err := store.SaveTokens(context.Background(), name, t, auth.AnyGeneration); err != nil {
			log.Fatal(err)
		}
	}
	if err := os.WriteFile(flag.Arg(1), []byte(cfg.String()), 0o600); err != nil {
		log.Fatal(err)
	}
}
