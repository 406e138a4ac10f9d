//go:build !windows

package apiclient

import (
	"context"
	"net"
)

func dial(ctx context.Context, path string) (net.Conn, error) { return dialSocket(ctx, path) }
