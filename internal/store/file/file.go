// Package file is auth.Store in files, for machines without a Secret
// Service (servers, containers): `store = "file"` in the config. Each
// connection has NAME.tokens (its token set) and NAME.client-secret in one
// directory of the user's ($XDG_STATE_HOME/tokentray), which must be 0700
// and the files 0600, owned by the user; anything else is refused, never
// loosened or trusted.
//
// A write is durable before it returns, and a crash never leaves a half
// value: the new value goes to a temporary file in the same directory,
// which is synced, renamed over the old one, and the directory synced. So
// the keeper's rule holds as with the keyring: the rotated refresh token
// is on disk before the new access token is handed out.
//
// With a key (the service's systemd credential, KeyFromCredentials), every
// file is sealed (internal/store/seal: AES-256-GCM, a fresh random nonce
// per write) with the file's name as associated data, so that a file copied over another
// connection's does not decrypt. Without one, the files are plain JSON
// protected by their permissions only: against other users of the machine,
// not against root, a backup that copies them, or a stolen disk.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/seal"
)

// KeyCredential is the name of the systemd credential that holds the key
// (LoadCredentialEncrypted=tokentray.key:…).
const KeyCredential = seal.KeyCredential

// sealedPrefix starts every encrypted file; the nonce and the sealed value
// follow.
const sealedPrefix = "tokentray-sealed:v1\n"

// orphanAge is how old a temporary file must be to be a crash's leftover:
// a write takes milliseconds, and another process may be in the middle of
// one.
const orphanAge = 10 * time.Minute

// ErrUnsafe is the error of a directory or file that other users could read
// or change, or that is not the user's own.
var ErrUnsafe = errors.New("not private to this user")

// Store is auth.Store in the files of Dir.
type Store struct {
	Dir    string
	sealer *seal.Sealer // nil: plain files
}

var _ auth.Store = (*Store)(nil)

// DefaultDir is $XDG_STATE_HOME/tokentray, or ~/.local/state/tokentray.
func DefaultDir() (string, error) {
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "tokentray"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the directory for the token files: %w", err)
	}
	return filepath.Join(home, ".local", "state", "tokentray"), nil
}

// Open returns the store in dir, made 0700 if it does not exist, and
// refused if it is not private to this user. key, if not nil, is the
// 32-byte key that seals every file. Temporary files that a crash left
// behind are removed.
func Open(dir string, key []byte) (*Store, error) {
	s := &Store{Dir: dir}
	if key != nil {
		sealer, err := seal.New(key)
		if err != nil {
			return nil, fmt.Errorf("the key of the token files: %w", err)
		}
		s.sealer = sealer
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the directory of the token files: %w", err)
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory (a symlink?): the token files need a real directory of their own", dir)
	}
	if err := private(dir, info, "chmod 700 "+dir); err != nil {
		return nil, err
	}
	s.removeOrphans()
	return s, nil
}

// KeyFromCredentials is the key systemd passes the service as the
// credential tokentray.key, or nil when there is none
// (seal.KeyFromCredentials).
func KeyFromCredentials() ([]byte, error) { return seal.KeyFromCredentials() }

// Encrypted reports whether the store seals what it writes.
func (s *Store) Encrypted() bool { return s.sealer != nil }

func tokensFile(name string) string { return name + ".tokens" }
func secretFile(name string) string { return name + ".client-secret" }

