package remote

import (
	"fmt"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/safetext"
)

// What a server's tokentray sends is text from another machine, shown here
// on a terminal, in the event log and in notifications: it is checked and
// cleaned as it arrives, in the functions below, so that nothing after
// them has to.

// admit checks the connection name of an event from the server and cleans
// every string in it.
func (r Remote) admit(e *apitype.Event) error {
	if e.Connection != "" || e.Type == apitype.EventStatus || e.Type == apitype.EventRemoved {
		if err := r.checkName(e.Connection); err != nil {
			return err
		}
	}
	safetext.CleanAll(e)
	return nil
}

// admitConnections checks the names of the server's connections and cleans
// every string in them.
func (r Remote) admitConnections(conns []apitype.Connection) error {
	for _, c := range conns {
		if err := r.checkName(c.Name); err != nil {
			return err
		}
	}
	safetext.CleanAll(conns)
	return nil
}

// checkName refuses a name that no connection here could have. The raw
// name is judged, not its cleaned form: "ci\x1b[2J" must not pass as "ci".
// Shown under NAME@REMOTE, an '@' or a '*' in it could pass for a row of
// another server, or for the one that says a server cannot be reached.
func (r Remote) checkName(name string) error {
	if config.ValidName(name) {
		return nil
	}
	return fmt.Errorf("%s: the tokentray there sent a connection name that is not allowed, %q (names are letters, digits, '.', '_' and '-'), so none of its connections are shown",
		r.Name, truncate(safetext.Clean(name), 64))
}
