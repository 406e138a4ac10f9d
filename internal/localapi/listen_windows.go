package localapi

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sync"
	"time"
	"unsafe"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"

	"github.com/tokentray/tokentray/internal/apiclient/socket"
)

// Listen listens for the local API on the named pipe of path
// (socket.PipeName), Windows' way for a per-user service, and also on the
// AF_UNIX socket at path where Windows has AF_UNIX (curl --unix-socket
// works there). Clients try the pipe first.
//
// The pipe lets only the user in (PipeSDDL); its first instance is
// created with FILE_FLAG_FIRST_PIPE_INSTANCE (a name that exists is
// refused, so nobody can add a server instance to tokentray's pipe, nor
// tokentray to another's) and every instance with
// PIPE_REJECT_REMOTE_CLIENTS.
func Listen(path string) (net.Listener, error) {
	name, err := socket.PipeName(path)
	if err != nil {
		return nil, err
	}
	// A pipe of that name that answers, or is busy, is another server's;
	// one that refuses us is another user's. (FILE_FLAG_FIRST_PIPE_INSTANCE
	// refuses them too, on Windows; Wine does not.)
	wait := time.Second
	switch c, err := winio.DialPipe(name, &wait); {
	case err == nil:
		c.Close()
		return nil, fmt.Errorf("%w on %s", errAnotherListens, name)
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, windows.ERROR_ACCESS_DENIED):
		return nil, fmt.Errorf("%s, which is named for you, exists and refuses you: a program of another user holds it, posing as tokentray; have it stopped (or sign that user out), then start tokentray again", name)
	default:
		return nil, fmt.Errorf("%w on %s (%v)", errAnotherListens, name, err)
	}
	pipe, err := listenPipe(name)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (if tokentray is not running, another program holds that name)", name, err)
	}
	unix, err := listenSocket(path)
	if errors.Is(err, errAnotherListens) {
		pipe.Close()
		return nil, err
	}
	l := &pipeAndSocket{ls: []net.Listener{pipe}, socketErr: err, conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	if err == nil {
		l.ls = append(l.ls, unix)
	}
	for _, one := range l.ls {
		go l.accept(one)
	}
	return l, nil
}

// SocketError is why the local API is not served on its AF_UNIX socket
// beside its named pipe (Windows without AF_UNIX: before 10 1803, Wine),
// or nil.
func SocketError(l net.Listener) error {
	if p, ok := l.(*pipeAndSocket); ok {
		return p.socketErr
	}
	return nil
}

// PipeSDDL is the pipe's security descriptor: owned by the user, with a
// protected DACL (nothing inherited) that allows the user alone. No other
// user, not an administrator, not SYSTEM, not the anonymous logon, may
// open it.
func PipeSDDL() (string, error) {
	me, err := currentUserSID()
	if err != nil {
		return "", fmt.Errorf("who am I: %w", err)
	}
	return "O:" + me.String() + "D:P(A;;GA;;;" + me.String() + ")", nil
}

// pipeAndSocket accepts the connections of both listeners, the pipe first
// in ls.
type pipeAndSocket struct {
	ls        []net.Listener
	socketErr error
	conns     chan net.Conn
	errs      chan error
	done      chan struct{}
	once      sync.Once
}

func (l *pipeAndSocket) accept(one net.Listener) {
	for {
		c, err := one.Accept()
		if err != nil {
			// The pipe's listener fails only when it cannot make an
			// instance; either failure ends the serving, as a socket's does.
			select {
			case l.errs <- err:
			case <-l.done:
			}
			return
		}
		select {
		case l.conns <- c:
		case <-l.done:
			c.Close()
			return
		}
	}
}

func (l *pipeAndSocket) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeAndSocket) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		for _, one := range l.ls {
			err = errors.Join(err, one.Close())
		}
	})
	return err
}

// Addr is the pipe's.
func (l *pipeAndSocket) Addr() net.Addr { return l.ls[0].Addr() }

// pipeListener serves a named pipe the way Win32 servers do: an instance
// waits for a client (ConnectNamedPipe), and the next instance is created
// before a connected one is handed out, so that a client always finds one
// (between the two, a client that finds every instance busy waits, as
// socket.Dial and go-winio's dial do). go-winio's own listener is not used:
// it keeps a first instance without read or write access, which real
// Windows holds closed to clients but Wine connects a client to, and that
// client then waits forever. A connected instance is handed to go-winio
// (NewOpenFile), whose reads and writes have deadlines, as http.Server
// needs.
type pipeListener struct {
	name   string
	sa     *windows.SecurityAttributes
	event  windows.Handle // signalled when the waiting instance connects
	accept sync.Mutex     // one Accept at a time

	mu        sync.Mutex
	next      windows.Handle // the instance waiting for a client
	accepting bool
	closed    bool
}

func listenPipe(name string) (*pipeListener, error) {
	sddl, err := PipeSDDL()
	if err != nil {
		return nil, err
	}
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return nil, err
	}
	l := &pipeListener{name: name, sa: &windows.SecurityAttributes{SecurityDescriptor: sd}}
	l.sa.Length = uint32(unsafe.Sizeof(*l.sa))
	if l.next, err = l.instance(true); err != nil {
		return nil, err
	}
	if l.event, err = windows.CreateEvent(nil, 1, 0, nil); err != nil {
		windows.CloseHandle(l.next)
		return nil, err
	}
	return l, nil
}

