package etcd

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokentray/tokentray/internal/alerts"
)

var _ alerts.Claimer = (*Store)(nil)

// told is an alert's key's value: the latest generation told of, and by
// which instance. It holds no token.
type told struct {
	Generation uint64 `json:"generation"`
	By         string `json:"told_by"`
	// Claim is random, so that a claim whose answer was lost is known
	// for this instance's own when read back.
	Claim string `json:"claim"`
}

// ClaimAlert records that this instance tells alert kind of name for
// generation, unless that kind was told for this generation or a later one
// (alerts.Claimer): one key per connection and kind, moved forward by a
// compare-and-set on its revision, so that every instance but the first
// finds it taken.
func (s *Store) ClaimAlert(ctx context.Context, name, kind string, generation uint64) (won bool, by string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.prefix + "alerts/" + name + "/" + kind
	var a attempt
	for tries := 0; tries < maxAttempts; {
		got, err := s.get(ctx, key)
		if err != nil {
			return false, "", fmt.Errorf("claim the %s alert of %s: %w", kind, name, s.explain("read", err))
		}
		var rev int64
		if len(got.Kvs) > 0 {
			if a.landed(got.Kvs[0].Value) {
				return true, s.instance, nil // its answer was lost
			}
			var t told
			if json.Unmarshal(got.Kvs[0].Value, &t) == nil && t.Generation >= generation {
				return false, t.By, nil
			}
			rev = got.Kvs[0].ModRevision
		}
		b, _ := json.Marshal(told{Generation: generation, By: s.instance, Claim: rand.Text()})
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
		switch {
		case transient(err) && ctx.Err() == nil:
			a.sent = append(a.sent, b)
			pause(ctx)
			continue
		case err != nil:
			return false, "", fmt.Errorf("claim the %s alert of %s: %w", kind, name, s.explain("write", err))
		case resp.Succeeded:
			return true, s.instance, nil
		}
		tries++
	}
	return false, "", fmt.Errorf("claim the %s alert of %s: the key kept changing", kind, name)
}
