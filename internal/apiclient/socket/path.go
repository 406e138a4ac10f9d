package socket

import (
	"os"
	"path/filepath"
)

// Path is $XDG_RUNTIME_DIR/tokentray/api.sock. Without the variable it is
// the same file in /run/user/UID when that exists (so that a shell without
// the variable finds the service's socket), and otherwise api.sock in a
// private per-user directory: under the temp dir on Unix,
// %LOCALAPPDATA%\tokentray on Windows (AF_UNIX, which Windows 10 and later
// have, so curl --unix-socket works there too).
func Path() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "tokentray", "api.sock")
	}
	return filepath.Join(defaultDir(), "api.sock")
}
