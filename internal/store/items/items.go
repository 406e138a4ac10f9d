// Package items is what the stores shared by several machines (PostgreSQL,
// etcd) keep, the same way on either engine: a connection's token set and
// client secret, each an item with a version that moves with every write
// (deletions too: a deletion leaves a tombstone), the token set's
// generation, and its value sealed with the instance key, bound to the
// item's name, kind, version and generation. Items implements auth.Store's
// methods over an Engine, which reads a row and replaces it with a
// compare-and-set; each engine's package says how.
package items

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/seal"
)

// The kinds of item a connection has.
const (
	KindTokens = "tokens"
	KindSecret = "client-secret"
)

// Row is an item as an engine keeps it.
type Row struct {
	// Exists is false when the engine has no row for the item (a
	// tombstone exists).
	Exists     bool
	Version    int64
	Generation uint64
	// Sealed is the sealed value; nil for a tombstone.
	Sealed []byte
	// Rev is the engine's own mark of the row as read, which its Write
	// may compare (etcd: the key's mod revision); items does not read it.
	Rev int64
}

// Engine is a shared store's engine, for one item's row at a time.
type Engine interface {
	// Read returns name's kind as stored (Row.Exists false when there is
	// no row). Its error is the engine's, as it came.
	Read(ctx context.Context, name, kind string) (Row, error)
	// Write replaces cur, as Read returned it, with next, in one atomic
	// compare-and-set: false (and no error) when the row is not cur any
	// more.
	Write(ctx context.Context, name, kind string, cur, next Row) (bool, error)
	// Explain is an engine's error, from doing what, with what to do next
	// (auth.ErrStoreUnreachable wrapped when it did not answer).
	Explain(doing string, err error) error
	// Transient reports whether a write's err is one after which it may
	// have landed and may be sent again at once (an etcd election): the
	// row is read before it is, and a value this write sent, each unique
	// by its seal's nonce, is known for its own.
	Transient(err error) bool
}

// Items is auth.Store's methods over an Engine.
type Items struct {
	engine  Engine
	sealer  *seal.Sealer
	timeout time.Duration
	where   string
}

// New returns the items of engine, sealed by sealer, each call bounded by
// timeout; where names the engine in errors.
func New(engine Engine, sealer *seal.Sealer, timeout time.Duration, where string) *Items {
	return &Items{engine: engine, sealer: sealer, timeout: timeout, where: where}
}

// aad is what an item's seal binds: its name, kind, version and generation.
func aad(name, kind string, version int64, generation uint64) []byte {
	return fmt.Appendf(nil, "tokentray-item:v1\x00%s\x00%s\x00%d\x00%d", name, kind, version, generation)
}

// ErrForeignSeal: an item does not open with this instance's key: it was
// sealed with another key (the other instances' when this one was given
// the wrong one), or copied from another item.
var ErrForeignSeal = errors.New("cannot be opened with this instance's key")

// open unseals r, the item of name's kind.
func (it *Items) open(name, kind string, r Row) ([]byte, error) {
	b, err := it.sealer.Open(r.Sealed, aad(name, kind, r.Version, r.Generation))
	if err != nil {
		return nil, fmt.Errorf("the %s of %s in %s %w (another key, or a value copied from another connection or version); it is left as it is: give every instance the same key", kind, name, it.where, ErrForeignSeal)
	}
	return b, nil
}

