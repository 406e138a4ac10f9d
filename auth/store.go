package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokentray/tokentray/internal/secretstore"
)

// ErrNotStored means nothing is stored for the connection.
var ErrNotStored = errors.New("nothing stored")

// Store keeps token sets and client secrets. Implementations must bound
// every call in time and never fall back to a plain file.
type Store interface {
	LoadTokens(ctx context.Context, name string) (*TokenSet, error)
	SaveTokens(ctx context.Context, name string, t *TokenSet) error
	DeleteTokens(ctx context.Context, name string) error
	ClientSecret(ctx context.Context, name string) (Secret, error)
	SetClientSecret(ctx context.Context, name string, secret Secret) error
	DeleteClientSecret(ctx context.Context, name string) error
}

// KeyringService is the OS keyring service every tokentray item lives under.
const KeyringService = "tokentray"

// KeyringStore is the Store on the OS keyring: one item per connection for
// its token set ("NAME") and one for its client secret ("NAME/client-secret").
type KeyringStore struct {
	Secrets *secretstore.Store
}

// NewKeyringStore returns the Store on the OS keyring under KeyringService.
func NewKeyringStore() *KeyringStore {
	return &KeyringStore{Secrets: secretstore.New(KeyringService)}
}

func tokenKey(name string) string  { return name }
func secretKey(name string) string { return name + "/client-secret" }

// LoadTokens reads the token set of name.
func (s *KeyringStore) LoadTokens(ctx context.Context, name string) (*TokenSet, error) {
	v, err := s.Secrets.Get(ctx, tokenKey(name))
	if errors.Is(err, secretstore.ErrNotFound) {
		return nil, fmt.Errorf("tokens of %s: %w", name, ErrNotStored)
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens of %s: %w", name, err)
	}
	t, err := UnmarshalTokenSet([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("read tokens of %s: %w", name, err)
	}
	return t, nil
}

// SaveTokens writes the token set of name.
func (s *KeyringStore) SaveTokens(ctx context.Context, name string, t *TokenSet) error {
	b, err := MarshalTokenSet(t)
	if err != nil {
		return fmt.Errorf("encode tokens of %s: %w", name, err)
	}
	if err := s.Secrets.Set(ctx, tokenKey(name), string(b)); err != nil {
		return fmt.Errorf("save tokens of %s: %w", name, err)
	}
	return nil
}

// DeleteTokens forgets the token set of name.
func (s *KeyringStore) DeleteTokens(ctx context.Context, name string) error {
	if err := s.Secrets.Delete(ctx, tokenKey(name)); err != nil {
		return fmt.Errorf("delete tokens of %s: %w", name, err)
	}
	return nil
}

// ClientSecret reads the client secret of name.
func (s *KeyringStore) ClientSecret(ctx context.Context, name string) (Secret, error) {
	v, err := s.Secrets.Get(ctx, secretKey(name))
	if errors.Is(err, secretstore.ErrNotFound) {
		return "", fmt.Errorf("client secret of %s: %w", name, ErrNotStored)
	}
	if err != nil {
		return "", fmt.Errorf("read client secret of %s: %w", name, err)
	}
	return Secret(v), nil
}

// SetClientSecret writes the client secret of name.
func (s *KeyringStore) SetClientSecret(ctx context.Context, name string, secret Secret) error {
	if err := s.Secrets.Set(ctx, secretKey(name), secret.Reveal()); err != nil {
		return fmt.Errorf("save client secret of %s: %w", name, err)
	}
	return nil
}

// DeleteClientSecret forgets the client secret of name.
func (s *KeyringStore) DeleteClientSecret(ctx context.Context, name string) error {
	if err := s.Secrets.Delete(ctx, secretKey(name)); err != nil {
		return fmt.Errorf("delete client secret of %s: %w", name, err)
	}
	return nil
}

// Locker serialises read-refresh-save of one connection across processes.
// The tray and a CLI running without the tray both take it, so one refresh
// token is never presented twice.
type Locker interface {
	Lock(ctx context.Context, name string) (unlock func(), err error)
}
