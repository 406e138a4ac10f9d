// Package keyring is auth.Store on the OS keyring (the Secret Service on
// Linux, the Keychain on macOS, the Credential Manager on Windows), through
// bounded, chunking calls (Items). auth defines the Store it needs and knows
// no keyring; the programs choose this one.
package keyring

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokentray/tokentray/auth"
)

// The store must be what auth asks for.
var _ auth.Store = (*Store)(nil)

// Service is the OS keyring service every tokentray item lives under (a
// contract: people find their items by it, and scripts clear them with it).
const Service = "tokentray"

// Store is auth.Store on the OS keyring: one item per connection for its
// token set ("NAME") and one for its client secret ("NAME/client-secret").
type Store struct {
	Secrets *Items
}

// New returns the Store on the OS keyring under Service.
func New() *Store {
	return &Store{Secrets: NewItems(Service)}
}

func tokenKey(name string) string  { return name }
func secretKey(name string) string { return name + "/client-secret" }

// LoadTokens reads the token set of name.
func (s *Store) LoadTokens(ctx context.Context, name string) (*auth.TokenSet, error) {
	v, err := s.Secrets.Get(ctx, tokenKey(name))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tokens of %s: %w", name, auth.ErrNotStored)
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens of %s: %w", name, err)
	}
	t, err := auth.UnmarshalTokenSet([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("read tokens of %s: %w", name, err)
	}
	return t, nil
}

// SaveTokens writes name's token set if the stored one is of generation
// prev (auth.Store): it reads the stored one and compares under the
// connection's Locker, which every writer holds.
func (s *Store) SaveTokens(ctx context.Context, name string, t *auth.TokenSet, prev uint64) error {
	b, err := auth.EncodeSave(ctx, s, name, t, prev)
	if err != nil || b == nil {
		return err // b nil: t is stored already (auth.InPlace)
	}
	if err := s.Secrets.Set(ctx, tokenKey(name), string(b)); err != nil {
		return fmt.Errorf("save tokens of %s: %w", name, err)
	}
	return nil
}

// DeleteTokens forgets the token set of name.
func (s *Store) DeleteTokens(ctx context.Context, name string) error {
	if err := s.Secrets.Delete(ctx, tokenKey(name)); err != nil {
		return fmt.Errorf("delete tokens of %s: %w", name, err)
	}
	return nil
}

// ClientSecret reads the client secret of name.
func (s *Store) ClientSecret(ctx context.Context, name string) (auth.Secret, error) {
	v, err := s.Secrets.Get(ctx, secretKey(name))
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("client secret of %s: %w", name, auth.ErrNotStored)
	}
	if err != nil {
		return "", fmt.Errorf("read client secret of %s: %w", name, err)
	}
	return auth.Secret(v), nil
}

// SetClientSecret writes the client secret of name.
func (s *Store) SetClientSecret(ctx context.Context, name string, secret auth.Secret) error {
	if err := s.Secrets.Set(ctx, secretKey(name), secret.Reveal()); err != nil {
		return fmt.Errorf("save client secret of %s: %w", name, err)
	}
	return nil
}

// DeleteClientSecret forgets the client secret of name.
func (s *Store) DeleteClientSecret(ctx context.Context, name string) error {
	if err := s.Secrets.Delete(ctx, secretKey(name)); err != nil {
		return fmt.Errorf("delete client secret of %s: %w", name, err)
	}
	return nil
}
