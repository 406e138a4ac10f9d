package auth

import (
	"context"
	"fmt"
	"sync"
)

// MemoryStore is a Store that keeps everything in this process's memory.
// It is for demos and tests: what it holds is gone when the process exits.
type MemoryStore struct {
	mu      sync.Mutex
	tokens  map[string]TokenSet
	secrets map[string]Secret
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{tokens: map[string]TokenSet{}, secrets: map[string]Secret{}}
}

// LoadTokens returns name's token set (Store).
func (m *MemoryStore) LoadTokens(_ context.Context, name string) (*TokenSet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[name]
	if !ok {
		return nil, fmt.Errorf("tokens of %s: %w", name, ErrNotStored)
	}
	return &t, nil
}

// SaveTokens stores t if the stored generation is prev (Store): the
// compare-and-set is atomic here, with or without the Locker.
func (m *MemoryStore) SaveTokens(_ context.Context, name string, t *TokenSet, prev uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var stored *TokenSet
	if cur, ok := m.tokens[name]; ok {
		stored = &cur
	}
	if err := CompareGeneration(stored, prev); err != nil {
		if InPlace(stored, t, prev) {
			return nil
		}
		return fmt.Errorf("save tokens of %s: %w", name, err)
	}
	next := *t
	next.Version = 1
	if stored != nil {
		next.Version = stored.Version + 1
	}
	m.tokens[name] = next
	return nil
}

// DeleteTokens forgets name's token set (Store).
func (m *MemoryStore) DeleteTokens(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, name)
	return nil
}

// ClientSecret returns name's client secret (Store).
func (m *MemoryStore) ClientSecret(_ context.Context, name string) (Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.secrets[name]
	if !ok {
		return "", fmt.Errorf("client secret of %s: %w", name, ErrNotStored)
	}
	return s, nil
}

// SetClientSecret stores name's client secret (Store).
func (m *MemoryStore) SetClientSecret(_ context.Context, name string, s Secret) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets[name] = s
	return nil
}

// DeleteClientSecret forgets name's client secret (Store).
func (m *MemoryStore) DeleteClientSecret(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.secrets, name)
	return nil
}

// ProcessLocker is a Locker for one process: enough when nothing else can
// reach the connection's store (a MemoryStore).
type ProcessLocker struct {
	mu    sync.Mutex
	locks map[string]chan struct{}
}

// Lock takes name's lock, waiting until ctx ends.
func (l *ProcessLocker) Lock(ctx context.Context, name string) (func(), error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]chan struct{}{}
	}
	ch, ok := l.locks[name]
	if !ok {
		ch = make(chan struct{}, 1)
		l.locks[name] = ch
	}
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("lock %s: %w", name, ctx.Err())
	}
}
