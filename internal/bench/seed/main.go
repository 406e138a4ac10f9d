// Command seed writes N signed-in connections for the idle benchmarks: a
// config file and token sets whose access tokens live a day, so that
// nothing refreshes while the tray is measured. They go to the OS keyring,
// or with -file to the file store of a server ($XDG_STATE_HOME/tokentray).
//
// usage: go run ./internal/bench/seed [-file] N CONFIG_PATH
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
	filestore "github.com/tokentray/tokentray/internal/store/file"
	keyringstore "github.com/tokentray/tokentray/internal/store/keyring"
)

func main() {
	file := flag.Bool("file", false, "the file store (a server's), not the OS keyring")
	flag.Parse()
	n, err := strconv.Atoi(flag.Arg(0))
	if err != nil || flag.NArg() != 2 {
		log.Fatal("usage: seed [-file] N CONFIG_PATH")
	}
	var cfg strings.Builder
	var store auth.Store = keyringstore.New()
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
