// Package seal is the authenticated encryption every store of tokentray's
// that writes outside the OS keyring uses: the file store's sealed files and
// the shared stores' rows. It exists so that there is one sealing primitive
// to review, not one per store.
//
// A value is sealed with AES-256-GCM under the instance's 32-byte key, with a
// fresh random nonce per seal, and with associated data that the caller
// chooses: what the value is (a file's name; a row's name, kind and
// version). A value moved to another place, or replayed at another version,
// then does not open, because its associated data no longer matches.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// KeyCredential is the name of the systemd credential that holds the key
// (LoadCredentialEncrypted=tokentray.key:…).
const KeyCredential = "tokentray.key"

// KeySize is the size of a key in bytes.
const KeySize = 32

// ErrOpen is the error of a sealed value that does not open: another key,
// other associated data (a value copied to another name or version), or a
// value that was changed. Callers wrap it with what the value was.
var ErrOpen = errors.New("does not open with this key (another key, or a value copied from another item or version)")

// Sealer seals and opens values with one key. It is safe for concurrent
// use.
type Sealer struct{ aead cipher.AEAD }

// New returns the Sealer of key, which must be KeySize bytes.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("the key must be %d bytes, this one has %d: make it with head -c 32 /dev/urandom (see the README, Servers and agents)", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns value sealed with aad as its associated data: the nonce,
// then the ciphertext and its tag.
func (s *Sealer) Seal(value, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(value)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, value, aad), nil
}

// Open returns the value that Seal sealed with aad, or an error wrapping
// ErrOpen. The error never holds any of the value.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, fmt.Errorf("cut short, it holds no sealed value: %w", ErrOpen)
	}
	nonce, rest := sealed[:s.aead.NonceSize()], sealed[s.aead.NonceSize():]
	v, err := s.aead.Open(nil, nonce, rest, aad)
	if err != nil {
		return nil, ErrOpen
	}
	return v, nil
}

// KeyFromCredentials is the key systemd passes the service as the
// credential tokentray.key ($CREDENTIALS_DIRECTORY), or nil when there is
// none: a process that was not started with it.
func KeyFromCredentials() ([]byte, error) {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return nil, nil
	}
	key, err := os.ReadFile(filepath.Join(dir, KeyCredential))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the credential %s: %w", KeyCredential, err)
	}
	return key, nil
}

// CheckPrivate checks that the file at path (a private key: the instance
// key, a TLS client key) may be read by its owner alone, as KeyFromFile
// does.
func CheckPrivate(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return private(path, info)
}

// private: only the owner may read it (not checked on Windows, where modes
// do not say who may read).
func private(path string, info os.FileInfo) error {
	if perm := info.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return fmt.Errorf("the key file %s has mode %04o, so other users may read it; run chmod 600 %s", path, perm, path)
	}
	return nil
}

// KeyFromFile reads the key in path, which must be a regular file that only
// its owner may read (0600 or 0400; not checked on Windows, where modes do
// not say who may read).
func KeyFromFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the key file %s: %w (where other instances share the store already, copy theirs: every instance needs the same key; for the first, make one with: head -c 32 /dev/urandom > %s && chmod 600 %s)", path, err, path, path)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read the key file %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("the key file %s is not a regular file", path)
	}
	if err := private(path, info); err != nil {
		return nil, err
	}
	key, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("read the key file %s: %w", path, err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("the key file %s holds %d bytes, a key is %d: make it with head -c 32 /dev/urandom > %s", path, len(key), KeySize, path)
	}
	return key, nil
}
