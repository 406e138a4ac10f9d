package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// changedChannel is the NOTIFY channel of written items: every write and
// deletion of tokentray_items notifies it in its own statement (so a
// commit and its news are one), the payload the connection's name.
const changedChannel = "tokentray_items_changed"

// watchRetry is how long WatchTokens waits before it listens again after
// its connection failed (Store.watchRetry, which tests shorten).
const watchRetry = 5 * time.Second

// WatchTokens calls changed with the name of each connection whose items
// another instance (or this one) wrote, until ctx ends; and with "" each
// time it listens again after its connection failed, since writes may have
// gone unheard meanwhile (auth.StoreWatcher). It listens on a connection
// of its own, outside the pool: a LISTEN pins its connection for as long.
func (s *Store) WatchTokens(ctx context.Context, changed func(name string)) {
	for again := false; ctx.Err() == nil; again = true {
		err := s.listen(ctx, changedChannel, func() {
			if again {
				changed("")
			}
		}, changed)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("not told of tokens written by other instances until listening again (each reads the store when it next refreshes)", "retry", s.watchRetry, "err", err)
		t := time.NewTimer(s.watchRetry)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// listen LISTENs on channel on a connection of its own, calls ready once
// it listens, then on with each notification's payload, until ctx ends or
// the connection fails (its error).
func (s *Store) listen(ctx context.Context, channel string, ready func(), on func(payload string)) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, s.pool.Config().ConnConfig)
	if err != nil {
		return s.explain("connect to", err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		_ = conn.Close(c)
	}()
	if _, err := conn.Exec(cctx, "LISTEN "+channel); err != nil {
		return s.explain("listen on", err)
	}
	ready()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		on(n.Payload)
	}
}
