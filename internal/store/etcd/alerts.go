package etcd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokentray/tokentray/internal/alerts"
)

var _ alerts.Claimer = (*Store)(nil)

// maxClaims bounds the tries of a claim whose key another instance's
// claim changed between the read and the transaction.
const maxClaims = 8

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
	var sent [][]byte // claims whose answer was lost: each unique (Claim)
	for tries := 0; tries < maxClaims; {
		got, err := s.get(ctx, key)
		if err != nil {
			return false, "", fmt.Errorf("claim the %s alert of %s: %w", kind, name, s.explain("read", err))
		}
		var rev int64
		if len(got.Kvs) > 0 {
			if slices.ContainsFunc(sent, func(b []byte) bool { return bytes.Equal(b, got.Kvs[0].Value) }) {
				return true, s.instance, nil // its answer was lost, and it landed
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
			sent = append(sent, b)
			t := time.NewTimer(100 * time.Millisecond)
			select { // a moment for the election, within the call's bound
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
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
