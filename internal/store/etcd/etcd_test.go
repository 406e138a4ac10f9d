package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/storetest"
	"github.com/tokentray/tokentray/internal/tstest/etcdtest"
)

var ctx = context.Background()

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// cluster is a prefix of the test cluster of the test's own.
type cluster struct {
	endpoints []string
	prefix    string
}

func newCluster(t testing.TB) cluster {
	e, p := etcdtest.Prefix(t)
	return cluster{e, p}
}

// open opens a store on c as the named instance.
func (c cluster) open(t testing.TB, instance string) *Store {
	t.Helper()
	return c.openWithKey(t, instance, key(7))
}

// openWithKey is open with the key k.
func (c cluster) openWithKey(t testing.TB, instance string, k []byte) *Store {
	t.Helper()
	s, err := Open(ctx, Options{Endpoints: c.endpoints, Key: k, Instance: instance, Prefix: c.prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// client is a client of c's cluster for the test's own looks and changes.
func (c cluster) client(t testing.TB) *clientv3.Client {
	cli := etcdtest.Client(t, c.endpoints)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// put writes value under c's prefix.
func (c cluster) put(t testing.TB, key, value string) {
	t.Helper()
	if _, err := c.client(t).Put(ctx, c.prefix+key, value); err != nil {
		t.Fatal(err)
	}
}

// get reads a key under c's prefix ("" when there is none).
func (c cluster) get(t testing.TB, key string) string {
	t.Helper()
	resp, err := c.client(t).Get(ctx, c.prefix+key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func TestTheEtcdStoreKeepsTheStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) auth.Store { return newCluster(t).open(t, "test-1") })
}

func signedIn(mark string) *auth.TokenSet {
	return &auth.TokenSet{AccessToken: auth.Secret("at-" + mark + "-cleartext"), RefreshToken: auth.Secret("rt-" + mark + "-cleartext"),
		TokenType: "bearer", ObtainedAt: time.Now(), Lifetime: time.Hour, Generation: 5}
}

// noOpen checks that loading name's tokens fails with the seal's error and
// hands out no token.
func noOpen(t *testing.T, s *Store, name, why string) {
	t.Helper()
	got, err := s.LoadTokens(ctx, name)
	if err == nil || got != nil || !strings.Contains(err.Error(), "cannot be opened with this instance's key") {
		t.Fatalf("%s: loaded %v, %v; want an error that it does not open", why, got, err)
	}
	if strings.Contains(err.Error(), "cleartext") {
		t.Fatalf("%s: the error holds a token: %v", why, err)
	}
}

// edit rewrites the item under key with change.
func (c cluster) edit(t *testing.T, key string, change func(v *itemValue)) {
	t.Helper()
	var v itemValue
	if err := json.Unmarshal([]byte(c.get(t, key)), &v); err != nil {
		t.Fatal(err)
	}
	change(&v)
	b, _ := json.Marshal(v)
	c.put(t, key, string(b))
}

func TestAValueMovedReplayedOrChangedDoesNotOpen(t *testing.T) {
	c := newCluster(t)
	s := c.open(t, "test-1")
	for _, name := range []string{"p", "q"} {
		if err := s.SaveTokens(ctx, name, signedIn(name), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetClientSecret(ctx, "p", "client-secret-cleartext"); err != nil {
		t.Fatal(err)
	}
	p, q := c.get(t, "items/p/tokens"), c.get(t, "items/q/tokens")
	c.put(t, "items/p/tokens", q)
	c.put(t, "items/q/tokens", p)
	noOpen(t, s, "p", "q's value under p's name")
	noOpen(t, s, "q", "p's value under q's name")
	c.put(t, "items/p/tokens", p)
	c.put(t, "items/q/tokens", q)
	if got, err := s.LoadTokens(ctx, "p"); err != nil || got.AccessToken != "at-p-cleartext" {
		t.Fatalf("put back: %v, %v", got, err)
	}
	c.put(t, "items/q/tokens", c.get(t, "items/p/client-secret"))
	noOpen(t, s, "q", "a client secret as tokens")
	c.edit(t, "items/p/tokens", func(v *itemValue) { v.Version++ })
	noOpen(t, s, "p", "a value at another version")
	c.edit(t, "items/p/tokens", func(v *itemValue) { v.Version--; v.Generation = 6 })
	noOpen(t, s, "p", "a value with another generation")
	c.edit(t, "items/p/tokens", func(v *itemValue) { v.Generation = 5; v.Sealed[20] ^= 1 })
	noOpen(t, s, "p", "a changed byte")
	other, err := Open(ctx, Options{Endpoints: c.endpoints, Key: key(8), Prefix: c.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got, err := other.ClientSecret(ctx, "p"); err == nil || got != "" || strings.Contains(err.Error(), "cleartext") {
		t.Fatalf("the client secret with another key: %q, %v", got, err)
	}
}

// Neither the keys' values nor a snapshot of the whole cluster (etcdctl
// snapshot save, what a backup is) hold a token in the clear.
func TestASnapshotOfTheClusterHoldsNoTokenInTheClear(t *testing.T) {
	c := newCluster(t)
	s := c.open(t, "test-1")
	if err := s.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClientSecret(ctx, "p", "client-secret-cleartext"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.client(t).Get(ctx, c.prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 3 { // the layout's version, the tokens, the secret
		t.Fatalf("%d keys; want 3", len(resp.Kvs))
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Value, []byte("cleartext")) {
			t.Fatalf("%s holds a token in the clear", kv.Key)
		}
	}
	etcdctl, err := exec.LookPath("etcdctl")
	if err != nil {
		t.Log("no etcdctl here: the keys were checked, not a snapshot")
		return
	}
	snap := filepath.Join(t.TempDir(), "snap.db")
	cmd := exec.Command(etcdctl, "--endpoints", c.endpoints[0], "snapshot", "save", snap)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, out)
	}
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(c.prefix+"items/p/tokens")) {
		t.Fatal("the snapshot does not hold the tokens' key")
	}
	if bytes.Contains(b, []byte("cleartext")) {
		t.Fatal("the snapshot holds a token in the clear")
	}
}

func TestATokenSetDeletedLeavesATombstoneAndItsVersionMovesOn(t *testing.T) {
	c := newCluster(t)
	s := c.open(t, "test-1")
	if err := s.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTokens(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	var v itemValue
	if err := json.Unmarshal([]byte(c.get(t, "items/p/tokens")), &v); err != nil || v.Version != 2 || v.Generation != 5 || v.Sealed != nil {
		t.Fatalf("after the deletion: %+v, %v; want a tombstone: version 2, generation 5, no value", v, err)
	}
	if err := s.SaveTokens(ctx, "p", signedIn("late"), 5); !errors.Is(err, auth.ErrGenerationMoved) {
		t.Fatalf("a refresh of the deleted generation: %v; want %v", err, auth.ErrGenerationMoved)
	}
	next := signedIn("next")
	next.Generation = 9
	if err := s.SaveTokens(ctx, "p", next, auth.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadTokens(ctx, "p"); err != nil || got.Version != 3 || got.Generation != 9 {
		t.Fatalf("the sign-in after: %v, %v; want version 3, generation 9", got, err)
	}
}

func TestALayoutFromANewerTokentrayIsRefused(t *testing.T) {
	c := newCluster(t)
	c.open(t, "test-1")
	if got := c.get(t, "schema"); got != "1" {
		t.Fatalf("the layout's version: %q", got)
	}
	c.put(t, "schema", "2")
	_, err := Open(ctx, Options{Endpoints: c.endpoints, Key: key(7), Prefix: c.prefix})
	if !errors.Is(err, ErrSchemaNewer) || !strings.Contains(err.Error(), "upgrade tokentray") {
		t.Fatalf("keys of a newer layout: %v; want %v saying to upgrade tokentray", err, ErrSchemaNewer)
	}
}

func TestOpenRefusesWhatItCannotUse(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Key: key(7)}, "store_endpoints = ["},
		{Options{Endpoints: []string{"127.0.0.1:2379"}, Key: key(7)}, "https://HOST:2379"},
		{Options{Endpoints: []string{"https://root:hunter2@127.0.0.1:2379"}, Key: key(7)}, "never keeps a password"},
		{Options{Endpoints: []string{"https://127.0.0.1:2379"}}, "store_key_file"},
		{Options{Endpoints: []string{"https://127.0.0.1:2379"}, Key: []byte("short")}, "32 bytes"},
		{Options{Endpoints: []string{"https://127.0.0.1:2379"}, Key: key(7), TLSCert: "/x.pem"}, "go together"},
		{Options{Endpoints: []string{"https://127.0.0.1:2379"}, Key: key(7), TLSCA: "/nonexistent/ca.pem"}, "store_tls_ca"},
	} {
		_, err := Open(ctx, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%+v): %v; want it to say %q", tc.o.Endpoints, err, tc.want)
		}
	}
}

// A cluster that accepts the connection and never answers, and one that is
// not there: each is an error within the store's bound, never a hang.
func TestAnUnreachableClusterIsAnErrorWithinTheBound(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct{ name, addr string }{{"silent", silent.Addr().String()}, {"refusing", closedAddr}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Open(ctx, Options{Endpoints: []string{"http://" + tc.addr}, Key: key(7), Timeout: 500 * time.Millisecond})
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), "store_endpoints") ||
				!errors.Is(err, auth.ErrStoreUnreachable) {
				t.Fatalf("%v; want cannot reach (auth.ErrStoreUnreachable), with what to check", err)
			}
			// A hang bound, not a measure: far above the 500 ms bound.
			if took > 10*time.Second {
				t.Fatalf("took %v; the bound is 500 ms", took)
			}
		})
	}
}

// Every way a call can fail to be answered in its bound is the error of
// an unreachable store (the keeper hands out valid tokens, then `token`
// exits 4 saying the store cannot be reached), never "provider
// unreachable": with no quorum, gRPC reported the call's own deadline as
// Unknown, with the context's words.
func TestEveryWayOfNoAnswerIsAnUnreachableStore(t *testing.T) {
	s := &Store{where: "etcd at http://127.0.0.1:1", timeout: 5 * time.Second}
	for _, err := range []error{
		status.Error(codes.Unknown, "context deadline exceeded"),
		status.Error(codes.Unavailable, "connection refused"),
		status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
		context.DeadlineExceeded,
		rpctypes.ErrNoLeader,
		rpctypes.ErrTimeoutDueToLeaderFail,
	} {
		if got := s.explain("read", err); !errors.Is(got, auth.ErrStoreUnreachable) || !strings.Contains(got.Error(), "cannot reach") {
			t.Errorf("%v: %v; want an unreachable store", err, got)
		}
	}
	if got := s.explain("read", status.Error(codes.Unknown, "something else")); errors.Is(got, auth.ErrStoreUnreachable) {
		t.Errorf("another Unknown error: %v; want it not called unreachable", got)
	}
}
