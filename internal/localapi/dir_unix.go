//go:build unix

package localapi

import "os"

// restrictSocket makes the socket 0600.
func restrictSocket(path string) error { return os.Chmod(path, 0o600) }

// restrictDir: socket.PrivateDir has made the directory the user's, 0700.
func restrictDir(string) error { return nil }
