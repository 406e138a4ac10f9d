package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/activation"
	"github.com/tokentray/tokentray/internal/apiclient"
)

// activate answers a tokentray: link, this program's one argument when
// something opened one: a Windows notification's Re-authenticate or Edit…
// button, through the scheme the installer registers. The request goes to
// the running tokentray, which checks that the connection is one of its
// own, and this process ends. A link that is not exactly a verb and a
// connection's name asks nothing of anyone: any web page can open one.
func activate(ctx context.Context, io streams, link string) int {
	req, err := activation.Parse(link)
	if err != nil {
		return report(io, usageError{fmt.Errorf("the link %q asks nothing of tokentray: %w", link, err)})
	}
	api := apiclient.New(apiclient.DefaultPath())
	what := "sign " + req.Connection + " in"
	switch req.Verb {
	case activation.Reauth:
		err = api.StartLogin(ctx, req.Connection)
	case activation.Edit:
		what = "open the editor of " + req.Connection
		err = api.ShowEditor(ctx, req.Connection)
	}
	if errors.Is(err, apiclient.ErrNotRunning) {
		err = fmt.Errorf("%w, so it cannot %s: start tokentray (from the Start menu), then use its menu", err, what)
	}
	if err != nil {
		return report(io, fmt.Errorf("the link %s: %w", link, err))
	}
	fmt.Fprintf(io.err, "tokentray: the running tokentray was asked to %s.\n", what)
	return apitype.ExitOK
}
