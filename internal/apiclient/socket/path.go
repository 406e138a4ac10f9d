package socket

import (
	"os"
	"path/filepath"
)

// Path is $XDG_RUNTIME_DIR/tokentray/api.sock, or, where there is no
// runtime directory, api.sock in a private per-user directory: under the
// temp dir on Unix, %LOCALAPPDATA%\tokentray on Windows (AF_UNIX, which
// Windows 10 and later have, so curl --unix-socket works there too).
func Path() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "tokentray", "api.sock")
	}
	return filepath.Join(defaultDir(), "api.sock")
}
