//go:build unix

package socket

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// defaultDir is where the socket lives without XDG_RUNTIME_DIR: the
// runtime directory systemd-logind makes for the user, /run/user/UID, when
// it exists (a shell where the variable is unset, su, cron, on a server
// whose service has it set), else a directory of this user's in the
// temporary directory (made 0700 by the server).
func defaultDir() string {
	uid := os.Getuid()
	run := filepath.Join("/run/user", strconv.Itoa(uid))
	if info, err := os.Stat(run); err == nil && info.IsDir() {
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
			return filepath.Join(run, "tokentray")
		}
	}
	return filepath.Join(os.TempDir(), "tokentray-"+strconv.Itoa(uid))
}
