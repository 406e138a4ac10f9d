package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/items"
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
		err := s.listen(ctx, changedChannel, s.register, func() {
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

// listen LISTENs on channel on a connection of its own (set up first by
// setup, if not nil), calls ready once it listens, then on with each
// notification's payload, until ctx ends or the connection fails (its
// error).
func (s *Store) listen(ctx context.Context, channel string, setup func(context.Context, *pgx.Conn), ready func(), on func(payload string)) error {
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
	if setup != nil {
		setup(cctx, conn)
	}
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

// register records that this instance serves from the store, on conn, the
// watch's connection, which lives as long as the instance listens: a row
// naming the connection's backend (its pid and start, which no later
// backend shares), so that Presence counts it exactly while the engine
// keeps that connection, with no heartbeat to write. Rows of backends gone
// are removed here. A failure costs the status its list of instances, and
// nothing else: it is logged.
func (s *Store) register(ctx context.Context, conn *pgx.Conn) {
	_, err := conn.Exec(ctx, `WITH gone AS (
			DELETE FROM tokentray_instances i WHERE NOT EXISTS (
				SELECT 1 FROM pg_stat_activity a WHERE a.pid = i.backend_pid AND a.backend_start = i.backend_start))
		INSERT INTO tokentray_instances (backend_pid, backend_start, instance)
		SELECT pid, backend_start, $1 FROM pg_stat_activity WHERE pid = pg_backend_pid()`, s.instance)
	if err != nil {
		s.log.Warn("could not record this instance among those serving from the store (status lists it not)", "err", s.explain("write", err))
	}
}

// Presence is who is at the store now (auth.PresenceTeller): the instances
// whose watch is connected, and each connection's lease holder and
// unsettled refresh intent. Two statements, for the people who look.
func (s *Store) Presence(ctx context.Context) (*auth.Presence, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	p := &auth.Presence{Leases: map[string]string{}, Intents: map[string]auth.Intent{}}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT i.instance FROM tokentray_instances i
		JOIN pg_stat_activity a ON a.pid = i.backend_pid AND a.backend_start = i.backend_start ORDER BY 1`)
	if err == nil {
		p.Instances, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return nil, fmt.Errorf("read the instances at the store: %w", s.explain("read", err))
	}
	// An intent counts only on the generation stored now: one on an
	// older generation was committed, and its holder died before clearing
	// it (auth.Lease), which leaves nothing to wait for.
	rows, err = s.pool.Query(ctx, `SELECT l.name, CASE WHEN l.expires_at > now() THEN l.holder END,
			i.generation IS NOT NULL AND l.intent_holder IS NOT NULL, l.intent_holder, l.intent_at,
			extract(epoch FROM now() - l.intent_at)::float8
		FROM tokentray_leases l LEFT JOIN tokentray_items i
			ON i.name = l.name AND i.kind = $1 AND i.sealed IS NOT NULL AND i.generation = l.intent_generation
		WHERE l.expires_at > now() OR l.intent_holder IS NOT NULL`, items.KindTokens)
	if err != nil {
		return nil, fmt.Errorf("read the leases: %w", s.explain("read", err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name             string
			holder, intentBy *string
			current          bool
			intentAt         *time.Time
			intentAge        *float64
		)
		if err := rows.Scan(&name, &holder, &current, &intentBy, &intentAt, &intentAge); err != nil {
			return nil, fmt.Errorf("read the leases: %w", s.explain("read", err))
		}
		if holder != nil {
			p.Leases[name] = auth.InstanceOf(*holder)
		}
		if current && intentBy != nil && intentAt != nil && intentAge != nil {
			p.Intents[name] = auth.Intent{Instance: auth.InstanceOf(*intentBy), Holder: *intentBy, At: *intentAt, Age: seconds(*intentAge)}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the leases: %w", s.explain("read", err))
	}
	return p, nil
}
