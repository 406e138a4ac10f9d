package etcd

import (
	"testing"

	"github.com/tokentray/tokentray/internal/store/sharedtest"
)

// The shared store's benchmarks (internal/store/sharedtest) on the real
// cluster (TOKENTRAY_TEST_ETCD):
//
//	go test -run XXX -bench Shared -benchtime 20x ./internal/store/etcd/

// BenchmarkSharedBurstDuringARefresh: see sharedtest.BurstDuringARefresh.
func BenchmarkSharedBurstDuringARefresh(b *testing.B) {
	sharedtest.BurstDuringARefresh(b, newCluster(b))
}

// BenchmarkSharedNewsOfACommit: see sharedtest.NewsOfACommit; the
// reference is a read of one key on the same cluster.
func BenchmarkSharedNewsOfACommit(b *testing.B) {
	c := newCluster(b)
	cli := c.client(b)
	sharedtest.NewsOfACommit(b, c, func() error {
		_, err := cli.Get(ctx, c.prefix+"schema")
		return err
	})
}
