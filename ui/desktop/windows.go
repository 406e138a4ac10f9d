package desktop

import (
	"io"
	"log/slog"
	"os/exec"
	"sync"

	"github.com/tokentray/tokentray/internal/windowreq"
)

// Windows is the window process, started when a person asks for a window
// and ended by it when its last window closes. A request while it runs
// goes to it on its standard input (it raises the window); a window process
// that crashed or was killed is simply started again: nothing of the
// resident process lives in it.
type Windows struct {
	// Command builds the window process for its first request.
	Command func(r windowreq.Request) (*exec.Cmd, error)
	Log     *slog.Logger
	// Problem tells a person that no window could be shown, and why.
	Problem func(text string)

	mu    sync.Mutex
	stdin io.WriteCloser // of the running window process; nil when none runs
}

// Show asks the window process for r, starting it if none runs.
func (w *Windows) Show(r windowreq.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stdin != nil {
		if _, err := io.WriteString(w.stdin, r.Line()); err == nil {
			return
		}
		w.stdin.Close() // it is exiting: start a new one
		w.stdin = nil
	}
	cmd, err := w.Command(r)
	var stdin io.WriteCloser
	if err == nil {
		stdin, err = cmd.StdinPipe()
	}
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		w.Log.Error("the window process did not start", "err", err)
		if w.Problem != nil {
			w.Problem("no window can be shown: " + err.Error())
		}
		return
	}
	w.stdin = stdin
	go func() {
		err := cmd.Wait()
		w.mu.Lock()
		if w.stdin == stdin {
			w.stdin = nil
		}
		w.mu.Unlock()
		if err != nil {
			w.Log.Warn("the window process ended", "err", err)
		}
	}()
}

// Close ends the window process's input: it closes its windows and exits.
func (w *Windows) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stdin != nil {
		w.stdin.Close()
		w.stdin = nil
	}
}
