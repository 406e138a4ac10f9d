package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/localapi"
)

// statusJSON is one connection in `status --json`, the same as the API's.
type statusJSON = localapi.Connection

func newStatusCmd(envFor envGetter) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show every connection: state, expiry, next refresh, last error",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("status takes no arguments (it shows every connection)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := envFor(cmd)
			if err != nil {
				return err
			}
			var all []statusJSON
			asked, err := e.askTray(func(c *localapi.Client) error {
				var err error
				all, err = c.Connections(cmd.Context())
				return err
			})
			if err != nil {
				return err
			}
			for _, conn := range e.cfg.Connections {
				if asked {
					break
				}
				st := auth.Status{Name: conn.Name, State: "unknown"}
				if k, err := e.keeper(cmd.Context(), conn.Name); err != nil {
					st.LastError = err.Error()
				} else {
					st = k.Status()
				}
				all = append(all, statusJSON{Status: st, Provider: conn.Provider.Name, Environment: conn.Environment, APIBase: conn.Endpoints.APIBase})
			}
			if asJSON {
				if all == nil {
					all = []statusJSON{}
				}
				enc := json.NewEncoder(e.streams.out)
				enc.SetIndent("", "  ")
				return enc.Encode(all)
			}
			if len(all) == 0 {
				fmt.Fprintf(e.streams.out, "No connections in %s yet (see the README's Config section).\n", e.cfg.Path)
				return nil
			}
			printStatus(e, all)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printStatus(e *env, all []statusJSON) {
	now := e.clock.Now()
	w := tabwriter.NewWriter(e.streams.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tPROVIDER\tSTATE\tACCESS TOKEN\tNEXT REFRESH")
	for _, s := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, providerLabel(s), s.State, expiryLabel(s.Status, now), nextLabel(s.Status, now))
	}
	_ = w.Flush()
	for _, s := range all {
		if s.LastError == "" {
			continue
		}
		fmt.Fprintf(e.streams.out, "\n%s: %s\n", s.Name, s.LastError)
		if s.Hint != "" {
			fmt.Fprintf(e.streams.out, "  hint: %s\n", s.Hint)
		}
	}
}

func providerLabel(s statusJSON) string {
	if s.Environment == "" {
		return s.Provider
	}
	return s.Provider + "/" + s.Environment
}

func expiryLabel(s auth.Status, now time.Time) string {
	switch {
	case s.AccessExpiry.IsZero():
		return "none"
	case s.Usable:
		label := humanize.Duration(s.AccessExpiry.Sub(now)) + " left"
		if s.LifetimeGuessed {
			label += " (estimated)"
		}
		return label
	default:
		return "expired " + humanize.Duration(s.AccessExpiry.Sub(now))
	}
}

func nextLabel(s auth.Status, now time.Time) string {
	switch {
	case s.State == auth.StateNeedsReauth || s.State == auth.StateDisconnected:
		return "sign-in needed"
	case s.NextRefresh.IsZero():
		return "-"
	case !s.NextRefresh.After(now):
		return "due now"
	default:
		return "in " + humanize.Duration(s.NextRefresh.Sub(now))
	}
}
