// Package etcd is auth.Store in an etcd cluster that several machines
// share, and Lease, its Locker: `store = "etcd"` in the config (issue
// #21). It keeps the same contract as the PostgreSQL store
// (internal/store/postgres), on etcd's own primitives: a transaction that
// compares a key's revision for every compare-and-set, an etcd lease for
// every lock, and a watch for the news of other instances' writes.
//
// Keys. Everything is under one prefix, /tokentray/ (a role that may read
// and write that prefix, and nothing else, is all tokentray needs: see the
// README, Shared store):
//
//	/tokentray/schema                  the layout's version (SchemaVersion)
//	/tokentray/items/NAME/KIND         an item of a connection: its token set
//	                                   ("tokens") or client secret
//	                                   ("client-secret"), as an itemValue
//	/tokentray/leases/NAME             the holder of NAME's lease, attached to
//	                                   an etcd lease (lease.go)
//	/tokentray/intents/NAME            a refresh intent (lease.go)
//	/tokentray/alerts/NAME/KIND        the latest alert told (alerts.go)
//	/tokentray/instances/HOLDER        an instance serving from the store,
//	                                   attached to an etcd lease (watch.go)
//
// An item's value holds its own version, its generation, who wrote it and
// the sealed value (nil for a tombstone: a deletion moves the version on
// and keeps the key, so a version is never used twice for a name, and a
// refresh of a deleted generation cannot commit). A layout newer than this
// binary knows is refused.
//
// Writes. SaveTokens reads the item, checks its generation, seals the next
// version, and writes it in a transaction that succeeds only if the key's
// mod revision is still the one read: a compare-and-set that etcd's Raft
// log orders against every other write, whichever member each instance
// talks to.
//
// Sealing. Every value is sealed (internal/store/seal, AES-256-GCM) with the
// instance key; the item's name, kind, version and generation are its
// associated data, exactly as in the PostgreSQL store, so a value copied
// onto another key, or put back at another version, does not open. A
// snapshot of the cluster, a backup or an operator sees no token.
//
// Bounds. Every call runs under a timeout (Options.Timeout), so a cluster
// that cannot be reached returns an error (auth.ErrStoreUnreachable), never
// hangs the keeper.
package etcd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/items"
	"github.com/tokentray/tokentray/internal/store/seal"
)

// SchemaVersion is the version of the key layout this tokentray writes. A
// cluster whose layout is newer is refused (ErrSchemaNewer).
const SchemaVersion = 1

// DefaultTimeout bounds each call when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// DefaultPrefix is the prefix of every key tokentray reads or writes.
const DefaultPrefix = "/tokentray/"

// ErrSchemaNewer is the error of a cluster whose tokentray keys were laid out
// by a newer tokentray.
var ErrSchemaNewer = errors.New("the tokentray keys are of a newer layout than this tokentray knows")

// Options are what Open needs.
type Options struct {
	// Endpoints are the cluster's client URLs (https://host:2379, or
	// http:// on a private network). A password in one is refused.
	Endpoints []string
	// TLSCA, TLSCert and TLSKey are PEM files: the CA that signed the
	// members' certificates (default: the system's roots), and this
	// instance's client certificate and key (etcd's --client-cert-auth
	// makes its common name the etcd user).
	TLSCA, TLSCert, TLSKey string
	// Key is the instance key, seal.KeySize bytes, the same on every
	// instance that shares the cluster.
	Key []byte
	// Instance names this machine in what it writes (default: the host
	// name, which the caller fills in).
	Instance string
	// Timeout bounds each call (default DefaultTimeout).
	Timeout time.Duration
	// Log hears of a watch that had to start again; never given a token.
	Log *slog.Logger
	// Prefix is the prefix of every key (default DefaultPrefix; the
	// tests give each its own).
	Prefix string
}

// Store is auth.Store in etcd. It is safe for concurrent use.
type Store struct {
	// Items are the token sets and client secrets (auth.Store's methods).
	*items.Items
	cli      *clientv3.Client
	instance string
	timeout  time.Duration
	log      *slog.Logger
	// watchRetry: see the constant (tests shorten it).
	watchRetry time.Duration
	// presenceTTL is the life of an instance's key without a keep-alive.
	presenceTTL int64
	// prefix is the prefix of every key (Options.Prefix).
	prefix string
	// where names the cluster in errors.
	where string
}

