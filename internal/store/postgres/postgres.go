// Package postgres is auth.Store in a PostgreSQL database that several
// machines share, and Lease, its Locker: `store = "postgres"` in the
// config (issue #21).
//
// Tables. tokentray creates and migrates its own tables, in the first
// schema of the role's search_path (by default the schema named as the
// role): tokentray_schema (one row: the schema version), tokentray_leases
// (a row per connection whose lease is held or whose refresh intent is
// left: see Lease) and
// tokentray_items, one row per item of a connection (its token set, its
// client secret):
//
//	name, kind     the connection and the item ("tokens", "client-secret")
//	version        moves with every write of the item, deletions too
//	generation     the token set's generation (auth.StoredGeneration)
//	sealed         the item sealed with the instance key; NULL once deleted
//	updated_at     the server's now() at the last write
//	updated_by     the instance that wrote it last
//
// A schema newer than this binary knows is refused: that tokentray must be
// upgraded, not the tables rolled back.
//
// Writes. SaveTokens is a compare-and-set that the engine does in one
// statement: it reads the row, seals the new value for the next version, and
// writes it only where the row still has the version and the generation it
// read (an INSERT … ON CONFLICT DO NOTHING when there was none). No
// transaction is held across anything but that statement. A deletion leaves
// the row as a tombstone (sealed NULL, the version moved on), so versions are
// never used twice for a name, and a token set is "not stored" again, so a
// refresh that read the deleted generation cannot commit (auth.Store).
//
// Sealing. Every value is sealed (internal/store/seal, AES-256-GCM) with a
// key that every instance is given; the row's name, kind, version and
// generation are its associated data, so a row copied onto another
// connection, or put back at another version, does not open. A dump of the
// database, a backup or a DBA sees no token.
//
// Bounds. Every call runs under a timeout (Options.Timeout), connecting
// included, so a store whose server is unreachable returns an error, never
// hangs the keeper.
package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/items"
	"github.com/tokentray/tokentray/internal/store/postgres/conninfo"
	"github.com/tokentray/tokentray/internal/store/seal"
)

// SchemaVersion is the version of the tables this tokentray writes. A
// database whose tables are newer is refused (ErrSchemaNewer).
const SchemaVersion = 4

// DefaultTimeout bounds each call when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// ErrSchemaNewer is the error of a database whose tokentray tables were
// made by a newer tokentray.
var ErrSchemaNewer = errors.New("the tokentray tables are newer than this tokentray")

// Options are what Open needs.
type Options struct {
	// URL is the connection string: a libpq URL (postgres://…) or
	// key=value string. It must not hold a password: pgx reads PGPASSFILE,
	// ~/.pgpass and the PG* environment, as libpq does.
	URL string
	// Key is the instance key, seal.KeySize bytes, the same on every
	// instance that shares the database.
	Key []byte
	// Instance names this machine in the rows it writes (default: the
	// host name, which the caller fills in).
	Instance string
	// Timeout bounds each call, connecting included (default
	// DefaultTimeout).
	Timeout time.Duration
	// Log hears of a watch that lost its connection (WatchTokens); never
	// given a token (default: none).
	Log *slog.Logger
}

// Store is auth.Store in PostgreSQL. It is safe for concurrent use.
type Store struct {
	// Items are the token sets and client secrets (auth.Store's methods).
	*items.Items
	pool     *pgxpool.Pool
	instance string
	timeout  time.Duration
	log      *slog.Logger
	// watchRetry: see the constant.
	watchRetry time.Duration
	// where names the server in errors: host, port, database, role.
	where string
	// pgpass is the ~/.pgpass line that gives this store_url's password.
	pgpass string
}

var (
	_ auth.Store          = (*Store)(nil)
	_ auth.StoreWatcher   = (*Store)(nil)
	_ auth.PresenceTeller = (*Store)(nil)
)

