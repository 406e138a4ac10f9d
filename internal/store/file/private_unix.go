//go:build unix

package file

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// private refuses path (described by info) unless it is this user's and no
// one else may read, write or enter it. fix is the command that makes it so.
func private(path string, info fs.FileInfo, fix string) error {
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this user (uid %d): %w; tokentray uses only its own files", path, st.Uid, os.Geteuid(), ErrUnsafe)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o, so other users may read or change it: %w; run %s (tokentray does not loosen or guess)", path, perm, ErrUnsafe, fix)
	}
	return nil
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