// CheckKey opens what is stored of the connections called names, and
// fails with ErrForeignSeal when an item does not open: an instance given
// another key than the others' would otherwise start, fail each refresh,
// and overwrite a client secret or tokens that the others can then no
// longer open. A store it cannot read now is no reason not to start (the
// instance hands out what it holds while the store is away): only what
// was read and did not open fails. Each read has the store's bound of its
// own: one bound for all would leave the last of many connections unread
// on a slow link.
func (it *Items) CheckKey(ctx context.Context, names []string) error {
	read := func(name, kind string) (Row, error) {
		ctx, cancel := context.WithTimeout(ctx, it.timeout)
		defer cancel()
		return it.engine.Read(ctx, name, kind)
	}
	for _, name := range names {
		for _, kind := range []string{KindTokens, KindSecret} {
			r, err := read(name, kind)
			if err != nil || r.Sealed == nil {
				continue
			}
			if _, err := it.open(name, kind, r); err != nil {
				return fmt.Errorf("this instance's key is not the one the other instances use: the %s of %s in %s %w; give this instance their key (the same store_key_file, or the credential %s), then run this again", kind, name, it.where, ErrForeignSeal, seal.KeyCredential)
			}
		}
	}
	return nil
}

// maxAttempts bounds the retries of a write whose row another write
// changed between its read and its compare-and-set, without moving the
// generation (bookkeeping of a writer that does not hold the Locker).
const maxAttempts = 8

// pause is the wait before a transient error's write is sent again.
const pause = 100 * time.Millisecond

// put writes the value that next returns for the next version of name's
// kind, if check (given the stored generation, 0 for none) allows it.
func (it *Items) put(ctx context.Context, name, kind string, check func(stored uint64) error, next func(version int64) (gen uint64, value []byte, err error)) error {
	var sent [][]byte
	for tries := 0; tries < maxAttempts; {
		cur, err := it.engine.Read(ctx, name, kind)
		if err != nil {
			return it.engine.Explain("read", err)
		}
		for _, s := range sent {
			if cur.Sealed != nil && bytes.Equal(cur.Sealed, s) {
				return nil // its answer was lost, and it landed
			}
		}
		if cur.Sealed != nil {
			// A value this key does not open is the other instances'
			// (this one has the wrong key): overwritten, they could no
			// longer open it.
			if _, err := it.open(name, kind, cur); err != nil {
				return fmt.Errorf("not written over what is stored: %w", err)
			}
		}
		stored := cur.Generation
		if cur.Sealed == nil {
			stored = 0
		}
		if err := check(stored); err != nil {
			return err
		}
		gen, value, err := next(cur.Version + 1)
		if err != nil {
			return err
		}
		sealed, err := it.sealer.Seal(value, aad(name, kind, cur.Version+1, gen))
		if err != nil {
			return err
		}
		ok, err := it.engine.Write(ctx, name, kind, cur, Row{Exists: true, Version: cur.Version + 1, Generation: gen, Sealed: sealed})
		switch {
		case err != nil && it.engine.Transient(err) && ctx.Err() == nil:
			sent = append(sent, sealed)
			wait(ctx, pause)
			continue
		case err != nil:
			return it.engine.Explain("write", err)
		case ok:
			return nil
		}
		// Another write landed between the read and the write: read
		// again, and compare the generation with what it wrote.
		tries++
	}
	return fmt.Errorf("the item kept changing under this write (writers without the connection's lock?); nothing was written")
}

