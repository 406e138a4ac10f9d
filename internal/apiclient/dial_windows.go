package apiclient

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"syscall"

	"github.com/Microsoft/go-winio"

	"github.com/tokentray/tokentray/internal/apiclient/socket"
)

// dial connects to the local API on its named pipe (socket.PipeName), once
// a process of the user's own is known to serve it. Without the pipe it
// tries the AF_UNIX socket (a tokentray that listens there alone); when
// that fails too, the pipe's error is the one that counts.
func dial(ctx context.Context, path string) (net.Conn, error) {
	name, err := socket.PipeName(path)
	if err != nil {
		return nil, err
	}
	c, err := winio.DialPipeContext(ctx, name)
	if err == nil {
		f, ok := c.(interface{ Fd() uintptr })
		if !ok {
			c.Close()
			return nil, &socket.UnsafeError{Path: name, Why: "cannot be checked"}
		}
		if err := socket.CheckPipeServer(name, syscall.Handle(f.Fd())); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if c, uerr := dialSocket(ctx, path); uerr == nil {
		return c, nil
	}
	return nil, err
}
