package etcd

import (
	"context"
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
	for range maxAttempts {
		got, err := s.cli.Get(ctx, key)
		if err != nil {
			return false, "", fmt.Errorf("claim the %s alert of %s: %w", kind, name, s.explain("read", err))
		}
		var rev int64
		if len(got.Kvs) > 0 {
			var t told
			if json.Unmarshal(got.Kvs[0].Value, &t) == nil && t.Generation >= generation {
				return false, t.By, nil
			}
			rev = got.Kvs[0].ModRevision
		}
		b, _ := json.Marshal(told{Generation: generation, By: s.instance})
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return false, "", fmt.Errorf("claim the %s alert of %s: %w", kind, name, s.explain("write", err))
		}
		if resp.Succeeded {
			return true, s.instance, nil
		}
	}
	return false, "", fmt.Errorf("claim the %s alert of %s: the key kept changing", kind, name)
}
