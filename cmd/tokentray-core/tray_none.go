//go:build darwin && !cgo

package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"
)

// errNoTray: the menu-bar icon and the windows need cgo and Apple's SDK,
// which a macOS build made elsewhere (CI's, on Linux) does not have.
var errNoTray = errors.New("this tokentray was built without the menu-bar icon (it needs cgo and Apple's SDK): `tokentray serve` keeps your connections and serves their tokens, and `tokentray demo --terminal` shows the demo")

func trayRun(*cobra.Command, envGetter) error { return errNoTray }

func demoTray(context.Context, streams, func(string) error, demoOptions) error { return errNoTray }
