//go:build e2e

package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// database is a PostgreSQL cluster of the test's own (.ci/postgres-start),
// which the test can take away and bring back.
type database struct {
	t    *testing.T
	root string // the repository
	dir  string
	conn string // libpq key=value, the role tokentray
}

func startPostgres(t *testing.T) *database {
	t.Helper()
	root, _ := filepath.Abs("../..")
	// Not t.TempDir(): PostgreSQL runs as an unprivileged user, which must
	// reach the directory.
	dir, err := os.MkdirTemp("", "tokentray-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(dir) // the script makes it, with the modes it needs
	out, err := exec.Command(filepath.Join(root, ".ci", "postgres-start"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf(".ci/postgres-start: %v\n%s", err, out)
	}
	db := &database{t: t, root: root, dir: dir}
	t.Cleanup(func() { _ = exec.Command(filepath.Join(root, ".ci", "postgres-start"), "--stop", dir).Run() })
	m := regexp.MustCompile(`TOKENTRAY_TEST_PG='([^']+)'`).FindSubmatch(out)
	if m == nil {
		t.Fatalf(".ci/postgres-start printed no connection string:\n%s", out)
	}
	db.conn = string(m[1])
	// The role's own schema, as the README has a DBA make it.
	pgtest.Exec(t, db.conn, "CREATE SCHEMA tokentray")
	return db
}

// pause stops the server (its data kept); resume starts it again.
func (db *database) pause()  { db.ctl("--pause") }
func (db *database) resume() { db.ctl("--resume") }

func (db *database) ctl(what string) {
	db.t.Helper()
	if out, err := exec.Command(filepath.Join(db.root, ".ci", "postgres-start"), what, db.dir).CombinedOutput(); err != nil {
		db.t.Fatalf(".ci/postgres-start %s: %v\n%s", what, err, out)
	}
}

// member is one machine of a shared grant: `tokentray serve` with its own
// home, config, socket and log, the store in the shared database.
type member struct {
	name string
	env  []string
	dir  string
	sock string
	cmd  *exec.Cmd
	h    *harness
}

// members makes the instances named, on db, sharing the instance key; the
// connection is the harness's (its config, below the store's lines). No
// session bus: a server's environment.
func (h *harness) members(t *testing.T, db *database, names ...string) []*member {
	t.Helper()
	key := filepath.Join(h.dir, "store.key")
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	if err := os.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	conn, err := os.ReadFile(filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "tokentray", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*member
	for _, name := range names {
		m := &member{name: name, dir: filepath.Join(h.dir, name), h: h}
		cfg := filepath.Join(m.dir, "config", "tokentray")
		run := filepath.Join(m.dir, "run")
		for _, d := range []string{cfg, run, filepath.Join(m.dir, "state")} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		top := fmt.Sprintf("store = \"postgres\"\nstore_url = %q\nstore_key_file = %q\ninstance = %q\n\n", db.conn, key, name)
		if err := os.WriteFile(filepath.Join(cfg, "config.toml"), append([]byte(top), conn...), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, kv := range h.env {
			switch k, _, _ := strings.Cut(kv, "="); k {
			case "DBUS_SESSION_BUS_ADDRESS", "HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "XDG_STATE_HOME":
			default:
				m.env = append(m.env, kv)
			}
		}
		m.env = append(m.env, "HOME="+m.dir, "XDG_CONFIG_HOME="+filepath.Join(m.dir, "config"),
			"XDG_RUNTIME_DIR="+run, "XDG_STATE_HOME="+filepath.Join(m.dir, "state"), "LANG=C.UTF-8")
		m.sock = filepath.Join(run, "tokentray", "api.sock")
		out = append(out, m)
	}
	return out
}

// start runs the member's `tokentray serve` until it is killed or the
// test ends; its log goes on (serve.log in its directory).
func (m *member) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.h.bin, "serve")
	m.cmd.Env = m.env
	logFile, err := os.OpenFile(filepath.Join(m.dir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := m.cmd
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(m.dir, "serve.log"))
			t.Logf("%s's serve.log:\n%s", m.name, b)
		}
	})
	waitServing(t, m.sock)
}

// stop ends the member's serve with SIGTERM (a refresh under way is saved
// first), as systemd stops it.
func (m *member) stop(t *testing.T) {
	t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s's serve did not stop within a minute of SIGTERM", m.name)
	}
}

func (m *member) run(args ...string) result { return m.runIn("", args...) }

