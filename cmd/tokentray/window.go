package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/windowreq"
	"github.com/tokentray/tokentray/ui"
)

// newWindowCmd is the window process: the dashboard and the editors, a
// client of the running tokentray's local API. The resident process starts
// it when a person asks for a window, and passes later requests on its
// standard input; it ends when its last window closes or the resident
// process stops.
func newWindowCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "window [dashboard | add | edit NAME | copy NAME | sign-out NAME]",
		Short:  "Show a window of the running tokentray (started by it)",
		Hidden: true,
		RunE: func(c *cobra.Command, args []string) error {
			req, err := windowreq.Parse(args)
			if err != nil {
				return usageError{err}
			}
			return runWindows(c.Context(), req)
		},
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
	w := ui.NewWindows(a, api, ui.Options{Editable: err == nil})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
