package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

func sealer(t *testing.T, b byte) *Sealer {
	t.Helper()
	s, err := New(bytes.Repeat([]byte{b}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestASealedValueOpensOnlyWithItsKeyAndItsAssociatedData(t *testing.T) {
	s := sealer(t, 1)
	value := []byte("rt-secret")
	a, err := s.Seal(value, []byte("p/tokens/1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Seal(value, []byte("p/tokens/1"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are alike: the nonce was reused")
	}
	if bytes.Contains(a, value) {
		t.Fatal("the value is in the clear in its seal")
	}
	if got, err := s.Open(a, []byte("p/tokens/1")); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("open: %q, %v", got, err)
	}
	tampered := bytes.Clone(a)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name   string
		s      *Sealer
		sealed []byte
		aad    string
	}{
		{"another name", s, a, "q/tokens/1"},
		{"another version", s, a, "p/tokens/2"},
		{"another key", sealer(t, 2), a, "p/tokens/1"},
		{"a changed byte", s, tampered, "p/tokens/1"},
		{"cut short", s, a[:10], "p/tokens/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.s.Open(tc.sealed, []byte(tc.aad))
			if !errors.Is(err, ErrOpen) || got != nil {
				t.Fatalf("opened: %q, %v; want %v", got, err, ErrOpen)
			}
		})
	}
}

func TestAKeyMustBe32Bytes(t *testing.T) {
	if _, err := New([]byte("short")); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("a 5-byte key: %v", err)
	}
}

func TestAKeyFileMustBePrivateAndWhole(t *testing.T) {
	dir := tempdir.New(t)
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, bytes.Repeat([]byte{3}, KeySize), 0o600); err != nil {
		t.Fatal(err)
	}
	if key, err := KeyFromFile(good); err != nil || len(key) != KeySize {
		t.Fatalf("a good key file: %d bytes, %v", len(key), err)
	}
	short := filepath.Join(dir, "short")
	_ = os.WriteFile(short, []byte("abc"), 0o600)
	if _, err := KeyFromFile(short); err == nil || !strings.Contains(err.Error(), "head -c 32 /dev/urandom") {
		t.Fatalf("a short key file: %v", err)
	}
	if _, err := KeyFromFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "make one with") {
		t.Fatalf("a missing key file: %v", err)
	}
	if runtime.GOOS != "windows" {
		open := filepath.Join(dir, "open")
		_ = os.WriteFile(open, bytes.Repeat([]byte{3}, KeySize), 0o644)
		if err := os.Chmod(open, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := KeyFromFile(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("a key file others may read: %v", err)
		}
	}
}
