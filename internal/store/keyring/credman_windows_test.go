package keyring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	gokeyring "github.com/zalando/go-keyring"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/storetest"
)

// The keyring store on the Windows Credential Manager itself, through
// go-keyring (CredWriteW, CredReadW, CredDeleteW); .ci/test runs these under
// Wine, whose Credential Manager keeps the items in the prefix's registry.
// Each store has a service name of its own and removes its items afterwards.

// credman returns a Store on the Credential Manager under a new service
// name; at the end of the test it deletes what names left behind.
func credman(t *testing.T, names ...string) (*Store, string) {
	service := fmt.Sprintf("tokentray-test-%d", time.Now().UnixNano())
	s := &Store{Secrets: NewItems(service)}
	s.Secrets.Timeout = 5 * time.Second
	t.Cleanup(func() {
		for _, name := range names {
			_ = s.DeleteTokens(context.Background(), name)
			_ = s.DeleteClientSecret(context.Background(), name)
		}
	})
	return s, service
}

func TestTheCredentialManagerKeepsTheStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) auth.Store {
		s, _ := credman(t, "p", "a", "b", "none")
		return s
	})
}

// Go-keyring refuses a value over 2,560 bytes on Windows (the Credential
// Manager's own limit for a blob); a token set with a long JWT access token
// is stored as a header item and chunks of DefaultChunkSize, each a
// credential of its own, and all of them go with a sign-out.
func TestTheCredentialManagerKeepsLargeTokenSetsInChunks(t *testing.T) {
	ctx := context.Background()
	s, service := credman(t, "chunky")
	if DefaultChunkSize() > 2560 {
		t.Fatalf("the chunk size on Windows is %d, over the Credential Manager's 2,560 bytes", DefaultChunkSize())
	}
	if err := gokeyring.Set(service, "too-big", strings.Repeat("x", 2561)); !errors.Is(err, gokeyring.ErrSetDataTooBig) {
		_ = gokeyring.Delete(service, "too-big")
		t.Fatalf("one item of 2,561 bytes: %v, want go-keyring's ErrSetDataTooBig (the limit chunking works around)", err)
	}

	big := &auth.TokenSet{AccessToken: auth.Secret(strings.Repeat("eyJhbGciOi", 700)), RefreshToken: "rt-big", TokenType: "bearer",
		ObtainedAt: time.Now().Truncate(time.Second), Lifetime: 90 * time.Minute}
	if err := s.SaveTokens(ctx, "chunky", big, auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	head, err := gokeyring.Get(service, tokenKey("chunky"))
	if err != nil {
		t.Fatal(err)
	}
	gen, n, chunked := parseHeader(head)
	if !chunked || n < 4 {
		t.Fatalf("the item %q holds %.40q, want a chunk header of 4 or more parts", tokenKey("chunky"), head)
	}
	for i := range n {
		part, err := gokeyring.Get(service, chunkKey(tokenKey("chunky"), gen, i))
		if err != nil || len(part) == 0 || len(part) > DefaultChunkSize() {
			t.Fatalf("chunk %d of %d: %d bytes, %v", i+1, n, len(part), err)
		}
	}

	// Read back by a store that has not seen the header (another process).
	again := &Store{Secrets: NewItems(service)}
	got, err := again.LoadTokens(ctx, "chunky")
	if err != nil || got.AccessToken != big.AccessToken || got.RefreshToken != "rt-big" {
		t.Fatalf("read back from the Credential Manager: %v", err)
	}

	// A smaller token set (a new sign-in) replaces the chunks with one item.
	small := &auth.TokenSet{AccessToken: "at-small", RefreshToken: "rt-small", TokenType: "bearer", ObtainedAt: time.Now(), Lifetime: time.Hour}
	if err := s.SaveTokens(ctx, "chunky", small, auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := gokeyring.Get(service, chunkKey(tokenKey("chunky"), gen, i)); !errors.Is(err, gokeyring.ErrNotFound) {
			t.Fatalf("chunk %d of the large token set is left: %v", i+1, err)
		}
	}
	if err := s.DeleteTokens(ctx, "chunky"); err != nil {
		t.Fatal(err)
	}
	if _, err := gokeyring.Get(service, tokenKey("chunky")); !errors.Is(err, gokeyring.ErrNotFound) {
		t.Fatalf("after a sign-out: %v", err)
	}
	if _, err := s.LoadTokens(ctx, "chunky"); !errors.Is(err, auth.ErrNotStored) {
		t.Fatalf("after a sign-out: %v", err)
	}
}
