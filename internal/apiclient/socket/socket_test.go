package socket

import (
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
)

func TestWhatNotRunningLooksLikeOnThisSystem(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", errno)}
	}
	notRunning := []syscall.Errno{syscall.ENOENT, syscall.ECONNREFUSED}
	realErrors := []syscall.Errno{syscall.EACCES}
	if runtime.GOOS == "windows" {
		// What Windows itself returns: ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, WSAECONNREFUSED; ERROR_ACCESS_DENIED.
		notRunning = []syscall.Errno{2, 3, 10061}
		realErrors = []syscall.Errno{5}
	}
	for _, errno := range notRunning {
		if !IsNotRunning(dial(errno)) {
			t.Errorf("%v (errno %d) is not taken for nothing running", errno, uintptr(errno))
		}
	}
	for _, errno := range realErrors {
		if IsNotRunning(dial(errno)) {
			t.Errorf("%v (errno %d) is taken for nothing running; it must be seen", errno, uintptr(errno))
		}
	}
}
