//go:build windows

package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"git.sr.ht/~jackmordaunt/go-toast/wintoast"
)

// toastAppID is the AppUserModelID the toasts are filed under: the
// installer's Start menu shortcut carries it, and its display name.
const toastAppID = "tokentray"

// Toast shows Windows toast notifications written by ToastXML, with the
// message's action as a button that opens its link (beeep, which shows
// them otherwise, draws no buttons). It sends through go-toast's WinRT
// binding, the library beeep uses, or PowerShell where that fails.
type Toast struct {
	log *slog.Logger

	mu         sync.Mutex
	registered bool
	icons      map[string]string // a PNG's file, by its hash
}

// New returns the toast notifier.
func New(appName string, log *slog.Logger) Notifier {
	return &Toast{log: log, icons: map[string]string{}}
}

// Actionable is true: a toast's button opens the message's link.
func (t *Toast) Actionable() bool { return true }

// Send shows m; its action is clickable when it has a link.
func (t *Toast) Send(m Message) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.registered {
		// The name Windows shows above the toast; the installer's
		// IconUri is left as it is.
		if err := wintoast.SetAppData(wintoast.AppData{AppID: toastAppID}); err != nil {
			return false, fmt.Errorf("register the toasts' app id: %w", err)
		}
		t.registered = true
	}
	icon, err := t.iconFile(m.Icon)
	if err != nil {
		t.log.Info("the notification is shown without its icon", "err", err)
	}
	if err := wintoast.Push(ToastXML(m, icon), wintoast.PowershellFallback); err != nil {
		return false, err
	}
	return m.Action != "" && m.Link != "", nil
}

// iconFile is png in a file, as a toast's image must be: in the user's
// cache directory, written once per image.
func (t *Toast) iconFile(png []byte) (string, error) {
	if len(png) == 0 {
		return "", nil
	}
	sum := sha256.Sum256(png)
	key := hex.EncodeToString(sum[:8])
	if f, ok := t.icons[key]; ok {
		return f, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "tokentray")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f := filepath.Join(dir, "toast-"+key+".png")
	if err := os.WriteFile(f, png, 0o600); err != nil {
		return "", err
	}
	t.icons[key] = f
	return f, nil
}

// Close does nothing: a toast stays in the Action Center on its own.
func (t *Toast) Close() error { return nil }
