package desktop

import (
	"time"

	"github.com/tokentray/tokentray/assets"
	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/notify"
)

// The shell's side of the [[remote]] servers the service follows: what a
// person is told of them.

// Unreachable tells a person, once per outage, that a server has been out
// of reach for a while, and what that does and does not mean.
func (r *Resident) Unreachable(server string, since time.Time, reason string) {
	at := since.In(r.opt.Clock.Now().Location()).Format("15:04")
	r.send(notify.Message{Key: "remote:" + server, Title: server + " cannot be reached since " + at, Icon: assets.TrayGrey,
		Body: "Its tokentray keeps refreshing its connections on its own and runs its on_alert there; this desktop cannot show them or sign them in until it answers again. tokentray tries again by itself.\n" + reason}, "")
}

// Reachable tells a person that a server they were told of answers again.
func (r *Resident) Reachable(server string) {
	r.send(notify.Message{Key: "remote:" + server, Title: server + " can be reached again", Icon: assets.TrayGreen,
		Body: "tokentray follows its connections again."}, "")
}

// ShowCode tells a person the code of a sign-in with a code (a server's,
// or one kept here: keeper names who keeps the tokens): a notification
// whose action opens the page (with the code in it, where the provider
// offers that) in this machine's browser.
func (r *Resident) ShowCode(name, keeper string, code apitype.DeviceSignIn) {
	page := code.VerificationURI
	if code.VerificationURIComplete != "" {
		page = code.VerificationURIComplete
	}
	msg := notify.Message{Key: name, Title: name + ": enter the code " + code.UserCode,
		Body: "To sign " + name + " in, open " + code.VerificationURI + " on any device and enter " + code.UserCode + ". " + keeper + " keeps the tokens."}
	// The page comes from the provider, through a server: a notification
	// offers to open only a web page; anything else stays text, with why.
	if err := auth.CheckBrowserURL(page); err != nil {
		r.hub.Log(name, "the sign-in page is shown, not opened: "+err.Error())
	} else if open := r.opt.OpenBrowser; open != nil {
		msg.Action, msg.Link = "Open the page", page
		msg.OnAction = func() {
			if err := open(page); err != nil {
				r.hub.Log(name, "the page could not be opened: "+err.Error())
			}
		}
	}
	r.send(msg, name)
}
