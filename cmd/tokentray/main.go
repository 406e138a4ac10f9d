// Command tokentray keeps OAuth 2.0 connections alive and hands fresh access
// tokens to people, scripts and agents. See the README for the contracts.
//
// This program is small on purpose: scripts run `tokentray token NAME` in
// loops, and Go initialises every package a program links before main
// runs, which for the whole CLI (the keyring, D-Bus, OAuth, the tray) costs
// more than the request itself. So this one answers that command line from
// the running tokentray (internal/tokennow) and gives every other one, and
// that one when nothing runs, to tokentray-core in its place: the same
// process, the same arguments and streams, so exit codes and signals are
// the core's own.
package main

import (
	"os"

	"github.com/tokentray/tokentray/internal/apiclient/socket"
	"github.com/tokentray/tokentray/internal/sibling"
	"github.com/tokentray/tokentray/internal/tokennow"
)

func main() {
	if code, done := tokennow.Run(os.Args[1:], os.Stdout, os.Stderr, socket.StartPath()); done {
		os.Exit(code)
	}
	core, err := sibling.Find("tokentray-core", "everything but `tokentray token NAME`")
	if err != nil {
		tokennow.PrintError(os.Stderr, err.Error(), "")
		os.Exit(1)
	}
	err = become(core, os.Args)
	tokennow.PrintError(os.Stderr, "start "+core+": "+err.Error(), "")
	os.Exit(1)
}
