package proxykey

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAKeyIsMadeOnceKeptPrivateAndReplacedByRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokentray")
	keys, err := OpenIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	first, err := keys.Get("procore")
	if err != nil || !strings.HasPrefix(first, "ttk_") || len(first) < 40 {
		t.Fatalf("key %q %v", first, err)
	}
	if again, _ := keys.Get("procore"); again != first {
		t.Fatal("a second Get made another key")
	}
	info, err := os.Stat(filepath.Join(dir, "procore.proxy-key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v %v", info, err)
	}
	rotated, _ := keys.Rotate("procore")
	if now, _ := keys.Get("procore"); rotated == first || now != rotated {
		t.Fatalf("after Rotate: %q, then %q (was %q)", rotated, now, first)
	}
	if other, _ := keys.Get("other"); other == rotated {
		t.Fatal("two connections share a key")
	}
	// A file that others can read is refused, not used.
	_ = os.Chmod(filepath.Join(dir, "procore.proxy-key"), 0o644)
	if _, err := keys.Get("procore"); err == nil {
		t.Fatal("a key file readable by others was used")
	}
}
