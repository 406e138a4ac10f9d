//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/tstest/etcdtest"
)

// etcdCluster is a three-member etcd cluster of the test's own
// (.ci/etcd-start), whose members the test kills and brings back.
type etcdCluster struct {
	root      string
	dir       string
	endpoints []string
}

func startEtcd(t *testing.T, members int) *etcdCluster {
	t.Helper()
	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	script := filepath.Join(root, ".ci", "etcd-start")
	out, err := exec.Command(script, dir, strconv.Itoa(members)).CombinedOutput()
	if err != nil {
		t.Fatalf(".ci/etcd-start: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(script, "--stop", dir).Run() })
	m := regexp.MustCompile(`TOKENTRAY_TEST_ETCD='([^']+)'`).FindSubmatch(out)
	if m == nil {
		t.Fatalf(".ci/etcd-start printed no endpoints:\n%s", out)
	}
	return &etcdCluster{root: root, dir: dir, endpoints: strings.Split(string(m[1]), ",")}
}

// etcdFor is the cluster's storeLines: every member is given every
// endpoint, as a real deployment does.
func (c *etcdCluster) etcdFor(*testing.T, *member) string {
	return fmt.Sprintf("store = \"etcd\"\nstore_endpoints = [\"%s\"]\n", strings.Join(c.endpoints, `", "`))
}

// leader is the index of the member that leads now, by its own word,
// among those that answer.
func (c *etcdCluster) leader(t *testing.T) int {
	t.Helper()
	cli := etcdtest.Client(t, c.endpoints)
	defer cli.Close()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for i, ep := range c.endpoints {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cli.Status(ctx, ep)
			cancel()
			if err == nil && st.Leader != 0 && st.Header.MemberId == st.Leader {
				return i
			}
		}
	}
	t.Fatal("no etcd member leads within 30 s")
	return -1
}

// kill ends member i with SIGKILL, as a machine's death does.
func (c *etcdCluster) kill(t *testing.T, i int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("m%d", i+1), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("etcd member %d (pid %d) did not die", i+1, pid)
		}
	}
}

// restart starts member i again, on its data, and waits until it answers.
func (c *etcdCluster) restart(t *testing.T, i int) {
	t.Helper()
	if out, err := exec.Command(filepath.Join(c.dir, fmt.Sprintf("m%d", i+1), "run")).CombinedOutput(); err != nil {
		t.Fatalf("restart etcd member %d: %v\n%s", i+1, err, out)
	}
	cli := etcdtest.Client(t, c.endpoints[i:i+1])
	defer cli.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd member %d did not answer within 30 s of its restart: %v", i+1, err)
		}
	}
}

// dump is every key and value under /tokentray/, as etcdctl prints them.
func (c *etcdCluster) dump(t *testing.T) string {
	t.Helper()
	cli := etcdtest.Client(t, c.endpoints)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/tokentray/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&b, "%s\n%s\n", kv.Key, kv.Value)
	}
	return b.String()
}

// nextRefresh is when m's keeper will refresh e2e next, by its status.
func nextRefresh(t *testing.T, m *member) time.Time {
	t.Helper()
	st := states(t, m)[0]
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(st["next_refresh"]))
	if err != nil {
		t.Fatalf("%s's next_refresh: %v (%v)", m.name, st["next_refresh"], err)
	}
	return at
}

