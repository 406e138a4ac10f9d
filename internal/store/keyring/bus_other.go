//go:build !(linux || freebsd || openbsd || netbsd || dragonfly)

package keyring

// The other platforms' keyrings hold no connection that can go stale.
func brokenBus(error) bool { return false }

func dropSharedBus() {}

// The other platforms' keyrings need no session bus and start no daemon.
func checkSecretService() error { return nil }
