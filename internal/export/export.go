// Package export writes a connection's access token to a JSON file for
// tools that can only read files (the customer's procore_token.json
// readers). It is opt-in (export_file), never holds the refresh token, and
// is replaced atomically with mode 0600, so a reader never sees half a file.
package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// File is the exported JSON: the fields of a token response that a reader
// needs, plus where to use it. No refresh token.
type File struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresIn   int64     `json:"expires_in"`
	CreatedAt   int64     `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	APIBase     string    `json:"api_base,omitempty"`
}

// ExpandPath resolves a leading ~/ to the home directory.
func ExpandPath(p string) (string, error) {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, rest), nil
	}
	return p, nil
}

// Write replaces the file at path with t's access token; a nil t removes it
// (after a sign-out the token is revoked).
func Write(path string, t *auth.TokenSet, apiBase string) error {
	path, err := ExpandPath(path)
	if err != nil {
		return err
	}
	if t == nil || t.AccessToken == "" || t.Bound() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove export file %s: %w", path, err)
		}
		if t != nil && t.Bound() {
			// The server bound the token to the connection's key
			// although dpop is not set: a file of it would not work.
			return fmt.Errorf("not exported to %s: %w", path, auth.ErrBoundToken)
		}
		return nil
	}
	body, err := json.MarshalIndent(File{
		AccessToken: t.AccessToken.Reveal(), TokenType: t.TokenType, ExpiresIn: int64(t.Lifetime / time.Second),
		CreatedAt: t.ObtainedAt.Unix(), ExpiresAt: t.Expiry().UTC(), APIBase: apiBase,
	}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("export file %s: %w (does the directory exist?)", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(body, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("export file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("export file %s: %w", path, err)
	}
	return nil
}
