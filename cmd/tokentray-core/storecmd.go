package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/store/storecopy"
)

func newStoreCmd(envFor envGetter) *cobra.Command {
	c := &cobra.Command{
		Use:   "store",
		Short: "Move connections between stores (store copy)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError{errors.New("store needs a command: `tokentray store copy --from KIND` (see `tokentray store copy --help`)")}
		},
	}
	c.AddCommand(newStoreCopyCmd(envFor))
	return c
}

// copyTimeout bounds one connection's move: the wait for a refresh under
// way in either store to end, and the store calls.
const copyTimeout = 2 * time.Minute

func newStoreCopyCmd(envFor envGetter) *cobra.Command {
	var from, to string
	c := &cobra.Command{
		Use:   "copy (--from KIND | --to KIND) [NAME...]",
		Short: "Move tokens and client secrets between stores, without a new sign-in",
		Long: `Moves each named connection (every configured one when none is named) from the
store this machine used before into the store the config chooses (--from KIND), or
from the configured store into another (--to KIND). KIND is keyring or file; the
configured store may be any, the shared PostgreSQL store among them.

A refresh token is single-use, so it is never left live in two stores: the target
is written only where it holds no tokens, read back, and only then are the tokens
deleted from the source. A connection with tokens of its own in the target is not
touched. A run that stops half-way is finished by running it again.

Stop the tokentray running on this machine first (Quit in the tray, or systemctl
--user stop tokentray): it keeps using the store it started with.`,
		Example: `  # a server that used the file store joins a shared PostgreSQL store:
  # set store = "postgres" in the config, stop tokentray, then
  tokentray store copy --from file
  # and back again: move the connection, then set store = "file"
  tokentray store copy --to file procore-sandbox`,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := envFor(c)
			if err != nil {
				return err
			}
			return storeCopy(c.Context(), e, from, to, args)
		},
	}
	c.Flags().StringVar(&from, "from", "", "the store to move from, into the configured one: keyring or file")
	c.Flags().StringVar(&to, "to", "", "the store to move to, from the configured one: keyring or file")
	return c
}

func storeCopy(ctx context.Context, e *env, from, to string, names []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	other, fromOther := from, true
	switch {
	case (from == "") == (to == ""):
		return usageError{errors.New("store copy needs one of --from KIND (into the configured store) or --to KIND (out of it); KIND is keyring or file")}
	case to != "":
		other, fromOther = to, false
	}
	switch other {
	case config.StoreKeyring, config.StoreFile:
	case config.StorePostgres, config.StoreEtcd:
		return usageError{fmt.Errorf("the %s can only be the configured one (where it is, is in the config): set store = %q and move with --from keyring or --from file, or move out of it with --to", storeWords(other), other)}
	default:
		return usageError{fmt.Errorf("unknown store %q: KIND is keyring or file", other)}
	}
	if other == cfg.Store {
		return usageError{fmt.Errorf("the config already chooses the %s (store = %q): name the store that is not configured", storeWords(other), cfg.Store)}
	}
	all := configuredNames(cfg)
	if len(names) == 0 {
		names = all
	}
	for _, n := range names {
		if !slices.Contains(all, n) {
			return usageError{fmt.Errorf("%s is not a connection of the config (%s): store copy moves configured connections", n, cfg.Path)}
		}
	}
	if e.api != nil {
		if _, err := e.api.Connections(ctx); err == nil {
			return errors.New("tokentray is running on this machine, and it keeps using the store it started with: stop it first (Quit in the tray, or systemctl --user stop tokentray), run this again, then start it")
		}
	}

	configured, err := e.side(cfg.Store)
	if err != nil {
		return err
	}
	otherSide, err := e.side(other)
	if err != nil {
		return err
	}
	src, dst, srcKind, dstKind := otherSide, configured, other, cfg.Store
	if !fromOther {
		src, dst, srcKind, dstKind = configured, otherSide, cfg.Store, other
	}

	failed, moved := 0, 0
	for _, name := range names {
		cctx, cancel := context.WithTimeout(ctx, copyTimeout)
		res, err := storecopy.Copy(cctx, src, dst, name, e.clock.Now())
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(e.streams.err, "%s: %s\n", name, copyFailure(err, name, srcKind, dstKind, e.clock.Now()))
			continue
		}
		if !res.Nothing() {
			moved++
		}
		fmt.Fprintf(e.streams.err, "%s: %s\n", name, copyDone(res, srcKind, dstKind))
	}
	if moved > 0 && !fromOther {
		fmt.Fprintf(e.streams.err, "Set store = %q in %s before tokentray starts again: the %s no longer holds what was moved.\n", other, cfg.Path, storeWords(cfg.Store))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d connections not moved (above: why, and what to do)", failed, len(names))
	}
	return nil
}