// remove turns name's kind into a tombstone: the version moves on, the
// generation stays, the sealed value goes. Removing nothing (or a
// tombstone, which a removal whose answer was lost left) is no error.
func (it *Items) remove(ctx context.Context, name, kind string) error {
	ctx, cancel := context.WithTimeout(ctx, it.timeout)
	defer cancel()
	for tries := 0; tries < maxAttempts; {
		cur, err := it.engine.Read(ctx, name, kind)
		if err != nil {
			return it.engine.Explain("read", err)
		}
		if !cur.Exists || cur.Sealed == nil {
			return nil
		}
		ok, err := it.engine.Write(ctx, name, kind, cur, Row{Exists: true, Version: cur.Version + 1, Generation: cur.Generation})
		switch {
		case err != nil && it.engine.Transient(err) && ctx.Err() == nil:
			wait(ctx, pause)
			continue
		case err != nil:
			return it.engine.Explain("write", err)
		case ok:
			return nil
		}
		tries++
	}
	return fmt.Errorf("the item kept changing under this deletion; nothing was deleted")
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// LoadTokens reads name's token set.
func (it *Items) LoadTokens(ctx context.Context, name string) (*auth.TokenSet, error) {
	ctx, cancel := context.WithTimeout(ctx, it.timeout)
	defer cancel()
	r, err := it.engine.Read(ctx, name, KindTokens)
	if err != nil {
		return nil, fmt.Errorf("read tokens of %s: %w", name, it.engine.Explain("read", err))
	}
	if r.Sealed == nil {
		return nil, fmt.Errorf("tokens of %s: %w", name, auth.ErrNotStored)
	}
	b, err := it.open(name, KindTokens, r)
	if err != nil {
		return nil, err
	}
	t, err := auth.UnmarshalTokenSet(b)
	if err != nil {
		return nil, fmt.Errorf("read tokens of %s from %s: %w", name, it.where, err)
	}
	t.Version = uint64(r.Version)
	return t, nil
}

// SaveTokens writes name's token set if the stored one is of generation
// prev (auth.Store), compared and written by the engine at once.
func (it *Items) SaveTokens(ctx context.Context, name string, t *auth.TokenSet, prev uint64) error {
	ctx, cancel := context.WithTimeout(ctx, it.timeout)
	defer cancel()
	err := it.put(ctx, name, KindTokens, func(stored uint64) error {
		var cur *auth.TokenSet
		if stored != 0 {
			cur = &auth.TokenSet{Generation: stored}
		}
		return auth.CompareGeneration(cur, prev)
	}, func(version int64) (uint64, []byte, error) {
		next := *t
		next.Version = uint64(version)
		b, err := auth.MarshalTokenSet(&next)
		return auth.StoredGeneration(&next), b, err
	})
	if errors.Is(err, auth.ErrGenerationMoved) {
		// Sent again after its answer was lost? Then it is in place.
		if stored, lerr := it.LoadTokens(ctx, name); lerr == nil && auth.InPlace(stored, t, prev) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("save tokens of %s: %w", name, err)
	}
	return nil
}

// DeleteTokens forgets name's token set, leaving a tombstone whose version
// moved on.
func (it *Items) DeleteTokens(ctx context.Context, name string) error {
	if err := it.remove(ctx, name, KindTokens); err != nil {
		return fmt.Errorf("delete tokens of %s: %w", name, err)
	}
	return nil
}

// ClientSecret reads name's client secret.
func (it *Items) ClientSecret(ctx context.Context, name string) (auth.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, it.timeout)
	defer cancel()
	r, err := it.engine.Read(ctx, name, KindSecret)
	if err != nil {
		return "", fmt.Errorf("read client secret of %s: %w", name, it.engine.Explain("read", err))
	}
	if r.Sealed == nil {
		return "", fmt.Errorf("client secret of %s: %w", name, auth.ErrNotStored)
	}
	b, err := it.open(name, KindSecret, r)
	if err != nil {
		return "", err
	}
	return auth.Secret(b), nil
}

// SetClientSecret writes name's client secret, replacing any.
func (it *Items) SetClientSecret(ctx context.Context, name string, secret auth.Secret) error {
	ctx, cancel := context.WithTimeout(ctx, it.timeout)
	defer cancel()
	err := it.put(ctx, name, KindSecret, func(uint64) error { return nil }, func(int64) (uint64, []byte, error) {
		return 0, []byte(secret.Reveal()), nil
	})
	if err != nil {
		return fmt.Errorf("save client secret of %s: %w", name, err)
	}
	return nil
}

// DeleteClientSecret forgets name's client secret.
func (it *Items) DeleteClientSecret(ctx context.Context, name string) error {
	if err := it.remove(ctx, name, KindSecret); err != nil {
		return fmt.Errorf("delete client secret of %s: %w", name, err)
	}
	return nil
}
