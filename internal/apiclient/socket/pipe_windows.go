package socket

import (
	"errors"
	"hash/fnv"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// On Windows the local API listens on a named pipe, the platform's way for
// a per-user service, and also on the AF_UNIX socket where Windows has
// AF_UNIX (curl --unix-socket works there). Clients try the pipe first.
// The pipe's security descriptor lets only the user in, its first
// instance is created exclusively (nobody can add a server of their own
// to it) and it refuses remote clients (internal/localapi). A client also
// checks, before it sends anything, that the process serving the pipe is
// the user's own: another user may have taken the name while tokentray
// was not running.

// PipeName is the named pipe of the local API whose socket path is path:
// \\.\pipe\tokentray-<the user's SID> for Windows' own path (Path
// without XDG_RUNTIME_DIR), and for another one (a test's, a second
// service's) the same with a hash of the path after it.
func PipeName(path string) (string, error) {
	sid, err := userSID()
	if err != nil {
		return "", &wrapError{"who am I (the pipe's name holds your user's SID)", err}
	}
	name := `\\.\pipe\tokentray-` + sid
	if !strings.EqualFold(filepath.Clean(path), filepath.Clean(pathIn(""))) {
		h := fnv.New64a()
		_, _ = h.Write([]byte(strings.ToLower(filepath.Clean(path))))
		name += "-" + strconv.FormatUint(h.Sum64(), 16)
	}
	return name, nil
}

// userSID is this process's user, as a string SID.
func userSID() (string, error) {
	t, err := syscall.OpenCurrentProcessToken()
	if err != nil {
		return "", err
	}
	defer t.Close()
	return tokenSID(t)
}

func tokenSID(t syscall.Token) (string, error) {
	u, err := t.GetTokenUser()
	if err != nil {
		return "", err
	}
	return u.User.Sid.String()
}

var (
	kernel32                        = syscall.NewLazyDLL("kernel32.dll")
	procGetNamedPipeServerProcessId = kernel32.NewProc("GetNamedPipeServerProcessId")
)

// Windows error numbers that package syscall does not name.
const (
	errorPipeBusy         = syscall.Errno(231)
	errorPipeNotConnected = syscall.Errno(233)
	// processQueryLimitedInformation is PROCESS_QUERY_LIMITED_INFORMATION.
	processQueryLimitedInformation = 0x1000
	// securityAnonymous is SECURITY_SQOS_PRESENT|SECURITY_ANONYMOUS: the
	// server may not act as the client (as go-winio's dial asks too).
	securityAnonymous = 0x00100000
)

// Dial opens the local API's pipe for path (PipeName) with a plain
// blocking handle, for a process that makes one request and exits (see
// dial_unix.go): CreateFile, ReadFile, WriteFile, and nothing of Go's
// network poller. timeout bounds the wait for a free instance of the pipe.
// It talks only to a pipe served by a process of the user's own
// (CheckPipeServer), and sends nothing before it knows.
func Dial(path string, timeout time.Duration) (io.ReadWriteCloser, error) {
	name, err := PipeName(path)
	if err != nil {
		return nil, err
	}
	p, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		h, err := syscall.CreateFile(p, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil, syscall.OPEN_EXISTING, securityAnonymous, 0)
		if err == nil {
			if err := CheckPipeServer(name, h); err != nil {
				syscall.CloseHandle(h)
				return nil, err
			}
			return pipeConn(h), nil
		}
		// Every instance is busy for the moment between a connection
		// and the server's next instance: wait for one.
		if !errors.Is(err, errorPipeBusy) || time.Now().After(deadline) {
			return nil, &wrapError{name, err}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// CheckPipeServer refuses a pipe that a process of another user serves.
// name is the pipe's, for the error.
func CheckPipeServer(name string, h syscall.Handle) error {
	var pid uint32
	if r, _, err := procGetNamedPipeServerProcessId.Call(uintptr(h), uintptr(unsafe.Pointer(&pid))); r == 0 {
		return &UnsafeError{Path: name, Why: "cannot tell whose it is (" + err.Error() + ")"}
	}
	mine, err := userSID()
	if err != nil {
		return &wrapError{"who am I", err}
	}
	theirs, err := processSID(pid)
	if err != nil {
		return &UnsafeError{Path: name, Why: "is served by process " + strconv.FormatUint(uint64(pid), 10) + ", which you may not query: another user's"}
	}
	if theirs != mine {
		return &UnsafeError{Path: name, Why: "is served by a process of another user (" + theirs + ")"}
	}
	return nil
}

// processSID is the user of process pid.
func processSID(pid uint32) (string, error) {
	p, err := syscall.OpenProcess(processQueryLimitedInformation, false, pid)
	if err != nil {
		return "", err
	}
	defer syscall.CloseHandle(p)
	var t syscall.Token
	if err := syscall.OpenProcessToken(p, syscall.TOKEN_QUERY, &t); err != nil {
		return "", err
	}
	defer t.Close()
	return tokenSID(t)
}

// pipeConn is a blocking handle to the pipe.
type pipeConn syscall.Handle

func (c pipeConn) Read(p []byte) (int, error) {
	var n uint32
	err := syscall.ReadFile(syscall.Handle(c), p, &n, nil)
	switch {
	case errors.Is(err, syscall.ERROR_BROKEN_PIPE), errors.Is(err, errorPipeNotConnected):
		return 0, io.EOF // the server closed its end
	case err != nil:
		return 0, err
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return int(n), nil
}

func (c pipeConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		var n uint32
		if err := syscall.WriteFile(syscall.Handle(c), p[written:], &n, nil); err != nil {
			return written, err
		}
		written += int(n)
	}
	return written, nil
}

func (c pipeConn) Close() error { return syscall.CloseHandle(syscall.Handle(c)) }
