package socket

// UnsafeError is a socket, or its directory, that tokentray will not talk
// to or through: it is not the user's own. Nothing was sent to it. Where
// the socket lives in a shared directory (the temporary directory, when
// there is no runtime directory), another user could plant a directory, a
// symbolic link or a server of their own there and receive the tokens and
// client secrets meant for tokentray. A client refuses it before it sends
// anything; the server does not listen there.
type UnsafeError struct {
	// Path is the directory or socket refused.
	Path string
	// Why says whose it is, or what it is instead of a private one.
	Why string
}

func (e *UnsafeError) Error() string {
	return e.Path + " " + e.Why + ": another user may be posing as tokentray there, so tokentray does not use it"
}

// Hint says what to do about it.
func (e *UnsafeError) Hint() string {
	return "have it removed (by its owner or root), or set XDG_RUNTIME_DIR to a directory of yours that only you can enter"
}

// wrapError is fmt.Errorf("%s: %w", what, err): this package links no fmt,
// as `tokentray token NAME` runs it (see socket.go).
type wrapError struct {
	what string
	err  error
}

func (e *wrapError) Error() string { return e.what + ": " + e.err.Error() }
func (e *wrapError) Unwrap() error { return e.err }
