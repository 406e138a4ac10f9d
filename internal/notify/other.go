//go:build !(linux || freebsd || openbsd || netbsd || windows)

package notify

import "log/slog"

// New returns beeep's notifier: actions are offered in the tray menu.
func New(appName string, log *slog.Logger) Notifier { return Beeep{} }