// instance creates an instance of the pipe, the first one exclusively.
func (l *pipeListener) instance(first bool) (windows.Handle, error) {
	name, err := windows.UTF16PtrFromString(l.name)
	if err != nil {
		return 0, err
	}
	flags := uint32(windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED)
	if first {
		flags |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	const rejectRemoteClients = 0x8 // PIPE_REJECT_REMOTE_CLIENTS
	return windows.CreateNamedPipe(name, flags, windows.PIPE_TYPE_BYTE|windows.PIPE_READMODE_BYTE|windows.PIPE_WAIT|rejectRemoteClients,
		windows.PIPE_UNLIMITED_INSTANCES, 64<<10, 64<<10, 0, l.sa)
}

func (l *pipeListener) Accept() (net.Conn, error) {
	l.accept.Lock()
	defer l.accept.Unlock()
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		h := l.next
		l.accepting = true
		l.mu.Unlock()

		err := l.connect(h)

		l.mu.Lock()
		l.accepting = false
		if l.closed {
			windows.CloseHandle(h)
			windows.CloseHandle(l.event)
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		if errors.Is(err, windows.ERROR_NO_DATA) {
			// The client came and went: the instance waits again.
			_ = windows.DisconnectNamedPipe(h)
			l.mu.Unlock()
			continue
		}
		if err != nil {
			// This instance failed (http.Server would stop serving on an
			// error from Accept): a new one waits in its place, made
			// before this one is closed, so that the pipe never ceases to
			// exist (another process could then create it).
			next, nerr := l.instance(false)
			windows.CloseHandle(h)
			if nerr != nil {
				l.closed = true
				windows.CloseHandle(l.event)
				l.mu.Unlock()
				return nil, fmt.Errorf("wait for a client on %s: %w; and a new instance of it: %w", l.name, err, nerr)
			}
			l.next = next
			l.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		next, err := l.instance(false)
		if err != nil {
			l.mu.Unlock()
			windows.CloseHandle(h)
			return nil, fmt.Errorf("create the next instance of %s: %w", l.name, err)
		}
		l.next = next
		l.mu.Unlock()
		f, err := winio.NewOpenFile(h)
		if err != nil {
			windows.CloseHandle(h)
			return nil, err
		}
		return &pipeConn{ReadWriteCloser: f, h: h, addr: pipeAddr(l.name)}, nil
	}
}

// connect waits until a client connects to instance h, or Close.
func (l *pipeListener) connect(h windows.Handle) error {
	o := windows.Overlapped{HEvent: l.event}
	err := windows.ConnectNamedPipe(h, &o)
	switch {
	case err == nil, errors.Is(err, windows.ERROR_PIPE_CONNECTED):
		return nil
	case !errors.Is(err, windows.ERROR_IO_PENDING):
		return err
	}
	// A Close before the wait was issued had nothing to cancel yet.
	l.mu.Lock()
	if l.closed {
		_ = windows.CancelIoEx(h, &o)
	}
	l.mu.Unlock()
	// Wine, on a busy machine, has connected a client to a waiting
	// instance without ending the wait (seen in this package's tests):
	// there, the instance itself is asked every 250 ms whether a client
	// came, and is handed out then (reads give what the client wrote, or
	// the end). Windows ends the wait, and an idle tokentray does not wake.
	poll := uint32(windows.INFINITE)
	if underWine {
		poll = 250
	}
	for {
		ev, err := windows.WaitForSingleObject(l.event, poll)
		if err != nil {
			return err
		}
		if ev != uint32(windows.WAIT_TIMEOUT) {
			break
		}
		if err := peekNamedPipe(h); !errors.Is(err, windows.ERROR_PIPE_LISTENING) && !errors.Is(err, windows.ERROR_BAD_PIPE) {
			_ = windows.CancelIoEx(h, &o)
			var n uint32
			_ = windows.GetOverlappedResult(h, &o, &n, true)
			return nil
		}
	}
	var n uint32
	return windows.GetOverlappedResult(h, &o, &n, false)
}

var procPeekNamedPipe = windows.NewLazySystemDLL("kernel32.dll").NewProc("PeekNamedPipe")

// underWine: Wine's ntdll has wine_get_version, Windows' does not.
var underWine = windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil

// peekNamedPipe is PeekNamedPipe's error for instance h: while no client
// has connected to it, ERROR_PIPE_LISTENING (Windows) or ERROR_BAD_PIPE
// (Wine); nil once one has, even if it left (what it wrote is there).
func peekNamedPipe(h windows.Handle) error {
	var avail uint32
	if r, _, err := procPeekNamedPipe.Call(uintptr(h), 0, 0, 0, uintptr(unsafe.Pointer(&avail)), 0); r == 0 {
		return err
	}
	return nil
}

func (l *pipeListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.accepting {
		// Accept's wait ends, and Accept closes the instance.
		_ = windows.CancelIoEx(l.next, nil)
	} else {
		windows.CloseHandle(l.next)
		windows.CloseHandle(l.event)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr(l.name) }

type pipeAddr string

func (pipeAddr) Network() string  { return "pipe" }
func (a pipeAddr) String() string { return string(a) }

// pipeConn is a connected instance of the pipe, read and written through
// go-winio (with deadlines).
type pipeConn struct {
	io.ReadWriteCloser
	h    windows.Handle
	addr pipeAddr
}

type deadlines interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

func (c *pipeConn) SetReadDeadline(t time.Time) error {
	return c.ReadWriteCloser.(deadlines).SetReadDeadline(t)
}

func (c *pipeConn) SetWriteDeadline(t time.Time) error {
	return c.ReadWriteCloser.(deadlines).SetWriteDeadline(t)
}

func (c *pipeConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.addr }
func (c *pipeConn) RemoteAddr() net.Addr { return c.addr }

// Fd is the instance's handle, for the peer check (checkPeer).
func (c *pipeConn) Fd() uintptr { return uintptr(c.h) }
