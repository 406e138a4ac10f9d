package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/remote"
)

// remoteAskTimeout bounds asking one remote: a machine that does not answer
// costs the status this long, not more.
const remoteAskTimeout = 20 * time.Second

// remoteStatuses are the connections of every [[remote]] of the config, as
// NAME@REMOTE, asked over ssh at once, but for those the running tokentray
// follows already (its rows are in have). A remote that cannot be asked is
// one row, "*@REMOTE", unreachable, with why. Without a config or remotes,
// none.
func remoteStatuses(ctx context.Context, e *env, have []apitype.Connection) []apitype.Connection {
	cfg, err := e.config()
	if err != nil {
		if !errors.Is(err, config.ErrNoFile) {
			fmt.Fprintf(e.streams.err, "tokentray: the config file could not be read, so no [[remote]] server is shown: %v\n", err)
		}
		return nil
	}
	dir := filepath.Dir(apiclient.DefaultPath())
	followed := map[string]bool{}
	for _, c := range have {
		followed[c.Remote] = c.Remote != ""
	}
	out := make([][]apitype.Connection, len(cfg.Remotes))
	var wg sync.WaitGroup
	for i, rc := range cfg.Remotes {
		if followed[rc.Name] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := remote.Remote{Remote: rc, ControlDir: dir}
			conns, err := r.Connections(ctx, remoteAskTimeout)
			if err != nil {
				out[i] = []apitype.Connection{r.Unreachable(time.Time{}, err.Error())}
				return
			}
			out[i] = conns
		}()
	}
	wg.Wait()
	var all []apitype.Connection
	for _, conns := range out {
		all = append(all, conns...)
	}
	return all
}
