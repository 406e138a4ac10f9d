// Package windowreq is what the resident process asks of the window
// process: which window to show. The first request is the window process's
// command line (`tokentray-window SHOW [NAME]`); later ones are lines on its
// standard input, in the same words.
package windowreq

import (
	"fmt"
	"strings"
)

// What a request shows.
const (
	Dashboard = "dashboard" // the dashboard
	Add       = "add"       // the editor for a new connection
	Edit      = "edit"      // the editor for NAME
	Copy      = "copy"      // copies NAME's access token (from the dashboard)
	SignOut   = "sign-out"  // asks whether to sign NAME out (on the dashboard)
)

// Request is one window to show.
type Request struct {
	Show string
	Name string // the connection, for Edit, Copy and SignOut
}

// Args is the request as words: the command line's, and a line's.
func (r Request) Args() []string {
	if r.Name == "" {
		return []string{r.Show}
	}
	return []string{r.Show, r.Name}
}

// Line is the request as a line of the window process's standard input.
func (r Request) Line() string { return strings.Join(r.Args(), " ") + "\n" }

// Parse reads a request from its words.
func Parse(args []string) (Request, error) {
	if len(args) == 0 {
		return Request{Show: Dashboard}, nil
	}
	r := Request{Show: args[0]}
	switch r.Show {
	case Dashboard, Add:
		if len(args) == 1 {
			return r, nil
		}
	case Edit, Copy, SignOut:
		if len(args) == 2 && args[1] != "" {
			r.Name = args[1]
			return r, nil
		}
	default:
		return Request{}, fmt.Errorf("unknown window %q: dashboard, add, edit NAME, copy NAME or sign-out NAME", r.Show)
	}
	return Request{}, fmt.Errorf("window %s takes %s", r.Show, map[bool]string{true: "a connection name", false: "no name"}[r.Show != Dashboard && r.Show != Add])
}
