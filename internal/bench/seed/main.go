// Command seed writes N signed-in connections for the idle benchmark: a
// config file and token sets in the OS keyring whose access tokens live a
// day, so that nothing refreshes while the tray is measured.
//
// usage: go run ./internal/bench/seed N CONFIG_PATH
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/keyringstore"
)

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || len(os.Args) != 3 {
		log.Fatal("usage: seed N CONFIG_PATH")
	}
	var cfg strings.Builder
	store := keyringstore.New()
	now := time.Now().Round(0)
	for i := range n {
		name := fmt.Sprintf("conn-%03d", i)
		fmt.Fprintf(&cfg, "[[connection]]\nname = %q\nprovider = \"generic\"\nclient_id = \"bench\"\nredirect_uri = \"http://localhost:%d/callback\"\nauth_url = \"http://127.0.0.1:9/auth\"\ntoken_url = \"http://127.0.0.1:9/token\"\n\n", name, 20000+i)
		t := &auth.TokenSet{AccessToken: auth.Secret(strings.Repeat("a", 1200)), TokenType: "bearer", RefreshToken: "rt-bench",
			ObtainedAt: now, Lifetime: 24 * time.Hour, RefreshTokenSince: now}
		if err := store.SaveTokens(context.Background(), name, t); err != nil {
			log.Fatal(err)
		}
	}
	if err := os.WriteFile(os.Args[2], []byte(cfg.String()), 0o600); err != nil {
		log.Fatal(err)
	}
}
