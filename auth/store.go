package auth

import (
	"context"
	"errors"
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

// Locker serialises read-refresh-save of one connection across processes.
// The tray and a CLI running without the tray both take it, so one refresh
// token is never presented twice.
type Locker interface {
	Lock(ctx context.Context, name string) (unlock func(), err error)
}
