package socket

import (
	"os"
	"path/filepath"
)

// defaultDir is %LOCALAPPDATA%\tokentray: under the user's profile, on the
// local disk, never roamed.
func defaultDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "tokentray")
	}
	return filepath.Join(os.TempDir(), "tokentray")
}