func (m *member) runIn(stdin string, args ...string) result {
	r := runProgram(m.h.bin, m.env, stdin, args...)
	r.stdout = strings.TrimSpace(r.stdout)
	return r
}

func (m *member) must(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := m.runIn(stdin, args...)
	t.Logf("%s$ tokentray %s → exit %d\n%s", m.name, strings.Join(args, " "), r.code, r.stderr)
	if r.code != 0 {
		t.Fatalf("%s: tokentray %v: exit %d", m.name, args, r.code)
	}
	return r
}

// agree waits until every member hands out the same access token, and
// returns it with how long that took.
func agree(t *testing.T, within time.Duration, what string, ms ...*member) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		var toks []string
		for _, m := range ms {
			toks = append(toks, m.run("token", "e2e").stdout)
		}
		same := toks[0] != ""
		for _, tok := range toks[1:] {
			same = same && tok == toks[0]
		}
		if same {
			return toks[0], time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: the instances did not agree on the access token within %s", what, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rotated waits for the next refresh at the provider and for its tokens to
// be handed out by every member: committed, and the lease released.
func rotated(t *testing.T, h *harness, what string, ms ...*member) {
	t.Helper()
	h.waitRefreshes(t, 1, 2*lifetime, what)
	agree(t, 15*time.Second, what, ms...)
}

// served calls `tokentray token e2e` on each member every half second for
// d and fails at the first call that is not exit 0 with a token: agents on
// those machines never go without.
func served(t *testing.T, d time.Duration, what string, ms ...*member) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, m := range ms {
			if r := m.run("token", "e2e"); r.code != 0 || r.stdout == "" {
				t.Fatalf("%s: an agent on %s got exit %d: %s", what, m.name, r.code, r.stderr)
			}
		}
	}
}

// noGrantErrors fails if the provider refused a grant: a refresh token
// presented twice is refused (and the grant revoked) by oidc-provider's
// reuse detection.
func noGrantErrors(t *testing.T, h *harness, what string) {
	t.Helper()
	h.sync()
	if errs := h.events.errors(); len(errs) != 0 {
		t.Fatalf("%s: the provider refused: %v", what, errs)
	}
}

