// Package etcdtest gives tests a real etcd, never a mock: the cluster that
// TOKENTRAY_TEST_ETCD names (its client URLs, comma-separated, as
// .ci/etcd-start prints them), with a key prefix of the test's own.
//
// Without TOKENTRAY_TEST_ETCD, a test skips and says how to start one; in
// CI (CI=true) it fails instead, so that CI cannot pass without having run
// it. TOKENTRAY_TEST_ETCD=skip skips on purpose, in CI too.
package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tokentray/tokentray/internal/tstest/needenv"
)

// Env is the variable that names the test cluster.
const Env = "TOKENTRAY_TEST_ETCD"

// How is what to run to get a cluster.
const How = `start a throwaway etcd with: eval "$(.ci/etcd-start /tmp/tokentray-etcd)" (Debian's etcd-server package; stop it with .ci/etcd-start --stop /tmp/tokentray-etcd)`

// Endpoints returns the test cluster's client URLs, or skips t (fails it
// in CI) when there is none.
func Endpoints(t testing.TB) []string {
	t.Helper()
	return strings.Split(needenv.Value(t, Env, "etcd", How), ",")
}

// Prefix returns a key prefix of the test's own on the test cluster,
// whose keys are deleted at the end of the test, and the cluster's client
// URLs.
func Prefix(t testing.TB) (endpoints []string, prefix string) {
	t.Helper()
	endpoints = Endpoints(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix = "/t_" + hex.EncodeToString(b) + "/"
	t.Cleanup(func() {
		cli := Client(t, endpoints)
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, prefix, clientv3.WithPrefix())
	})
	return endpoints, prefix
}

// Client is a client of the test cluster, for a test's own looks and
// changes; the caller closes it.
func Client(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("a client of the test cluster (%s): %v", Env, err)
	}
	return cli
}
