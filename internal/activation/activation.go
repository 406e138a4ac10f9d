// Package activation is the tokentray: link, the way a program outside
// tokentray asks the running one to act for a person: a Windows
// notification's button (Re-authenticate, Edit…) opens
// tokentray://reauth/NAME or tokentray://edit/NAME, Windows starts
// `tokentray "tokentray://…"` for it (the installer registers the scheme),
// and that program hands the request to the running tokentray and exits.
//
// Any web page can open a tokentray: link, so the grammar is strict and
// small: one of two verbs and a configured connection's name, nothing
// else. A link never carries a token, a URL to open or a command, and the
// running tokentray still checks that the connection is one of its own.
package activation

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tokentray/tokentray/internal/config"
)

// Scheme is the links' URL scheme.
const Scheme = "tokentray"

// The verbs.
const (
	// Reauth starts a sign-in of the connection in the browser.
	Reauth = "reauth"
	// Edit opens the connection's editor (a refused client is fixed there).
	Edit = "edit"
)

// maxLen bounds a link: a verb, a name of 64 and a server's of 64.
const maxLen = 256

// Request is what a link asks for.
type Request struct {
	Verb       string
	Connection string // NAME, or NAME@REMOTE for a [[remote]] server's
}

// Link is the link that asks for verb on connection.
func Link(verb, connection string) string { return Scheme + "://" + verb + "/" + connection }

// Is reports whether arg is a tokentray: link (valid or not): a program's
// only argument that is one was started for a link.
func Is(arg string) bool {
	return len(arg) > len(Scheme) && strings.EqualFold(arg[:len(Scheme)+1], Scheme+":")
}

// Parse reads a link: tokentray://VERB/NAME, or tokentray:VERB/NAME (the
// form without the slashes), with at most one slash after the name (some
// launchers add one). Everything else is refused with why.
func Parse(link string) (Request, error) {
	if len(link) > maxLen {
		return Request{}, fmt.Errorf("a link of %d characters; a tokentray: link has at most %d", len(link), maxLen)
	}
	if !Is(link) {
		return Request{}, errors.New("not a tokentray: link")
	}
	rest := strings.TrimPrefix(link[len(Scheme)+1:], "//")
	if strings.ContainsAny(rest, "?#%\\:\x00 \t\r\n") {
		return Request{}, errors.New("a tokentray: link has no query, fragment, escapes, port or spaces: only tokentray://VERB/NAME")
	}
	rest = strings.TrimSuffix(rest, "/")
	verb, name, ok := strings.Cut(rest, "/")
	if !ok {
		return Request{}, errors.New("no connection: a tokentray: link is tokentray://VERB/NAME")
	}
	verb = strings.ToLower(verb) // a host, which some launchers lower-case
	if verb != Reauth && verb != Edit {
		return Request{}, fmt.Errorf("the verb %q is not one of a tokentray: link's (%s, %s)", verb, Reauth, Edit)
	}
	local, server, remote := strings.Cut(name, "@")
	if !config.ValidName(local) || (remote && !config.ValidName(server)) {
		return Request{}, fmt.Errorf("%q is not a connection's name (letters, digits, '.', '_' and '-', or NAME@SERVER)", name)
	}
	return Request{Verb: verb, Connection: name}, nil
}