// Issue #21: three servers keep one grant through etcd. Three real
// `tokentray serve` processes share the grant of oidc-provider (30 s access
// tokens, single-use refresh tokens with reuse detection) through a
// three-member etcd cluster (Debian's etcd, .ci/etcd-start), each given
// every member's URL. moby-1 signs in straight into the cluster; all three
// hand out its tokens, and each rotation is one refresh at the provider.
// The cluster's leader is killed (SIGKILL) a second before a refresh is
// due: a new leader is elected, the refresh happens once, and agents on
// every server never go without a token. The member comes back. Then two
// of the three members die (no quorum): still-valid tokens are handed
// out, then `token` says the store cannot be reached (exit 4), and nobody
// refreshes; once they are back, the schedule resumes by itself. Then the
// instance that took the lease for a refresh is paused (SIGSTOP, a VM
// migration) before the round trip that precedes its request, past its
// lease: another takes the refresh over, and the woken one presents
// nothing. No refresh token is presented twice, no sign-in is needed
// again, and the cluster holds no token in the clear.
func TestThreeServersKeepOneGrantThroughEtcd(t *testing.T) {
	h := setup(t)
	armed := h.withFailpoints(t)
	ec := startEtcd(t, 3)
	ms := h.members(t, ec.etcdFor, fmt.Sprintf("http://127.0.0.1:%d/token", h.port), "moby-1", "moby-2", "moby-3")
	for _, m := range ms {
		m.env = append(m.env, "TOKENTRAY_FAILPOINTS="+armed)
	}
	r := ms[0].must(t, clientSecret+"\n", "secret", "e2e")
	if !strings.Contains(r.stderr, "in etcd at http://127.0.0.1:") || !strings.Contains(r.stderr, "sealed") {
		t.Fatalf("secret said:\n%s", r.stderr)
	}
	ms[0].must(t, "", "login", "e2e", "--timeout", "90s")
	for _, m := range ms {
		m.start(t)
	}
	seen := []string{}
	tok, took := agree(t, 30*time.Second, "after the sign-in on moby-1", ms...)
	seen = append(seen, tok)
	t.Logf("all three hand out the sign-in's token after %s", took.Round(time.Millisecond))

	start := time.Now()
	base := h.events.count("grant.success", "refresh_token")
	for i := range 2 {
		h.waitRefreshes(t, 1, 2*lifetime, fmt.Sprintf("rotation %d", i+1))
		tok, took := agree(t, 15*time.Second, fmt.Sprintf("rotation %d", i+1), ms...)
		seen = append(seen, tok)
		t.Logf("rotation %d: all three hand out the new token %s after the provider's answer was seen", i+1, took.Round(time.Millisecond))
	}
	if n, most := h.events.count("grant.success", "refresh_token")-base, int(time.Since(start)/(lifetime*7/10))+1; n > most {
		t.Fatalf("%d refreshes at the provider in %s: more than one per rotation (at most %d)", n, time.Since(start).Round(time.Second), most)
	}
	noGrantErrors(t, h, "the rotations")
	if r := ms[2].run("status"); !regexp.MustCompile(`(?m)^shared store: moby-1, moby-2, moby-3 \(this one\)$`).MatchString(r.stdout) {
		t.Fatalf("status on moby-3 does not say which instances serve from the store:\n%s", r.stdout)
	}

	// The leader dies a second before the next refresh is due.
	rotated(t, h, "the rotation before the leader's death", ms...)
	// The rotation's tokens adopted by moby-1: its next refresh is ahead
	// (right after the provider's answer its status still has the old one).
	due := nextRefresh(t, ms[0])
	for deadline := time.Now().Add(30 * time.Second); time.Until(due) < 5*time.Second; due = nextRefresh(t, ms[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("moby-1's next refresh is not ahead of it: %s", due)
		}
		time.Sleep(200 * time.Millisecond)
	}
	dead := ec.leader(t) // asked first: the asking takes a while on a busy machine
	time.Sleep(time.Until(due.Add(-time.Second)))
	before := h.events.count("grant.success", "refresh_token")
	left := time.Until(due)
	ec.kill(t, dead)
	t.Logf("killed etcd member %d, the leader, %s before the refresh was due (dead %s later)", dead+1, left.Round(time.Millisecond), (left - time.Until(due)).Round(time.Millisecond))
	served(t, lifetime, "with the leader dead", ms...)
	if n := h.events.count("grant.success", "refresh_token") - before; n < 1 || n > 2 {
		t.Fatalf("%d refreshes at the provider in the %s after the leader died; want one per rotation", n, lifetime)
	}
	tok, _ = agree(t, 15*time.Second, "after the leader's death", ms...)
	seen = append(seen, tok)
	t.Logf("etcd member %d leads now", ec.leader(t)+1)
	noGrantErrors(t, h, "the leader killed")
	ec.restart(t, dead)

	// Two of three members die: no quorum. Tokens still valid are handed
	// out, then `token` exits 4 saying the store cannot be reached, and
	// nobody refreshes.
	rotated(t, h, "the rotation before the quorum is lost", ms...)
	lost := []int{(dead + 1) % 3, (dead + 2) % 3}
	for _, i := range lost {
		ec.kill(t, i)
	}
	before = h.events.count("grant.success", "refresh_token")
	var outage []int
	for end := time.Now().Add(40 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		r := ms[1].run("token", "e2e")
		outage = append(outage, r.code)
		if r.code != 0 && (r.code != 4 || !strings.Contains(r.stderr, "store")) {
			t.Fatalf("token without a quorum: exit %d: %s", r.code, r.stderr)
		}
	}
	if outage[0] != 0 || outage[len(outage)-1] != 4 {
		t.Fatalf("exit codes of token without a quorum: %v; want 0 while the token was valid, then 4", outage)
	}
	if n := h.events.count("grant.success", "refresh_token") - before; n != 0 {
		t.Fatalf("%d refreshes without a quorum: nobody may refresh without the lease", n)
	}
	for _, i := range lost {
		ec.restart(t, i)
	}
	back := time.Now()
	for _, m := range ms {
		for r := m.run("token", "e2e"); r.code != 0; r = m.run("token", "e2e") {
			if time.Since(back) > 4*time.Minute {
				t.Fatalf("%s: no token within 4 minutes of the quorum's return: exit %d: %s", m.name, r.code, r.stderr)
			}
			time.Sleep(time.Second)
		}
	}
	t.Logf("the quorum back: a token on every server again %s later", time.Since(back).Round(time.Second))
	tok, _ = agree(t, 30*time.Second, "after the quorum's return", ms...)
	seen = append(seen, tok)
	rotated(t, h, "the rotation after the quorum's return", ms...)
	noGrantErrors(t, h, "the quorum lost")

	// The instance that takes the lease for the next refresh stops at the
	// failpoint before its intent (the round trip that precedes its
	// request) and stays stopped past its lease. Once the lease ran out,
	// another takes the refresh over with the same refresh token, still
	// live (no intent was recorded: nothing to wait out). Woken, the paused
	// one finds the lease another's: it presents nothing, and hands out
	// the others' token.
	rotated(t, h, "the rotation before the pause before the intent", ms...)
	if err := os.WriteFile(filepath.Join(armed, "before-intent"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	paused := stoppedMember(t, 2*lifetime, ms)
	pausedAt := time.Now()
	rest := others(ms, paused)
	h.waitRefreshes(t, 1, auth.DefaultLeaseTTL+lifetime, "the refresh after the holder paused before its intent")
	tok, took = agree(t, 30*time.Second, "the takeover of the paused holder's refresh", rest...)
	seen = append(seen, tok)
	t.Logf("%s paused before its intent: the others refreshed %s later and agree %s after the provider's answer", paused.name, time.Since(pausedAt).Round(time.Second), took.Round(time.Millisecond))
	refreshes := h.events.count("grant.success", "refresh_token")
	_ = paused.cmd.Process.Signal(syscall.SIGCONT)
	agree(t, 30*time.Second, paused.name+" woken", ms...)
	if n := h.events.count("grant.success", "refresh_token") - refreshes; n > 1 {
		t.Fatalf("%d refreshes at the provider right after %s woke; want none but the schedule's", n, paused.name)
	}
	if b, _ := os.ReadFile(filepath.Join(paused.dir, "serve.log")); !strings.Contains(string(b), "not refreshed, since the lease may be another's now") {
		t.Fatalf("%s, woken, does not say that it did not refresh:\n%s", paused.name, b)
	}
	noGrantErrors(t, h, "the holder paused before its intent")

	// Every instance still holds the grant: none needs a sign-in.
	for i, st := range states(t, ms...) {
		if st["state"] != "connected" {
			t.Fatalf("%s: state %v at the end; want connected", ms[i].name, st["state"])
		}
	}
	dump := ec.dump(t)
	if !strings.Contains(dump, "/tokentray/items/e2e/tokens") {
		t.Fatalf("the cluster holds no tokens of e2e:\n%s", dump)
	}
	for _, tok := range seen {
		if strings.Contains(dump, tok) {
			t.Fatal("the cluster holds an access token in the clear")
		}
	}
}
