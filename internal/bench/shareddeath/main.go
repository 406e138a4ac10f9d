//go:build linux

// Command shareddeath measures what agents see when a keeper of a shared
// connection dies (issue #21's targets): three real `tokentray serve`
// processes share one grant of the demo provider (single-use refresh
// tokens with reuse detection, 30 s access tokens) through PostgreSQL or
// etcd, and an agent on each calls `tokentray token bench` every 200 ms and
// uses the token at the provider's API. The rounds, each over one token
// lifetime:
//
//   - reference: nobody dies;
//   - killed idle: an instance is killed (SIGKILL) right after a rotation;
//   - killed mid-refresh: the instance that took the lease for a refresh
//     is stopped there (a failpoint of the failpoints build) and killed.
//
// Each round reports the agents' calls on the instances left and how many
// of them got no token the API took, and for a death mid-refresh how long
// until another instance refreshed, beside the bound the README's formula
// gives (lease TTL + request timeout; no intent was recorded, so no rescue
// window is waited out). A refresh token presented twice fails the run.
//
// usage: internal/bench/shared-death.sh postgres|etcd [ROUNDS]
// (which starts the engine and builds tokentray with the failpoints)
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tokentray/tokentray/internal/demoprovider"
)

const (
	lifetime  = 30 * time.Second
	refreshAt = 0.5
	leaseTTL  = 5 * time.Second
	timeout   = 2 * time.Second
	every     = 200 * time.Millisecond
)

func main() {
	pg := flag.String("postgres", "", "the store_url of the PostgreSQL store")
	etcd := flag.String("etcd", "", "the store_endpoints of the etcd store (comma-separated)")
	core := flag.String("core", "", "tokentray-core built with -tags failpoints")
	rounds := flag.Int("rounds", 3, "deaths mid-refresh")
	flag.Parse()
	var store string
	switch {
	case *pg != "":
		store = fmt.Sprintf("store = \"postgres\"\nstore_url = %q\n", *pg)
	case *etcd != "":
		store = fmt.Sprintf("store = \"etcd\"\nstore_endpoints = [\"%s\"]\n", strings.Join(strings.Split(*etcd, ","), `", "`))
	default:
		log.Fatal("usage: shareddeath -postgres URL | -etcd ENDPOINTS -core PATH [-rounds N]")
	}
	work, err := os.MkdirTemp("", "shareddeath-")
	if err != nil {
		log.Fatal(err)
	}
	b := &bench{core: *core, work: work}
	err = b.setUp(store)
	if err == nil {
		err = b.run(*rounds)
	}
	b.stopAll()
	if err != nil {
		log.Fatalf("%v (the instances' homes and logs are kept in %s)", err, work)
	}
	os.RemoveAll(work)
}

type instance struct {
	name, home string
	env        []string
	cmd        *exec.Cmd
}

type bench struct {
	core, work string
	provider   *demoprovider.Server
	ms         []*instance
	armed      string

	mu    sync.Mutex
	calls []call
}

// call is one agent's call: on which instance, when, and why it got no
// token that the provider's API took (empty when it did).
type call struct {
	on     string
	at     time.Time
	failed string
}

