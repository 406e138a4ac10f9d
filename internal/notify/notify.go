// Package notify shows desktop notifications, with one action button where
// the desktop supports it. On Linux it speaks org.freedesktop.Notifications
// over D-Bus itself, because beeep cannot offer actions; it asks the server
// for the "actions" capability and listens for ActionInvoked. Everywhere
// else, and when D-Bus fails, it falls back to beeep without an action.
package notify

import (
	"github.com/gen2brain/beeep"
)

// Message is one notification.
type Message struct {
	// Key groups notifications: a new message with the same key replaces
	// the one still shown (one per connection, not a pile).
	Key   string
	Title string
	Body  string
	// Urgent keeps the notification up until a person acts (critical).
	Urgent bool
	// Icon is a PNG.
	Icon []byte
	// Action is the label of the one button ("Re-authenticate"); empty for none.
	Action string
	// OnAction runs when the button, or the notification itself, is clicked.
	OnAction func()
	// Link is the action as a link a program outside this process can
	// open (a tokentray: link, or the web page): a Windows toast's button
	// opens it, since the toast outlives no process of tokentray's.
	Link string
}

// Notifier sends notifications.
type Notifier interface {
	// Actionable reports whether notifications can carry the action
	// button; when not, the message should say where the click is.
	Actionable() bool
	// Send shows m. It reports whether m.Action can be clicked in it.
	Send(m Message) (actionable bool, err error)
	Close() error
}

// Beeep is the portable notifier: no action buttons.
type Beeep struct{}

// Send shows m without its action.
func (Beeep) Send(m Message) (bool, error) {
	var icon any = ""
	if len(m.Icon) > 0 {
		icon = m.Icon
	}
	if m.Urgent {
		return false, beeep.Alert(m.Title, m.Body, icon)
	}
	return false, beeep.Notify(m.Title, m.Body, icon)
}

// Close does nothing.
func (Beeep) Close() error { return nil }

// Actionable is false: beeep has no buttons.
func (Beeep) Actionable() bool { return false }