var (
	_ auth.Store          = (*Store)(nil)
	_ auth.StoreWatcher   = (*Store)(nil)
	_ auth.PresenceTeller = (*Store)(nil)
)

// Open connects to the cluster of o.Endpoints, lays out or checks
// tokentray's keys, and returns the store. Each failure says what to do.
func Open(ctx context.Context, o Options) (*Store, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New(`the etcd store needs the cluster's client URLs: store_endpoints = ["https://etcd-1.example:2379", …]`)
	}
	secure := false
	for _, e := range o.Endpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("store_endpoints: %q is not an etcd client URL: write it as https://HOST:2379 (or http:// on a private network)", redactEndpoint(e))
		}
		if u.User != nil {
			return nil, fmt.Errorf("store_endpoints: %q holds a user name or password; tokentray never keeps a password in its config: give the instance a client certificate (store_tls_cert, store_tls_key) that the cluster trusts", redactEndpoint(e))
		}
		secure = secure || u.Scheme == "https"
	}
	if o.Key == nil {
		return nil, fmt.Errorf("the etcd store needs the instance key, and this process has none: give store_key_file (a 0600 file of 32 random bytes, the same on every instance: head -c 32 /dev/urandom) or start it with the systemd credential %s", seal.KeyCredential)
	}
	sealer, err := seal.New(o.Key)
	if err != nil {
		return nil, fmt.Errorf("the etcd store's key: %w", err)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("store_tls_cert and store_tls_key go together: give both (this instance's client certificate and its key) or neither")
	}
	if o.TLSKey != "" {
		if err := seal.CheckPrivate(o.TLSKey); err != nil {
			return nil, fmt.Errorf("store_tls_key: %w", err)
		}
	}
	var tlsCfg *tls.Config
	if o.TLSCA != "" || o.TLSCert != "" || secure {
		info := transport.TLSInfo{TrustedCAFile: o.TLSCA, CertFile: o.TLSCert, KeyFile: o.TLSKey}
		if o.TLSCert == "" && o.TLSCA == "" {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		} else if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("the etcd store's TLS files (store_tls_ca, store_tls_cert, store_tls_key): %w", err)
		}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	s := &Store{prefix: o.Prefix, instance: o.Instance, timeout: timeout, log: o.Log, watchRetry: watchRetry,
		presenceTTL: presenceTTL, where: "etcd at " + strings.Join(o.Endpoints, ", ")}
	s.Items = items.New(keys{s}, sealer, timeout, s.where)
	s.cli, err = clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: timeout,
		TLS:         tlsCfg,
		// Keep-alives find a member that stopped answering (a cut
		// network) while a watch waits, so the client moves to another.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: timeout,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, s.explain("connect to", err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.cli.Close()
		if errors.Is(err, auth.ErrStoreUnreachable) {
			probe := tlsCfg
			if probe == nil {
				probe = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			if why := whyNoAnswer(o.Endpoints, probe, o.TLSCA, timeout); why != "" {
				return nil, fmt.Errorf("%s does not answer this instance: %s", s.where, why)
			}
		}
		return nil, err
	}
	return s, nil
}

// Close closes the store's connections.
func (s *Store) Close() { _ = s.cli.Close() }

// Instance is this machine's name among those that share the cluster.
func (s *Store) Instance() string { return s.instance }

// Where names the cluster, for messages.
func (s *Store) Where() string { return s.where }

// redactEndpoint drops the user information of an endpoint for a message.
func redactEndpoint(e string) string {
	if u, err := url.Parse(e); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return e
}

// migrate writes the layout's version once (a transaction on the key's
// absence, so that instances starting together write it once), and refuses
// a newer one. Version 1 needs nothing else: keys are made as they are
// written.
func (s *Store) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := retry(ctx, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(s.prefix+"schema"), "=", 0)).
			Then(clientv3.OpPut(s.prefix+"schema", strconv.Itoa(SchemaVersion))).
			Else(clientv3.OpGet(s.prefix + "schema")).Commit()
	})
	if err != nil {
		return s.explain("read the tokentray keys of", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil
	}
	v, err := strconv.Atoi(string(kvs[0].Value))
	if err != nil {
		return fmt.Errorf("%s: %s holds %q, not a layout version: it is not tokentray's; give tokentray a cluster (or a prefix) of its own", s.where, s.prefix+"schema", kvs[0].Value)
	}
	if v > SchemaVersion {
		return fmt.Errorf("%w: %s has tokentray keys of layout version %d, this tokentray knows up to %d; upgrade tokentray on this machine (another instance is newer), never roll the keys back", ErrSchemaNewer, s.where, v, SchemaVersion)
	}
	return nil
}

