// Package proxykey keeps the keys of the proxy's loopback ports: one per
// connection with a proxy_port, a random string that a client sends in the
// proxy.KeyHeader header. Each is a 0600 file of the user's in
// tokentray's state directory, never sealed (the agents read it with
// `tokentray proxy-key NAME`), made when first asked for and replaced by
// Rotate.
//
// It also keeps the ports' TLS identity (TLS): a private CA that agents
// pin and the one certificate it signed, so that a process of another user
// that took a port first cannot pass for tokentray.
package proxykey

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	filestore "github.com/tokentray/tokentray/internal/store/file"
)

// Keys are the proxy keys in a directory.
type Keys struct {
	store *filestore.Store
	now   func() time.Time // the TLS certificate's clock; tests set it

	mu     sync.Mutex
	tls    *PortTLS // parsed from tlsRaw, the TLS file as last read
	tlsRaw []byte
}

// Open opens the keys in tokentray's state directory ($XDG_STATE_HOME/
// tokentray), made 0700 if it is missing.
func Open() (*Keys, error) {
	dir, err := filestore.DefaultDir()
	if err != nil {
		return nil, err
	}
	return OpenIn(dir)
}

// OpenIn opens the keys in dir.
func OpenIn(dir string) (*Keys, error) {
	s, err := filestore.Open(dir, nil)
	if err != nil {
		return nil, err
	}
	return &Keys{store: s, now: time.Now}, nil
}

func file(name string) string { return name + ".proxy-key" }

// Get is the key of name's port, made now if it has none.
func (k *Keys) Get(name string) (string, error) {
	b, err := k.store.ReadFile(name, file(name))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return k.Rotate(name)
	case err != nil:
		return "", fmt.Errorf("the proxy key of %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Rotate replaces the key of name's port: clients with the old one are
// refused from the next request on.
func (k *Keys) Rotate(name string) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	key := "ttk_" + base64.RawURLEncoding.EncodeToString(raw)
	if err := k.store.WriteFile(name, file(name), []byte(key+"\n")); err != nil {
		return "", fmt.Errorf("write the proxy key of %s: %w", name, err)
	}
	return key, nil
}
