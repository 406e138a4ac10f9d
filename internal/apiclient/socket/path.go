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
func Path() string { return pathIn(os.Getenv("XDG_RUNTIME_DIR")) }

// StartPath is Path for a process that has not changed its environment,
// as cheaply as it can be had: `tokentray token NAME` (cmd/tokentray)
// starts for one request. Go's first look at the environment copies all
// of it into a map, which costs such a process page faults that show in
// its time (on Linux, StartPath reads the one variable from
// /proc/self/environ instead; elsewhere it is Path).
func StartPath() string {
	if dir, ok := startEnv("XDG_RUNTIME_DIR"); ok {
		return pathIn(dir)
	}
	return Path()
}

// pathIn is Path with dir for $XDG_RUNTIME_DIR.
func pathIn(dir string) string {
	if dir != "" {
		return filepath.Join(dir, "tokentray", "api.sock")
	}
	return filepath.Join(defaultDir(), "api.sock")
}