// Issue #21: three servers keep one grant through PostgreSQL. Three real
// `tokentray serve` processes, each with its own home and instance name,
// share the grant of oidc-provider (30 s access tokens, single-use refresh
// tokens with reuse detection) through a PostgreSQL cluster of the test's
// own. One signs in (its command line, before the servers run); all three
// hand out its tokens; each rotation is one refresh at the provider, and
// the others hand out its result without a request of their own. One is
// killed (SIGKILL), one is paused beyond its tokens' lifetime (SIGSTOP,
// then SIGCONT), both idle; the database is taken away and brought back;
// all three are restarted: no refresh token is presented twice, no sign-in
// is needed again, and the database holds no token in the clear. (A holder
// killed or paused mid-refresh is tested in internal/store/postgres, with
// keepers over the real database; here it is still to come.)
func TestThreeServersKeepOneGrantThroughPostgreSQL(t *testing.T) {
	h := setup(t)
	db := startPostgres(t)
	ms := h.members(t, db, "moby-1", "moby-2", "moby-3")
	// Signed in on moby-1 before the servers run, with its browser: the
	// command keeps the tokens itself, in the shared store, under its
	// lease.
	ms[0].must(t, clientSecret+"\n", "secret", "e2e")
	ms[0].must(t, "", "login", "e2e", "--timeout", "90s")
	for _, m := range ms {
		m.start(t)
	}
	var seen []string
	tok, took := agree(t, 30*time.Second, "after the sign-in on moby-1", ms...)
	seen = append(seen, tok)
	t.Logf("all three hand out the sign-in's token after %s", took.Round(time.Millisecond))

	// Rotations: one refresh at the provider each; the others hand out
	// its result without asking the provider.
	start := time.Now()
	base := h.events.count("grant.success", "refresh_token")
	for i := range 2 {
		h.waitRefreshes(t, 1, 2*lifetime, fmt.Sprintf("rotation %d", i+1))
		tok, took := agree(t, 15*time.Second, fmt.Sprintf("rotation %d", i+1), ms...)
		seen = append(seen, tok)
		t.Logf("rotation %d: all three hand out the new token %s after the provider's answer was seen", i+1, took.Round(time.Millisecond))
	}
	n := h.events.count("grant.success", "refresh_token") - base
	if most := int(time.Since(start)/(lifetime*7/10)) + 1; n > most {
		t.Fatalf("%d refreshes at the provider in %s: more than one per rotation (at most %d)", n, time.Since(start).Round(time.Second), most)
	}
	noGrantErrors(t, h, "the rotations")

	// moby-1 is killed, idle (right after a rotation was committed): the
	// others go on.
	rotated(t, h, "the rotation before the kill", ms...)
	_ = ms[0].cmd.Process.Kill()
	_ = ms[0].cmd.Wait()
	before := h.events.count("grant.success", "refresh_token")
	served(t, lifetime+5*time.Second, "with moby-1 dead", ms[1], ms[2])
	if h.events.count("grant.success", "refresh_token") == before {
		t.Fatal("nobody refreshed after moby-1 died")
	}
	noGrantErrors(t, h, "moby-1 killed")

	// moby-2 is paused (idle) beyond its tokens' lifetime; moby-3 carries
	// on alone. Woken, moby-2 presents nothing stale and hands out
	// moby-3's tokens.
	rotated(t, h, "the rotation before the pause", ms[1], ms[2])
	_ = ms[1].cmd.Process.Signal(syscall.SIGSTOP)
	served(t, 40*time.Second, "with moby-2 paused", ms[2])
	_ = ms[1].cmd.Process.Signal(syscall.SIGCONT)
	tok, took = agree(t, 30*time.Second, "moby-2 woken", ms[1], ms[2])
	seen = append(seen, tok)
	t.Logf("moby-2, woken after 40 s, hands out moby-3's token after %s", took.Round(time.Millisecond))
	noGrantErrors(t, h, "moby-2 paused")

	// The database goes away for 40 s: still-valid tokens are handed out,
	// then `token` says the store cannot be reached (exit 4), and nobody
	// refreshes; once it is back, the schedule resumes by itself.
	rotated(t, h, "the rotation before the outage", ms[1], ms[2])
	db.pause()
	var outage []int
	for end := time.Now().Add(40 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		r := ms[2].run("token", "e2e")
		outage = append(outage, r.code)
		if r.code != 0 && (r.code != 4 || !strings.Contains(r.stderr, "store")) {
			t.Fatalf("token without the database: exit %d: %s", r.code, r.stderr)
		}
	}
	if outage[0] != 0 || outage[len(outage)-1] != 4 {
		t.Fatalf("exit codes of token during the outage: %v; want 0 while the token was valid, then 4", outage)
	}
	db.resume()
	resumed := time.Now()
	for {
		if r := ms[2].run("token", "e2e"); r.code == 0 {
			break
		}
		if time.Since(resumed) > 4*time.Minute {
			t.Fatalf("no token within 4 minutes of the database's return; status: %s", ms[2].run("status").stderr)
		}
		time.Sleep(time.Second)
	}
	t.Logf("the database back: a token again after %s (the keepers' retry backoff)", time.Since(resumed).Round(time.Second))
	tok, _ = agree(t, 30*time.Second, "after the database's return", ms[1], ms[2])
	seen = append(seen, tok)
	noGrantErrors(t, h, "the database's outage")

	// All three restarted: nothing lost, no sign-in.
	for _, m := range ms[1:] {
		m.stop(t)
	}
	for _, m := range ms {
		m.start(t)
	}
	tok, _ = agree(t, 30*time.Second, "after a restart of all three", ms...)
	seen = append(seen, tok)
	h.waitRefreshes(t, 1, 2*lifetime, "after the restart")
	agree(t, 15*time.Second, "the rotation after the restart", ms...)
	noGrantErrors(t, h, "the restart")

	// A dump of the database holds no token and no client secret.
	var dump strings.Builder
	for _, table := range []string{"tokentray_items", "tokentray_leases", "tokentray_schema"} {
		out, err := exec.Command("psql", db.conn+" options='-c search_path=tokentray'", "-XAtc", "SELECT t::text FROM "+table+" t").CombinedOutput()
		if err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
		dump.Write(out)
	}
	if !strings.Contains(dump.String(), "moby-") {
		t.Fatalf("the dump shows no row written by an instance:\n%s", dump.String())
	}
	for _, s := range append(seen, clientSecret) {
		if strings.Contains(dump.String(), s) {
			t.Fatal("a token or the client secret is in the database in the clear")
		}
	}
}