// LoadTokens reads the token set of name.
func (s *Store) LoadTokens(_ context.Context, name string) (*auth.TokenSet, error) {
	b, err := s.read(name, tokensFile(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokens of %s: %w", name, auth.ErrNotStored)
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens of %s: %w", name, err)
	}
	t, err := auth.UnmarshalTokenSet(b)
	if err != nil {
		return nil, fmt.Errorf("read tokens of %s from %s: %w", name, filepath.Join(s.Dir, tokensFile(name)), err)
	}
	return t, nil
}

// SaveTokens writes name's token set, durably, if the stored one is of
// generation prev (auth.Store): it reads the stored one and compares under
// the connection's Locker, which every writer holds.
func (s *Store) SaveTokens(ctx context.Context, name string, t *auth.TokenSet, prev uint64) error {
	b, err := auth.EncodeSave(ctx, s, name, t, prev)
	if err != nil || b == nil {
		return err // b nil: t is stored already (auth.InPlace)
	}
	if err := s.write(name, tokensFile(name), b); err != nil {
		return fmt.Errorf("save tokens of %s: %w", name, err)
	}
	return nil
}

// DeleteTokens forgets the token set of name.
func (s *Store) DeleteTokens(_ context.Context, name string) error {
	if err := s.remove(name, tokensFile(name)); err != nil {
		return fmt.Errorf("delete tokens of %s: %w", name, err)
	}
	return nil
}

// ClientSecret reads the client secret of name.
func (s *Store) ClientSecret(_ context.Context, name string) (auth.Secret, error) {
	b, err := s.read(name, secretFile(name))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("client secret of %s: %w", name, auth.ErrNotStored)
	}
	if err != nil {
		return "", fmt.Errorf("read client secret of %s: %w", name, err)
	}
	return auth.Secret(b), nil
}

// SetClientSecret writes the client secret of name, durably.
func (s *Store) SetClientSecret(_ context.Context, name string, secret auth.Secret) error {
	if err := s.write(name, secretFile(name), []byte(secret.Reveal())); err != nil {
		return fmt.Errorf("save client secret of %s: %w", name, err)
	}
	return nil
}

// DeleteClientSecret forgets the client secret of name.
func (s *Store) DeleteClientSecret(_ context.Context, name string) error {
	if err := s.remove(name, secretFile(name)); err != nil {
		return fmt.Errorf("delete client secret of %s: %w", name, err)
	}
	return nil
}

// checkName keeps a connection name a plain file name in Dir.
func checkName(name string) error {
	if name == "" || name[0] == '.' || strings.ContainsAny(name, `/\`+"\x00") {
		return fmt.Errorf("%q cannot name a token file", name)
	}
	return nil
}

func (s *Store) read(name, file string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	path := filepath.Join(s.Dir, file)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := private(path, info, "chmod 600 "+path); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, err
	}
	return s.open(path, file, b)
}

// open returns the value of a file's content b: unsealed with the key, or
// as it is when the file is plain (one written before a key was given; it
// is sealed at its next write).
func (s *Store) open(path, file string, b []byte) ([]byte, error) {
	rest, sealed := bytes.CutPrefix(b, []byte(sealedPrefix))
	switch {
	case !sealed:
		return b, nil
	case s.sealer == nil:
		return nil, fmt.Errorf("%s is encrypted, and this process has no key: only the service started with the credential %s can read it (ask it through its socket: tokentray commands do when it runs)", path, KeyCredential)
	}
	v, err := s.sealer.Open(rest, []byte(file))
	if err != nil {
		return nil, fmt.Errorf("%s does not decrypt with this key (another key, or another connection's file copied here); it is left as it is", path)
	}
	return v, nil
}

func (s *Store) write(name, file string, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if s.sealer != nil {
		sealed, err := s.sealer.Seal(value, []byte(file))
		if err != nil {
			return err
		}
		value = append([]byte(sealedPrefix), sealed...)
	}
	tmp, err := os.CreateTemp(s.Dir, "."+file+".tmp-*") // 0600
	if err != nil {
		return err
	}
	_, err = tmp.Write(value)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.Dir, file))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return syncDir(s.Dir)
}

func (s *Store) remove(name, file string) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(s.Dir, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(s.Dir)
}

// removeOrphans removes the temporary files of writes that a crash cut
// short. They were never renamed into place, so nothing refers to them.
func (s *Store) removeOrphans() {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > orphanAge {
			_ = os.Remove(filepath.Join(s.Dir, e.Name()))
		}
	}
}

// ReadFile reads file (of connection name) with the store's checks: a
// file of tokentray's other than the tokens and the secret (a proxy key).
func (s *Store) ReadFile(name, file string) ([]byte, error) { return s.read(name, file) }

// WriteFile writes file (of connection name) with the store's guarantees:
// 0600, atomic, durable; sealed if the store has a key.
func (s *Store) WriteFile(name, file string, value []byte) error { return s.write(name, file, value) }
