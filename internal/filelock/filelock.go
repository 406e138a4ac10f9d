// Package filelock is the per-connection lock that keeps two processes from
// refreshing one connection at once. It locks a separate NAME.lock file (not
// the data), as kubelogin does: locking the data file itself breaks on
// Windows, and the tokens live in the keyring anyway.
package filelock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// Dir is a directory of lock files.
type Dir struct {
	Path string
	// Retry is how often a busy lock is tried again.
	Retry time.Duration
}

// DefaultDir is the lock directory under the user's cache directory.
func DefaultDir() (*Dir, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("find a directory for lock files: %w", err)
	}
	return &Dir{Path: filepath.Join(base, "tokentray", "locks")}, nil
}

// Lock takes the lock of name, waiting until ctx ends.
func (d *Dir) Lock(ctx context.Context, name string) (func(), error) {
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return nil, fmt.Errorf("create lock directory %s: %w", d.Path, err)
	}
	path := filepath.Join(d.Path, safeName(name)+".lock")
	fl := flock.New(path, flock.SetPermissions(0o600))
	retry := d.Retry
	if retry <= 0 {
		retry = 20 * time.Millisecond
	}
	ok, err := fl.TryLockContext(ctx, retry)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
	}
	return func() { _ = fl.Unlock() }, nil
}

// safeName keeps a connection name usable as a file name on every platform.
func safeName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
}