func (b *bench) setUp(store string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	redirect := fmt.Sprintf("http://localhost:%d/callback", port)
	b.provider = &demoprovider.Server{AccessTTL: lifetime, RedirectURI: redirect}
	base, err := b.provider.Start()
	if err != nil {
		return err
	}
	// The person at the browser: approves the consent page, and the
	// provider's redirect brings the code to tokentray's loopback.
	bin := filepath.Join(b.work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte("#!/bin/sh\nexec curl -fsSL -o /dev/null -d decision=allow \"$1\"\n"), 0o755); err != nil {
		return err
	}
	key := filepath.Join(b.work, "store.key")
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if err := os.WriteFile(key, secret, 0o600); err != nil {
		return err
	}
	b.armed = filepath.Join(b.work, "failpoints")
	if err := os.Mkdir(b.armed, 0o700); err != nil {
		return err
	}
	for i := range 3 {
		m := &instance{name: fmt.Sprintf("moby-%d", i+1), home: filepath.Join(b.work, fmt.Sprintf("moby-%d", i+1))}
		for _, d := range []string{"config/tokentray", "run", "state"} {
			if err := os.MkdirAll(filepath.Join(m.home, d), 0o700); err != nil {
				return err
			}
		}
		cfg := store + fmt.Sprintf(`store_key_file = %q
instance = %q
store_lease_ttl = "%s"

[[connection]]
name = "bench"
provider = "generic"
client_id = %q
redirect_uri = %q
auth_url = "%s/authorize"
token_url = "%s/token"
refresh_at = %g
request_timeout = "%s"
`, key, m.name, leaseTTL, demoprovider.ClientID, redirect, base, base, refreshAt, timeout)
		if err := os.WriteFile(filepath.Join(m.home, "config/tokentray/config.toml"), []byte(cfg), 0o600); err != nil {
			return err
		}
		m.env = []string{"HOME=" + m.home, "XDG_CONFIG_HOME=" + filepath.Join(m.home, "config"),
			"XDG_RUNTIME_DIR=" + filepath.Join(m.home, "run"), "XDG_STATE_HOME=" + filepath.Join(m.home, "state"),
			"LANG=C.UTF-8", "PATH=" + bin + ":/usr/bin:/bin", "TOKENTRAY_FAILPOINTS=" + b.armed}
		b.ms = append(b.ms, m)
	}
	if out, err := b.tokentray(b.ms[0], demoprovider.ClientSecret+"\n", "secret", "bench"); err != nil {
		return fmt.Errorf("tokentray secret: %v\n%s", err, out)
	}
	if out, err := b.tokentray(b.ms[0], "", "login", "bench", "--timeout", "60s"); err != nil {
		return fmt.Errorf("tokentray login: %v\n%s", err, out)
	}
	for _, m := range b.ms {
		if err := b.start(m); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) tokentray(m *instance, stdin string, args ...string) (string, error) {
	cmd := exec.Command(b.core, args...)
	cmd.Env, cmd.Stdin = m.env, strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start runs m's `tokentray serve` and waits until it answers.
func (b *bench) start(m *instance) error {
	logFile, err := os.OpenFile(filepath.Join(m.home, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	m.cmd = exec.Command(b.core, "serve")
	m.cmd.Env, m.cmd.Stdout, m.cmd.Stderr = m.env, logFile, logFile
	// Killed with this program, however it ends.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := b.tokentray(m, "", "token", "bench"); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no token within 30 s of its start (%s)", m.name, filepath.Join(m.home, "serve.log"))
		}
	}
}

func (b *bench) kill(m *instance) {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}

func (b *bench) stopAll() {
	for _, m := range b.ms {
		if m.cmd != nil {
			_ = m.cmd.Process.Signal(syscall.SIGCONT)
			b.kill(m)
		}
	}
}

// agents call every instance for a token every 200 ms, and use it at the
// provider's API, until ctx ends; wait waits for their last calls.
func (b *bench) agents(ctx context.Context) (wait func()) {
	api := b.provider.URL() + "/api/me"
	var wg sync.WaitGroup
	for _, m := range b.ms {
		wg.Go(func() {
			for t := time.NewTicker(every); ; {
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				c := call{on: m.name, at: time.Now()}
				// The token is stdout; a warning on stderr leaves it usable.
				cmd := exec.Command(b.core, "token", "bench")
				var stderr strings.Builder
				cmd.Env, cmd.Stderr = m.env, &stderr
				tok, err := cmd.Output()
				switch {
				case err != nil:
					c.failed = fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
				case !usable(api, strings.TrimSpace(string(tok))):
					c.failed = "a token the provider's API refused"
				}
				b.mu.Lock()
				b.calls = append(b.calls, c)
				b.mu.Unlock()
			}
		})
	}
	return wg.Wait
}

func usable(api, tok string) bool {
	req, _ := http.NewRequest(http.MethodGet, api, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// tally counts the calls from since on the instances other than dead,
// those without a token, and says what the first of those was told.
func (b *bench) tally(since time.Time, dead *instance) (n, failed int, first string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.calls {
		if c.at.Before(since) || (dead != nil && c.on == dead.name) {
			continue
		}
		n++
		if c.failed != "" {
			if failed++; first == "" {
				first = fmt.Sprintf("%s at %s: %s", c.on, c.at.Format("15:04:05.000"), c.failed)
			}
		}
	}
	return n, failed, first
}

// committed waits for the provider's next refresh, and then until every
// instance alive hands out its token: it was committed.
func (b *bench) committed() error {
	before, err := b.tokentray(b.ms[0], "", "token", "bench")
	if err != nil {
		return fmt.Errorf("moby-1: %v: %s", err, before)
	}
	if err := b.rotation(2 * lifetime); err != nil {
		return err
	}
	for deadline := time.Now().Add(lifetime); ; time.Sleep(50 * time.Millisecond) {
		same := true
		for _, m := range b.ms {
			if tok, err := b.tokentray(m, "", "token", "bench"); err != nil || tok == before {
				same = false
			}
		}
		if same {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the instances do not all hand out the rotation's token within %s", lifetime)
		}
	}
}

// rotation waits for the provider's next refresh.
func (b *bench) rotation(within time.Duration) error {
	base := b.provider.Stats().Refreshes
	for deadline := time.Now().Add(within); b.provider.Stats().Refreshes == base; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("no refresh at the provider within %s", within)
		}
	}
	return nil
}

func (b *bench) run(rounds int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer b.agents(ctx)() // the agents start now, and are waited for once cancelled
	defer cancel()
	if err := b.rotation(2 * lifetime); err != nil {
		return err
	}
	fmt.Printf("3 instances, one grant of the demo provider: access tokens live %s, refreshed at %g of it; store_lease_ttl %s, request_timeout %s\n",
		lifetime, refreshAt, leaseTTL, timeout)
	fmt.Printf("formula: lease TTL + rescue window + request timeout = %s < lifetime × (1 − refresh_at) = %s\n",
		leaseTTL+2*timeout+timeout, time.Duration(float64(lifetime)*(1-refreshAt)))
	fmt.Printf("%-28s %14s %22s %12s %16s\n", "round", "refresh after", "bound", "agent calls", "without a token")
	report := func(what string, after, bound time.Duration, since time.Time, dead *instance) {
		n, failed, first := b.tally(since, dead)
		a, bd := "-", "-"
		if after > 0 {
			a, bd = after.Round(10*time.Millisecond).String(), bound.String()
		}
		fmt.Printf("%-28s %14s %22s %12d %16d\n", what, a, bd, n, failed)
		if first != "" {
			fmt.Printf("  the first without a token: an agent on %s\n", first)
		}
	}

	// The reference: nobody dies, one lifetime.
	since := time.Now()
	time.Sleep(lifetime)
	report("reference", 0, 0, since, nil)

	// Killed idle, right after a rotation was committed (killed between
	// the provider's answer and the commit, it would take the answer with
	// it: the lost answer, a sign-in at a provider without a reuse grace).
	if err := b.committed(); err != nil {
		return err
	}
	since = time.Now()
	victim := b.ms[2]
	b.kill(victim)
	time.Sleep(lifetime)
	report("killed idle", 0, 0, since, victim)
	if err := b.start(victim); err != nil {
		return err
	}

	// Killed mid-refresh, before its request: at the failpoint after it
	// took the lease (the next holder waits for the lease to run out), or
	// after it recorded its intent (the next holder also waits out the
	// rescue window from the intent).
	for _, p := range []struct {
		point, what string
		bound       time.Duration
	}{
		{"before-intent", "before its intent", leaseTTL + timeout},
		{"after-intent", "after its intent", leaseTTL + 2*timeout + timeout},
	} {
		for r := range rounds {
			if err := b.rotation(2 * lifetime); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(b.armed, p.point), nil, 0o600); err != nil {
				return err
			}
			victim, err := b.stopped(2 * lifetime)
			if err != nil {
				return err
			}
			since := time.Now()
			base := b.provider.Stats().Refreshes
			b.kill(victim)
			for b.provider.Stats().Refreshes == base {
				if time.Since(since) > 2*lifetime {
					return fmt.Errorf("%s: nobody refreshed within %s of %s's death", p.what, 2*lifetime, victim.name)
				}
				time.Sleep(10 * time.Millisecond)
			}
			after := time.Since(since)
			time.Sleep(time.Until(since.Add(lifetime)))
			report(fmt.Sprintf("killed %s %d", p.what, r+1), after, p.bound, since, victim)
			if err := b.start(victim); err != nil {
				return err
			}
		}
	}
	st := b.provider.Stats()
	fmt.Printf("at the provider: %d refreshes, %d refused (a refresh token presented twice is refused)\n", st.Refreshes, st.Rejected)
	if st.Rejected != 0 {
		return fmt.Errorf("the provider refused %d refreshes", st.Rejected)
	}
	return nil
}

// stopped waits until an instance stops at the failpoint.
func (b *bench) stopped(within time.Duration) (*instance, error) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, m := range b.ms {
			if m.cmd == nil {
				continue
			}
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
			if _, rest, ok := strings.Cut(string(st), ") "); ok && strings.HasPrefix(rest, "T") {
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("no instance stopped at the failpoint within %s", within)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
