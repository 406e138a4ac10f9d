package events

import (
	"fmt"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/humanize"
)

// EventText says what happened in one line for a person, or "" for events not
// worth a line of their own (entering "refreshing", leaving it successfully).
func EventText(e auth.Event) string {
	switch e.Kind {
	case auth.EventState:
		if e.To == auth.StateRefreshing || (e.From == auth.StateRefreshing && e.To == auth.StateConnected) {
			return ""
		}
		// The error comes with its own refresh_failed line.
		return fmt.Sprintf("%s → %s", e.From, e.To)
	case auth.EventRefreshed:
		return "refreshed: new access token and a new (rotated) refresh token, saved first"
	case auth.EventAdopted:
		return "new tokens, committed by another instance, adopted"
	case auth.EventRefreshFailed:
		return e.Error
	case auth.EventSignedIn:
		return "signed in"
	case auth.EventSignedOut:
		return "signed out"
	case auth.EventRestored:
		// A log line, read in a terminal too: the step is said for one.
		if next := humanize.NextStep(e.Next, humanize.Terminal); next != "" {
			return e.Error + ". " + next
		}
		return e.Error
	case auth.EventAccessExpired:
		return "the access token expired and no new one could be had"
	case auth.EventChecked:
		if e.Error != "" {
			return "API check failed: " + e.Error
		}
		return "API check ok"
	}
	return ""
}
