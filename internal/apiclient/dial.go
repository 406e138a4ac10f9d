package apiclient

import (
	"context"
	"net"

	"github.com/tokentray/tokentray/internal/apiclient/socket"
)

// dialSocket connects to the local API's socket at path, once it is known
// to be the user's own (socket.Check, socket.CheckConn).
func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	if err := socket.Check(path); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if err := socket.CheckConn(path, c.(*net.UnixConn)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
