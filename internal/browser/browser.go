// Package browser opens a URL in the person's default browser, the system
// browser that RFC 8252 asks for, never an embedded web view.
package browser

import (
	"fmt"
	"os/exec"
	"runtime"

	"github.com/tokentray/tokentray/auth"
)

// Open starts the platform's URL opener and does not wait for the browser.
// The opener's output is discarded so that it never mixes with tokentray's.
// Only a web page is opened (auth.CheckBrowserURL): every URL tokentray
// opens passes here, and some come from servers and providers.
func Open(url string) error {
	if err := auth.CheckBrowserURL(url); err != nil {
		return err
	}
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("open the browser with %s: %w", cmd.Path, err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
