package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/items"
)

// watchRetry is how long WatchTokens waits before it watches again after
// its watch ended with an error (Store.watchRetry, which tests shorten).
const watchRetry = 5 * time.Second

// presenceTTL is the life in seconds of an instance's key at the store
// without a renewal: an instance that dies leaves the list within it.
const presenceTTL = 30

// WatchTokens calls changed with the name of each connection whose items
// another instance (or this one) wrote, until ctx ends; and with "" each
// time it watches again after its watch ended with an error, since writes
// may have gone unheard meanwhile (auth.StoreWatcher). etcd's client
// resumes a watch cut by a member's death on another member, from the
// revision it had reached, so nothing is missed then; a watch that cannot
// resume (its revision compacted, or the member without a leader) ends
// here, and is started again.
//
// While it watches, this instance is at the store: a key of its own under
// /tokentray/instances/, attached to an etcd lease that a keep-alive
// renews (Presence).
func (s *Store) WatchTokens(ctx context.Context, changed func(name string)) {
	go s.present(ctx)
	prefix := s.prefix + "items/"
	for again := false; ctx.Err() == nil; again = true {
		// Once the watch is in place, a watch started again says that
		// writes may have gone unheard before it.
		ready := func() {}
		if again {
			ready = func() { changed("") }
		}
		err := s.watchOnce(ctx, prefix, ready, changed)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("not told of tokens written by other instances until watching again (each reads the store when it next refreshes)", "retry", s.watchRetry, "err", err)
		t := time.NewTimer(s.watchRetry)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *Store) watchOnce(ctx context.Context, prefix string, ready func(), changed func(string)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify()) {
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.Created {
			ready()
		}
		for _, ev := range resp.Events {
			name, _, _ := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), prefix), "/")
			changed(name)
		}
	}
	return ctx.Err()
}

// present keeps this instance's key at the store until ctx ends: made
// again whenever its etcd lease ran out (the cluster was out of reach for
// longer than presenceTTL), and revoked at the end. It renews the lease
// with one call every third of its life, from a timer of its own: etcd's
// client keeps leases alive from loops that wake twice a second, which an
// idle instance must not pay for.
func (s *Store) present(ctx context.Context) {
	holder, err := auth.NewHolder(s.instance)
	if err != nil {
		s.log.Warn("could not record this instance among those serving from the store (status lists it not)", "err", err)
		return
	}
	key := s.prefix + "instances/" + holder
	every := time.Duration(s.presenceTTL) * time.Second / 3
	var lease clientv3.LeaseID
	defer func() {
		if lease != 0 {
			c, cancel := context.WithTimeout(context.Background(), s.timeout)
			_, _ = s.cli.Revoke(c, lease)
			cancel()
		}
	}()
	for {
		if lease == 0 {
			var err error
			if lease, err = s.register(ctx, key); err != nil && ctx.Err() == nil {
				s.log.Warn("could not record this instance among those serving from the store (status lists it not)", "err", err)
			}
		} else {
			c, cancel := context.WithTimeout(ctx, s.timeout)
			_, err := s.cli.KeepAliveOnce(c, lease)
			cancel()
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				lease = 0 // ran out while the cluster was away: made again now
				continue
			}
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Store) register(ctx context.Context, key string) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	grant, err := retry(ctx, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) {
		return s.cli.Grant(ctx, s.presenceTTL)
	})
	if err != nil {
		return 0, s.explain("write", err)
	}
	if _, err := retry(ctx, func(ctx context.Context) (*clientv3.PutResponse, error) {
		return s.cli.Put(ctx, key, s.instance, clientv3.WithLease(grant.ID))
	}); err != nil {
		return 0, s.explain("write", err)
	}
	return grant.ID, nil
}

// Presence is who is at the store now (auth.PresenceTeller): the instances
// whose key is alive, and each connection's lease holder and unsettled
// refresh intent, read at one revision.
func (s *Store) Presence(ctx context.Context) (*auth.Presence, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	p := &auth.Presence{Leases: map[string]string{}, Intents: map[string]auth.Intent{}}
	resp, err := retry(ctx, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.prefix+"instances/", clientv3.WithPrefix()),
			clientv3.OpGet(s.prefix+"leases/", clientv3.WithPrefix()),
			clientv3.OpGet(s.prefix+"intents/", clientv3.WithPrefix())).Commit()
	})
	if err != nil {
		return nil, fmt.Errorf("read who is at the store: %w", s.explain("read", err))
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		if name := string(kv.Value); !slices.Contains(p.Instances, name) {
			p.Instances = append(p.Instances, name)
		}
	}
	slices.Sort(p.Instances)
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		p.Leases[strings.TrimPrefix(string(kv.Key), s.prefix+"leases/")] = auth.InstanceOf(string(kv.Value))
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		name := strings.TrimPrefix(string(kv.Key), s.prefix+"intents/")
		var v intentValue
		if json.Unmarshal(kv.Value, &v) != nil {
			continue
		}
		// An intent counts only on the generation stored now: one on an
		// older generation was committed, and its holder died before
		// clearing it (auth.Lease), which leaves nothing to wait for.
		item, err := keys{s}.Read(ctx, name, items.KindTokens)
		if err != nil {
			return nil, fmt.Errorf("read who is at the store: %w", s.explain("read", err))
		}
		if item.Sealed == nil || item.Generation != v.Generation {
			continue
		}
		age, err := s.clockAge(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("read who is at the store: %w", err)
		}
		p.Intents[name] = auth.Intent{Instance: auth.InstanceOf(v.Holder), Holder: v.Holder, Generation: v.Generation, Age: age, At: time.Now().Add(-age)}
	}
	return p, nil
}