// itemValue is an item's value under its key.
type itemValue struct {
	Version    int64  `json:"version"`
	Generation uint64 `json:"generation"`
	// Sealed is the item sealed with the instance key; nil once deleted.
	Sealed    []byte `json:"sealed,omitempty"`
	UpdatedBy string `json:"updated_by"`
}

func (s *Store) itemKey(name, kind string) string { return s.prefix + "items/" + name + "/" + kind }

// get reads key (and what opts add), through elections (retry).
func (s *Store) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	return retry(ctx, func(ctx context.Context) (*clientv3.GetResponse, error) { return s.cli.Get(ctx, key, opts...) })
}

// keys is the etcd engine of the store's items (items.Engine): a key per
// item, replaced by a transaction on the key's mod revision as read.
type keys struct{ s *Store }

func (e keys) Read(ctx context.Context, name, kind string) (items.Row, error) {
	resp, err := e.s.get(ctx, e.s.itemKey(name, kind))
	if err != nil {
		return items.Row{}, err
	}
	if len(resp.Kvs) == 0 {
		return items.Row{}, nil
	}
	var v itemValue
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		return items.Row{}, fmt.Errorf("%s holds something that is not a tokentray item: %w", e.s.itemKey(name, kind), err)
	}
	return items.Row{Exists: true, Version: v.Version, Generation: v.Generation, Sealed: v.Sealed, Rev: resp.Kvs[0].ModRevision}, nil
}

func (e keys) Write(ctx context.Context, name, kind string, cur, next items.Row) (bool, error) {
	b, err := json.Marshal(itemValue{Version: next.Version, Generation: next.Generation, Sealed: next.Sealed, UpdatedBy: e.s.instance})
	if err != nil {
		return false, err
	}
	key := e.s.itemKey(name, kind)
	resp, err := e.s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.Rev)).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

func (e keys) Explain(doing string, err error) error { return e.s.explain(doing, err) }

// Transient: a write that an election or a member's death interrupted is
// read back and sent again (items says how its landing is told).
func (keys) Transient(err error) bool { return transient(err) }

// explain is err, from doing what to the cluster, with what to do next.
func (s *Store) explain(doing string, err error) error {
	code := status.Code(err)
	// A bound that ran out on the way through gRPC can come back as
	// Unknown with the context's words (seen with no quorum): a call that
	// did not finish in its bound, like the others.
	msg := status.Convert(err).Message()
	ranOut := code == codes.Unknown && (strings.Contains(msg, context.DeadlineExceeded.Error()) || strings.Contains(msg, context.Canceled.Error()))
	switch {
	case errors.Is(err, rpctypes.ErrPermissionDenied) || code == codes.PermissionDenied:
		return fmt.Errorf("%s: this instance's etcd user (its client certificate's common name) may not do this (%v): add that user, and grant its role readwrite on the prefix %s and nothing else (see the README, Shared store (etcd))", s.where, err, s.prefix)
	case errors.Is(err, rpctypes.ErrUserEmpty) || errors.Is(err, rpctypes.ErrAuthFailed) || code == codes.Unauthenticated:
		return fmt.Errorf("%s refused this instance (%v): give it a client certificate whose common name is an etcd user (store_tls_cert, store_tls_key), and check store_tls_ca", s.where, err)
	case ranOut || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || code == codes.Unavailable || code == codes.DeadlineExceeded ||
		errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost):
		return unreachable(fmt.Sprintf("cannot reach %s (each call waits at most %s): check that a majority of its members run and that store_endpoints are right (%v)", s.where, s.timeout, err))
	default:
		return fmt.Errorf("%s %s: %w", doing, s.where, err)
	}
}

// unreachable is the error of a cluster that does not answer: the keeper
// tells it apart (auth.ErrStoreUnreachable) from a refusal.
type unreachable string

func (e unreachable) Error() string { return string(e) }
func (e unreachable) Unwrap() error { return auth.ErrStoreUnreachable }
