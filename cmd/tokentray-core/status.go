package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/humanize"
)

// statusJSON is one connection in `status --json`, the same as the API's.
type statusJSON = apitype.Connection

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
			err = e.with(func(b backend) error {
				var err error
				all, err = b.Connections(cmd.Context())
				return err
			})
			// A store that could not be read leaves its connections in the
			// list: print it, then fail (exit 1, as the README says).
			if all == nil && err != nil {
				return err
			}
			all = append(all, remoteStatuses(cmd.Context(), e, all)...)
			unread := err
			if asJSON {
				if all == nil {
					all = []statusJSON{}
				}
				enc := json.NewEncoder(e.streams.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(all); err != nil {
					return err
				}
				return unread
			}
			if len(all) == 0 {
				where := "the config file"
				if cfg, err := e.config(); err == nil {
					where = cfg.Path
				}
				fmt.Fprintf(e.streams.out, "No connections in %s yet (see the README's Config section).\n", where)
				return nil
			}
			printStatus(e, all)
			return unread
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// unreadStores are the connections whose stored state status could not
// read. status prints every connection first, then fails with exit 1 (the
// README's contract for an unavailable keyring), naming a cause they share,
// such as no session bus, once rather than per connection.
type unreadStores struct {
	names []string
	errs  []error
}

func (u *unreadStores) add(name string, err error) {
	u.names = append(u.names, name)
	u.errs = append(u.errs, err)
}

func (u *unreadStores) err() error {
	switch len(u.errs) {
	case 0:
		return nil
	case 1:
		return u.errs[0] // it names its connection
	}
	if cause := commonCause(u.errs); cause != nil {
		return fmt.Errorf("could not read the stored state of %s: %w", strings.Join(u.names, ", "), cause)
	}
	return errors.Join(u.errs...)
}

// commonCause is the outermost error in errs[0]'s chain that every other
// error's chain holds too (by its text): the part without the connection's
// name. A bare sentinel at the chain's end ("keyring unavailable") is a
// category, not a cause, and does not count.
func commonCause(errs []error) error {
	for c := errs[0]; errors.Unwrap(c) != nil; c = errors.Unwrap(c) {
		shared := true
		for _, other := range errs[1:] {
			shared = shared && hasText(other, c.Error())
		}
		if shared {
			return c
		}
	}
	return nil
}

func hasText(err error, text string) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == text {
			return true
		}
	}
	return false
}

func printStatus(e *env, all []statusJSON) {
	now := e.clock.Now()
	w := tabwriter.NewWriter(e.streams.out, 0, 0, 2, ' ', 0)
	// Where machines share the store, which one refreshed last matters:
	// a column of its own then.
	shared, instances := false, ""
	for _, s := range all {
		shared = shared || s.LastRefreshBy != "" || s.Shared != nil
		if in := humanize.Instances(s.Status); in != "" && instances == "" {
			instances = in
		}
	}
	header := "NAME\tPROVIDER\tSTATE\tACCESS TOKEN\tNEXT REFRESH\tREFRESH TOKEN"
	if shared {
		header += "\tLAST REFRESH"
	}
	fmt.Fprintln(w, header)
	for _, s := range all {
		rt := humanize.RefreshTokenLeft(s.Status, now)
		if rt == "" {
			rt = "-"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", s.Name, providerLabel(s), s.State, humanize.Expiry(s.Status, now), humanize.NextRefresh(s.Status, now), rt)
		if shared {
			line += "\t" + humanize.LastRefresh(s.Status, now)
		}
		fmt.Fprintln(w, line)
	}
	_ = w.Flush()
	if instances != "" {
		fmt.Fprintf(e.streams.out, "\nshared store: %s\n", instances)
	}
	for _, s := range all {
		if r := humanize.SharedRefresh(s.Status, now); r != "" {
			fmt.Fprintf(e.streams.out, "\n%s: %s\n", s.Name, r)
		}
		if s.LastError != "" {
			fmt.Fprintf(e.streams.out, "\n%s: %s\n", s.Name, s.LastError)
			if hint := humanize.Advice(s.Next, s.Hint, humanize.Terminal); hint != "" {
				fmt.Fprintf(e.streams.out, "  hint: %s\n", hint)
			}
		}
		if s.APIRefused != "" {
			fmt.Fprintf(e.streams.out, "\n%s: the API refuses its token: %s\n", s.Name, s.APIRefused)
		}
		if s.Waiting > 0 {
			fmt.Fprintf(e.streams.out, "\n%s: %d API calls through tokentray wait for a sign-in\n", s.Name, s.Waiting)
		}
		if rl := humanize.RateLimit(s.RateLimit, now); rl != "" {
			fmt.Fprintf(e.streams.out, "\n%s: API rate limit: %s\n", s.Name, rl)
		}
		if s.RefreshTokenEnding {
			fmt.Fprintf(e.streams.out, "\n%s: %s\n", s.Name, humanize.RefreshToken(s.Status, now))
		}
	}
}

func providerLabel(s statusJSON) string {
	if s.Environment == "" {
		return s.Provider
	}
	return s.Provider + "/" + s.Environment
}
