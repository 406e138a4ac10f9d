// Command tokentray-window is tokentray's window process: the dashboard and
// the connection editor, a client of the running tokentray's local API and
// of nothing else. The resident process (tokentray) starts it, from beside
// its own executable, when a person asks for a window, and passes later
// requests on its standard input:
//
//	tokentray-window [dashboard | add | edit NAME | copy NAME | sign-out NAME]
//
// It is a binary of its own so that tokentray links no GUI toolkit: the
// resident process and every command a script runs start without libGL and
// X11, and print nothing of a toolkit.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/windowreq"
	"github.com/tokentray/tokentray/ui"
)

// appID identifies tokentray to the desktop (Fyne's preferences); the
// resident process registers the same one.
const appID = "io.tokentray.tokentray"

func main() {
	req, err := windowreq.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "tokentray-window: %v\n", err)
		os.Exit(apitype.ExitUsage)
	}
	if os.Getenv("GOGC") == "" {
		// Most of this process's heap is the toolkit's parsed fonts (≈ 20
		// MiB, alive as long as a window is), and the default GOGC of 100
		// lets the heap grow by as much again before it is collected. A
		// quarter of that is plenty for what a window allocates (its
		// countdown's text, every second): ≈ 10 MiB less resident memory
		// (internal/bench/windows.sh).
		debug.SetGCPercent(25)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runWindows(ctx, req); err != nil {
		fmt.Fprintf(os.Stderr, "tokentray-window: %v\n", err)
		os.Exit(apitype.ExitFailure)
	}
}

func runWindows(ctx context.Context, first windowreq.Request) error {
	api := apiclient.New(apiclient.DefaultPath())
	// The editor is offered where a config file runs: a demo answers 404.
	_, err := api.Config(ctx)
	if errors.Is(err, apiclient.ErrNotRunning) {
		return fmt.Errorf("%w: the windows show the running tokentray; start it with `tokentray`", err)
	}
	a := app.NewWithID(appID)
	a.SetIcon(ui.AppIcon)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := ui.NewWindows(a, api, ui.Options{Editable: err == nil, Context: ctx})
	go func() {
		err := w.Follow(ctx)
		if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "tokentray: the running tokentray went away (%v): closing its windows\n", err)
			fyne.Do(a.Quit)
		}
	}()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if r, err := windowreq.Parse(strings.Fields(sc.Text())); err == nil {
				fyne.Do(func() { w.Show(r) })
			}
		}
	}()
	a.Lifecycle().SetOnStarted(func() {
		go func() {
			// The first window shows what is known: wait for the snapshot.
			select {
			case <-w.Ready():
			case <-time.After(10 * time.Second):
			}
			fyne.Do(func() { w.Show(first) })
		}()
	})
	a.Run()
	return nil
}
