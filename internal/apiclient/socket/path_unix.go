//go:build unix

package socket

import (
	"os"
	"path/filepath"
	"strconv"
)

// defaultDir is where the socket lives without XDG_RUNTIME_DIR: a directory
// of this user's in the temporary directory (made 0700 by the server).
func defaultDir() string {
	return filepath.Join(os.TempDir(), "tokentray-"+strconv.Itoa(os.Getuid()))
}
