//go:build !linux

package socket

// startEnv: see startenv_linux.go; elsewhere Path asks os.Getenv.
func startEnv(string) (string, bool) { return "", false }
