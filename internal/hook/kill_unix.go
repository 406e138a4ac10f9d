//go:build unix

package hook

import (
	"os/exec"
	"syscall"
)

// killGroup makes the hook its own process group and kills the whole group
// on timeout, so that a `curl` or `sleep` under the shell dies with it.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