// Open connects to the database of o.URL, creates or migrates tokentray's
// tables, and returns the store. Each failure says what to do: a password
// in the URL, a key missing or of the wrong size, a server that cannot be
// reached, a login refused, a schema from a newer tokentray.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := conninfo.RefusePassword(o.URL); err != nil {
		return nil, err
	}
	if o.Key == nil {
		return nil, fmt.Errorf("the PostgreSQL store needs the instance key, and this process has none: give store_key_file (a 0600 file of 32 random bytes, the same on every instance: head -c 32 /dev/urandom) or start it with the systemd credential %s", seal.KeyCredential)
	}
	sealer, err := seal.New(o.Key)
	if err != nil {
		return nil, fmt.Errorf("the PostgreSQL store's key: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		// pgx's error may quote the string; it holds no password (refused above).
		return nil, fmt.Errorf("store_url is not a PostgreSQL connection string (postgres://user@host/db or \"host=… dbname=… user=…\"): %w", err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if cfg.ConnConfig.ConnectTimeout <= 0 || cfg.ConnConfig.ConnectTimeout > timeout {
		cfg.ConnConfig.ConnectTimeout = timeout
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["application_name"] = "tokentray"
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Store{instance: o.Instance, timeout: timeout, log: o.Log, watchRetry: watchRetry,
		where:  fmt.Sprintf("PostgreSQL at %s:%d (database %q, role %q)", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, cfg.ConnConfig.User),
		pgpass: fmt.Sprintf("%s:%d:%s:%s:PASSWORD", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, cfg.ConnConfig.User)}
	s.Items = items.New(rows{s}, sealer, timeout, s.where)
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, s.explain("connect to", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store's connections, waiting for them at most the
// store's timeout: a connection to a server that stopped answering is left
// to close in the background (pgxpool would wait 15 s for it).
func (s *Store) Close() {
	done := make(chan struct{})
	go func() {
		s.pool.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.timeout):
	}
}

// Instance is this machine's name among those that share the database,
// as it writes it in its rows.
func (s *Store) Instance() string { return s.instance }

// Where names the server, the database and the role, for messages.
func (s *Store) Where() string { return s.where }

// migrate brings the tables to SchemaVersion, in a short transaction that
// a transaction-scoped advisory lock serialises between instances starting
// at once. Tables that are already current are only read: a role that may
// no longer create tables still works.
func (s *Store) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	version, err := s.schemaVersion(ctx)
	if err != nil {
		return s.explain("read the tokentray tables of", err)
	}
	if version > SchemaVersion {
		return fmt.Errorf("%w: %s has tables of schema version %d, this tokentray knows up to %d; upgrade tokentray on this machine (another instance is newer), never roll the tables back", ErrSchemaNewer, s.where, version, SchemaVersion)
	}
	if version == SchemaVersion {
		return nil
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tokentray_schema (
			only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
			version integer NOT NULL)`); err != nil {
			return err
		}
		var v int
		err := tx.QueryRow(ctx, `SELECT version FROM tokentray_schema`).Scan(&v)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if v > SchemaVersion {
			return fmt.Errorf("%w: %s has tables of schema version %d, this tokentray knows up to %d; upgrade tokentray on this machine", ErrSchemaNewer, s.where, v, SchemaVersion)
		}
		for ; v < SchemaVersion; v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO tokentray_schema (version) VALUES ($1)
			ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version`, SchemaVersion)
		return err
	})
	if errors.Is(err, ErrSchemaNewer) {
		return err
	}
	if err != nil {
		return s.explain("create the tokentray tables in", err)
	}
	return nil
}

// migrationLock is the advisory lock key of migrations: "tokentray" in
// its first eight bytes.
var migrationLock = int64(binary.BigEndian.Uint64([]byte("tokentra")))

// migrations[i] takes the tables from schema version i to i+1.
var migrations = []string{
	`CREATE TABLE tokentray_items (
		name text NOT NULL,
		kind text NOT NULL,
		version bigint NOT NULL,
		generation bigint NOT NULL DEFAULT 0,
		sealed bytea,
		updated_at timestamptz NOT NULL DEFAULT now(),
		updated_by text NOT NULL DEFAULT '',
		PRIMARY KEY (name, kind))`,
	// 2: the leases (lease.go), one row per connection being refreshed.
	`CREATE TABLE tokentray_leases (
		name text PRIMARY KEY,
		holder text NOT NULL,
		expires_at timestamptz NOT NULL)`,
	// 3: the refresh intent (auth.Lease), kept with the lease and past it.
	`ALTER TABLE tokentray_leases
		ADD COLUMN intent_holder text,
		ADD COLUMN intent_generation bigint,
		ADD COLUMN intent_at timestamptz`,
	// 4: the alerts told (alerts.go), one row per connection and kind:
	// the latest generation told of, and by which instance; ...
	`CREATE TABLE tokentray_alerts (
		name text NOT NULL,
		kind text NOT NULL,
		generation bigint NOT NULL,
		told_by text NOT NULL,
		told_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (name, kind));
	-- and the instances serving from the store (notify.go), one row per
	-- watch connection, alive while pg_stat_activity has its backend.
	CREATE TABLE tokentray_instances (
		backend_pid integer NOT NULL,
		backend_start timestamptz NOT NULL,
		instance text NOT NULL,
		PRIMARY KEY (backend_pid, backend_start))`,
}

// schemaVersion is the version of the tables, 0 when there are none.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('tokentray_schema') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := s.pool.QueryRow(ctx, `SELECT version FROM tokentray_schema`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// rows is the PostgreSQL engine of the store's items (items.Engine): a
// row of tokentray_items per item, replaced by one statement that
// compares the row's version, generation and tombstone with what was read,
// and notifies changedChannel in the same statement (a commit and its news
// are one).
type rows struct{ s *Store }

func (e rows) Read(ctx context.Context, name, kind string) (items.Row, error) {
	var r items.Row
	var gen int64
	err := e.s.pool.QueryRow(ctx, `SELECT version, generation, sealed FROM tokentray_items WHERE name = $1 AND kind = $2`, name, kind).
		Scan(&r.Version, &gen, &r.Sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return items.Row{}, nil
	}
	if err != nil {
		return items.Row{}, err
	}
	r.Exists, r.Generation = true, uint64(gen)
	return r, nil
}

func (e rows) Write(ctx context.Context, name, kind string, cur, next items.Row) (bool, error) {
	var tag pgconn.CommandTag
	var err error
	if !cur.Exists {
		tag, err = e.s.pool.Exec(ctx, `WITH written AS (
				INSERT INTO tokentray_items (name, kind, version, generation, sealed, updated_by)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name, kind) DO NOTHING RETURNING name)
			SELECT pg_notify('`+changedChannel+`', name) FROM written`,
			name, kind, next.Version, int64(next.Generation), next.Sealed, e.s.instance)
	} else {
		tag, err = e.s.pool.Exec(ctx, `WITH written AS (
				UPDATE tokentray_items
				SET version = $3, generation = $4, sealed = $5, updated_at = now(), updated_by = $6
				WHERE name = $1 AND kind = $2 AND version = $7 AND generation = $8 AND (sealed IS NULL) = $9 RETURNING name)
			SELECT pg_notify('`+changedChannel+`', name) FROM written`,
			name, kind, next.Version, int64(next.Generation), next.Sealed, e.s.instance, cur.Version, int64(cur.Generation), cur.Sealed == nil)
	}
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

func (e rows) Explain(doing string, err error) error { return e.s.explain(doing, err) }

// Transient is false: a statement whose answer was lost is not sent again
// here (the keeper tries its commit again, and auth.InPlace tells a
// write that landed).
func (rows) Transient(error) bool { return false }

// explain is err, from doing what to the server, with what to do next.
// The server's messages hold no value of ours: values go as parameters.
func (s *Store) explain(doing string, err error) error {
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000"):
		return fmt.Errorf("%s refused the login (%s): give the role's password in ~/.pgpass or the file PGPASSFILE names (never in store_url), in a line that matches store_url: %s (a line for another host, port or database is not used), and check that pg_hba.conf lets this machine in", s.where, pgErr.Message, s.pgpass)
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		return fmt.Errorf("%s: the database does not exist (%s): create it, or fix dbname in store_url", s.where, pgErr.Message)
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return fmt.Errorf("%s: the role may not do this (%s): it needs its own schema with CREATE (see the README, Shared store), and nothing else", s.where, pgErr.Message)
	case errors.As(err, &pgErr):
		return fmt.Errorf("%s %s: %s (SQLSTATE %s)", doing, s.where, pgErr.Message, pgErr.Code)
	case certificateRefused(err):
		// Still "unreachable" for the keepers (they hand out what they
		// hold), but what to fix is the certificate, not the network.
		return unreachable(fmt.Sprintf("%s: a TLS certificate was refused (%v): with sslmode=verify-full the host in store_url must be a name the server's certificate holds (an address only if the certificate lists it), its CA must be the system's or given as sslrootcert=/path/to/ca.crt in store_url, and a client certificate (sslcert=, sslkey=) must be one the server trusts", s.where, err))
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) || isConnectError(err):
		return unreachable(fmt.Sprintf("cannot reach %s (each call waits at most %s): check that the server runs and that store_url's host and port are right (%v)", s.where, s.timeout, err))
	default:
		return fmt.Errorf("%s %s: %w", doing, s.where, err)
	}
}

// unreachable is the error of a server that does not answer: the keeper
// tells it apart (auth.ErrStoreUnreachable) from a refusal.
type unreachable string

func (e unreachable) Error() string { return string(e) }
func (e unreachable) Unwrap() error { return auth.ErrStoreUnreachable }

// certificateRefused reports whether err is a TLS certificate's refusal:
// this side's check of the server's (its name, its CA, its dates), or the
// server's alert about this side's.
func certificateRefused(err error) bool {
	var host x509.HostnameError
	var authority x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &host) || errors.As(err, &authority) || errors.As(err, &invalid) || errors.As(err, &verify) ||
		strings.Contains(err.Error(), "remote error: tls:")
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
