//go:build unix

package localapi

import (
	"fmt"
	"os"
	"syscall"
)

// restrictSocket makes the socket 0600.
func restrictSocket(path string) error { return os.Chmod(path, 0o600) }

// checkPrivateDir refuses a directory that another user owns or that others
// can enter: someone else could then replace the socket.
func checkPrivateDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s belongs to uid %d, not to you (uid %d): remove it or set XDG_RUNTIME_DIR", dir, st.Uid, os.Getuid())
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s is open to other users and cannot be restricted: %w", dir, err)
		}
	}
	return nil
}
