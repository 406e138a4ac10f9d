//go:build failpoints && unix

package failpoint

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

// Pause stops this process (SIGSTOP) at the point named, once the test has
// armed it: TOKENTRAY_FAILPOINTS names a directory, and a file of the
// point's name in it arms the point for one stop. Of the processes that
// share the directory (the instances of one test), the first to reach the
// point removes the file and stops; the test finds it stopped and wakes it
// with SIGCONT, or kills it.
//
// The caller goes on only once the process was continued: a SIGSTOP sent
// to one's own process stops the other threads at once, but the calling
// one may run on for a moment (the signal is the process's, and another
// thread may be the one to take it), long enough to send the request it
// was stopped before.
func Pause(name string) {
	dir := os.Getenv("TOKENTRAY_FAILPOINTS")
	if dir == "" || os.Remove(filepath.Join(dir, name)) != nil {
		return
	}
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	fmt.Fprintf(os.Stderr, "failpoint %s: this process stops itself (SIGSTOP) until it is continued\n", name)
	_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	<-cont
}
