package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
)

func newEventsCmd(envFor envGetter) *cobra.Command {
	return &cobra.Command{
		Use:   "events",
		Short: "Follow the running tokentray: every change, as JSON lines, until interrupted",
		Long: `Prints the running tokentray's event stream (GET /v1/events of the local API) on stdout,
one JSON object per line, as it happens: first a "status" line for every connection and
the recent "log" lines, then "ready"; after that a line per change. It ends when
interrupted, or with exit 1 when the running tokentray stops. Without one running
there is nothing to follow (exit 1).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			e, err := envFor(c)
			if err != nil {
				return err
			}
			if e.api == nil {
				return apiclient.ErrNotRunning
			}
			enc := json.NewEncoder(e.streams.out)
			err = e.api.Events(c.Context(), func(ev apitype.Event) error { return enc.Encode(ev) })
			switch {
			case errors.Is(err, context.Canceled):
				return nil // interrupted: what was asked
			case errors.Is(err, io.EOF):
				return errors.New("the running tokentray stopped")
			case errors.Is(err, apiclient.ErrNotRunning):
				return errors.New("no tokentray is running here: events come from the running one (tokentray, or tokentray serve)")
			}
			return err
		},
	}
}