// side is the store of kind and the Locker its writers hold: the
// configured store with its own (a shared store's lease), or one of this
// machine's, which the file lock guards.
func (e *env) side(kind string) (storecopy.Side, error) {
	cfg, err := e.config()
	if err != nil {
		return storecopy.Side{}, err
	}
	if kind == cfg.Store {
		s, l, err := e.storage()
		return storecopy.Side{Store: s, Locker: l}, err
	}
	s, err := e.openLocal(kind)
	return storecopy.Side{Store: s, Locker: e.localLocker()}, err
}

// configuredNames are the names of the config's connections, those that
// cannot run as they are among them: their tokens may be stored all the
// same.
func configuredNames(cfg *config.Config) []string {
	var names []string
	for _, c := range cfg.Connections {
		names = append(names, c.Name)
	}
	for _, b := range cfg.Broken {
		if b.Name != "" && !slices.Contains(names, b.Name) {
			names = append(names, b.Name)
		}
	}
	return names
}

func storeWords(kind string) string {
	switch kind {
	case config.StoreFile:
		return "file store"
	case config.StorePostgres:
		return "PostgreSQL store"
	case config.StoreEtcd:
		return "etcd store"
	}
	return "keyring"
}

func copyDone(r storecopy.Result, from, to string) string {
	what := "its tokens"
	switch {
	case r.Nothing():
		return fmt.Sprintf("nothing stored in the %s", storeWords(from))
	case r.Finished:
		return fmt.Sprintf("already in the %s; deleted the copy that a run before left in the %s", storeWords(to), storeWords(from))
	case r.Tokens && r.Secret:
		what = "its tokens and client secret"
	case r.Secret:
		what = "its client secret (no tokens were stored: sign in once it runs)"
	}
	return fmt.Sprintf("moved %s from the %s to the %s", what, storeWords(from), storeWords(to))
}

func copyFailure(err error, name, from, to string, now time.Time) string {
	var both *storecopy.TargetHasTokens
	var kept *storecopy.SourceKept
	switch {
	case errors.As(err, &both):
		return fmt.Sprintf("not moved, nothing changed: the %s already holds tokens of its own (refresh token received %s; the %s's: %s). "+
			"To keep the %s's, there is nothing to do. To keep the %s's instead, forget the others where they are (`tokentray logout %s --local-only` with the config choosing that store), then run this again",
			storeWords(to), humanize.Ago(both.TargetSince, now), storeWords(from), humanize.Ago(both.SourceSince, now),
			storeWords(to), storeWords(from), name)
	case errors.Is(err, storecopy.ErrSecretsDiffer):
		return fmt.Sprintf("not moved, nothing changed: the %s holds another client secret than the %s. Make them the same (`tokentray secret %s` writes the configured store's), then run this again",
			storeWords(to), storeWords(from), name)
	case errors.As(err, &kept):
		return fmt.Sprintf("moved to the %s, but the %s's copy of %s could not be deleted (%v). Run this again to delete it; until then it is unused while the config chooses the %s",
			storeWords(to), storeWords(from), kept.What, kept.Err, storeWords(to))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("not moved, nothing changed: a refresh or sign-in in one of the stores held it longer than %s (%v); run this again", humanize.Duration(copyTimeout), err)
	}
	return fmt.Sprintf("not moved: %v. Nothing is deleted from the %s before the %s holds it; run this again once that is fixed", err, storeWords(from), storeWords(to))
}
