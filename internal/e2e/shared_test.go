//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	// px is its way to the database, which the test can cut.
	px *cutProxy
}

// storeLines gives a member the config lines that choose its shared
// store (store = …, and where it is).
type storeLines func(t *testing.T, m *member) string

// postgresFor is db's storeLines: each member reaches the database through
// a TCP proxy of its own, which the test can cut.
func (db *database) postgresFor(t *testing.T, m *member) string {
	port := regexp.MustCompile(`port=(\d+)`).FindStringSubmatch(db.conn)
	if port == nil {
		t.Fatalf("no port in %q", db.conn)
	}
	m.px = startCutProxy(t, "127.0.0.1:"+port[1])
	storeURL := strings.Replace(db.conn, port[0], "port="+fmt.Sprint(m.px.ln.Addr().(*net.TCPAddr).Port), 1)
	return fmt.Sprintf("store = \"postgres\"\nstore_url = %q\n", storeURL)
}

// members makes the instances named, on the store that store chooses,
// sharing the instance key; the connection is the harness's (its config,
// below the store's lines). No session bus: a server's environment.
func (h *harness) members(t *testing.T, store storeLines, tokenURL string, names ...string) []*member {
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
	// The token endpoint through the test's gate (the issuer stays the
	// provider's: a token_url set wins over its metadata).
	conn = regexp.MustCompile(`(?m)^token_url = .*$`).ReplaceAll(conn, []byte(fmt.Sprintf("token_url = %q", tokenURL)))
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
		// Each instance's on_alert appends to a file of its own: an
		// alert is told by one of them.
		top := store(t, m) + fmt.Sprintf("store_key_file = %q\ninstance = %q\non_alert = %q\n\n",
			key, name, "cat >> "+filepath.Join(m.dir, "alerts.jsonl"))
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

// gate is a proxy in front of the provider's token endpoint that can hold
// the next refresh: its request before the provider sees it, or the
// provider's answer (the refresh token already rotated) before the client
// sees it. What it holds is dropped (the client that sent it is killed
// meanwhile), or an answer is delivered late (to a client that was paused).
type gate struct {
	target string
	srv    *httptest.Server
	// client opens a connection per request: a kept-alive one that the
	// provider (Node, 5 s) closes as a request is sent on it fails that
	// request, and a POST is not sent again (a code exchange failed with
	// 502 that way in a CI run).
	client *http.Client

	mu   sync.Mutex
	mode gateMode
	// presented are the refresh tokens of the refreshes that passed, in
	// order (a test reuses a spent one to have the grant revoked).
	presented []string
	held      chan struct{} // closed once the refresh is held
	drop      chan struct{} // closed to drop it
	deliver   chan struct{} // closed to deliver a held answer
}

type gateMode int

const (
	gatePass gateMode = iota
	gateHoldRequest
	gateHoldAnswer
)

func startGate(t *testing.T, target string) *gate {
	g := &gate{target: target, client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	g.srv = httptest.NewServer(g)
	t.Cleanup(func() {
		g.mu.Lock()
		if g.drop != nil {
			select {
			case <-g.drop:
			default:
				close(g.drop)
			}
		}
		g.mu.Unlock()
		g.srv.Close()
	})
	return g
}

// hold makes the gate hold the next refresh as mode says; held is closed
// once it does, and drop ends the hold.
func (g *gate) hold(mode gateMode) (held <-chan struct{}, drop func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode, g.held, g.drop, g.deliver = mode, make(chan struct{}), make(chan struct{}), make(chan struct{})
	d := g.drop
	return g.held, sync.OnceFunc(func() { close(d) })
}

// spent is the refresh tokens presented through the gate so far.
func (g *gate) spent() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.presented...)
}

// answerHeld delivers the answer that the gate holds (gateHoldAnswer).
func (g *gate) answerHeld() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.deliver)
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	mode := gatePass
	var held, drop, deliver chan struct{}
	g.mu.Lock()
	if form.Get("grant_type") == "refresh_token" {
		mode, held, drop, deliver = g.mode, g.held, g.drop, g.deliver
		g.mode = gatePass
		g.presented = append(g.presented, form.Get("refresh_token"))
	}
	g.mu.Unlock()
	wait := func() {
		close(held)
		select {
		case <-deliver:
			return
		case <-drop:
		case <-r.Context().Done():
		}
		panic(http.ErrAbortHandler) // the connection closes with no answer
	}
	if mode == gateHoldRequest {
		wait()
	}
	req, err := http.NewRequest(r.Method, g.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header = r.Header.Clone()
	resp, err := g.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if mode == gateHoldAnswer {
		wait()
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// cutProxy is a TCP proxy between one member and the database that can cut
// it off as a network partition does: no byte passes either way, and no
// connection closes, until it is healed.
type cutProxy struct {
	ln     net.Listener
	target string

	mu   sync.Mutex
	cond *sync.Cond
	cut  bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(func() { p.setCut(false); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			p.mu.Lock()
			for p.cut {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	p.cond.Broadcast()
	p.mu.Unlock()
}

// holder is the member that holds the lease on e2e now, by the database.
func holder(t *testing.T, db *database, ms []*member) *member {
	t.Helper()
	c, err := pgx.Connect(context.Background(), db.conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var h string
	if err := c.QueryRow(context.Background(), `SELECT holder FROM tokentray.tokentray_leases WHERE name = 'e2e' AND expires_at > now()`).Scan(&h); err != nil {
		t.Fatalf("the lease's holder: %v", err)
	}
	for _, m := range ms {
		if strings.HasPrefix(h, fmt.Sprintf("%s/%d/", m.name, m.cmd.Process.Pid)) {
			return m
		}
	}
	t.Fatalf("the lease is held by %s, none of the members", h)
	return nil
}

// states is each member's status of e2e (status --json).
func states(t *testing.T, ms ...*member) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range ms {
		var list []map[string]any
		r := m.run("status", "--json")
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
			t.Fatalf("%s: status --json: exit %d %v\n%s%s", m.name, r.code, err, r.stdout, r.stderr)
		}
		out = append(out, list[0])
	}
	return out
}

// lostAnswer waits up to 3 minutes for every member of rest to say
// needs_reauth with the reason that the refresh answer was lost with gone
// (killed or paused after the provider answered), and returns the first's
// status.
func lostAnswer(t *testing.T, gone *member, rest []*member) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		sts := states(t, rest...)
		all := true
		for _, st := range sts {
			all = all && st["state"] == "needs_reauth"
		}
		if all {
			for i, st := range sts {
				next, _ := st["next"].(map[string]any)
				if cause, _ := next["cause"].(string); !strings.Contains(cause, "The refresh answer was lost with instance "+gone.name+" at ") {
					t.Fatalf("%s: needs_reauth without the reason: %v", rest[i].name, st)
				}
			}
			return sts[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("not needs_reauth with the reason within 3 minutes of what happened to %s: %v", gone.name, sts)
		}
	}
}

// withFailpoints builds h's tokentray again with the failpoints compiled
// in (internal/failpoint). A process given TOKENTRAY_FAILPOINTS=armed
// stops at a point once a file of its name is in armed.
func (h *harness) withFailpoints(t *testing.T) (armed string) {
	t.Helper()
	root, _ := filepath.Abs("../..")
	build := exec.Command("go", "build", "-tags", "failpoints", "-o", h.dir+string(filepath.Separator), "./cmd/tokentray", "./cmd/tokentray-core")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", build.Args, err, out)
	}
	armed = filepath.Join(h.dir, "failpoints")
	if err := os.Mkdir(armed, 0o700); err != nil {
		t.Fatal(err)
	}
	return armed
}

// stoppedMember waits until one of ms has stopped (at a failpoint), and
// returns it.
func stoppedMember(t *testing.T, within time.Duration, ms []*member) *member {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, m := range ms {
			// /proc/PID/stat: "PID (comm) STATE …"; T is stopped by a signal.
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
			if _, rest, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(rest, "T") {
				return m
			}
		}
	}
	t.Fatalf("no instance stopped at the failpoint within %s", within)
	return nil
}

// others is ms without m.
func others(ms []*member, m *member) []*member {
	var out []*member
	for _, o := range ms {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

// Issue #21: three servers keep one grant through PostgreSQL. Three real
// `tokentray serve` processes, each with its own home and instance name,
// share the grant of oidc-provider (30 s access tokens, single-use refresh
// tokens with reuse detection) through a PostgreSQL cluster of the test's
// own, each instance through a TCP proxy the test can cut. One signs in
// with the file store and joins with `store copy`; all three hand out its
// tokens; each rotation is one refresh at the provider, and the others
// hand out its result without a request of their own. One is killed
// (SIGKILL), one is paused beyond its tokens' lifetime (SIGSTOP, then
// SIGCONT), both idle; the database is taken away and brought back; all
// three are restarted; one is cut off from the database: no refresh token
// is presented twice, no sign-in is needed again, and the database holds
// no token in the clear. Then, through a gate in front of the token
// endpoint, the lease holder is killed mid-refresh: before its request
// reached the provider (the next holder takes the refresh over once the
// lease ran out, with the same refresh token), and after the provider
// answered, before the commit (one needs_reauth on every instance, with
// the reason; nothing presented again; on_alert told once). Signed in
// again, the holder is paused after the provider answered, past its lease
// and the window: the same end, and its late commit overwrites nothing.
func TestThreeServersKeepOneGrantThroughPostgreSQL(t *testing.T) {
	h := setup(t)
	db := startPostgres(t)
	gt := startGate(t, fmt.Sprintf("http://127.0.0.1:%d", h.port))
	ms := h.members(t, db.postgresFor, gt.srv.URL+"/token", "moby-1", "moby-2", "moby-3")
	// Signed in on moby-1 before the servers run, with its browser, when
	// it was a server of its own with the file store. It joins the others
	// with `store copy`, no sign-in: the copied refresh token is the one
	// the rotations below present.
	cfgPath := filepath.Join(ms[0].dir, "config", "tokentray", "config.toml")
	shared, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	own := regexp.MustCompile(`(?s)^store = "postgres".*?\n\n`).ReplaceAll(shared, []byte("store = \"file\"\n\n"))
	if err := os.WriteFile(cfgPath, own, 0o600); err != nil {
		t.Fatal(err)
	}
	ms[0].must(t, clientSecret+"\n", "secret", "e2e")
	ms[0].must(t, "", "login", "e2e", "--timeout", "90s")
	if err := os.WriteFile(cfgPath, shared, 0o600); err != nil {
		t.Fatal(err)
	}
	r := ms[0].must(t, "", "store", "copy", "--from", "file")
	if !strings.Contains(r.stderr, "e2e: moved its tokens and client secret from the file store to the PostgreSQL store") {
		t.Fatalf("store copy said:\n%s", r.stderr)
	}
	left, _ := filepath.Glob(filepath.Join(ms[0].dir, "state", "tokentray", "e2e.*"))
	if len(left) > 0 {
		t.Fatalf("the file store still holds %v after the copy", left)
	}
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
	// Every instance's status names the instance that refreshed last.
	sts := states(t, ms...)
	for i, st := range sts {
		if by, _ := st["last_refresh_by"].(string); !strings.HasPrefix(by, "moby-") || by != sts[0]["last_refresh_by"] {
			t.Fatalf("%s: last_refresh_by %q; want the same instance on all three", ms[i].name, st["last_refresh_by"])
		}
	}
	if r := ms[2].run("status"); !strings.Contains(r.stdout, "LAST REFRESH") || !strings.Contains(r.stdout, " by "+sts[0]["last_refresh_by"].(string)) {
		t.Fatalf("status on moby-3 does not say which instance refreshed:\n%s", r.stdout)
	} else if !regexp.MustCompile(`(?m)^shared store: moby-1, moby-2, moby-3 \(this one\)$`).MatchString(r.stdout) {
		t.Fatalf("status on moby-3 does not say which instances serve from the store:\n%s", r.stdout)
	}
	for i, st := range sts {
		sh, _ := st["shared"].(map[string]any)
		if sh["instance"] != ms[i].name || fmt.Sprint(sh["instances"]) != "[moby-1 moby-2 moby-3]" {
			t.Fatalf("%s: status --json says %v of the store; want itself and all three", ms[i].name, sh)
		}
	}

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

	// moby-3 is cut off from the database (a partition: no byte passes,
	// no connection closes): the others carry on through a rotation; it
	// takes no lease, so it refreshes nothing and presents nothing, hands
	// out the token it holds while it is valid, then says the store
	// cannot be reached. Healed, it hands out the others' token.
	rotated(t, h, "the rotation before the partition", ms...)
	ms[2].px.setCut(true)
	cutAt := time.Now()
	before = h.events.count("grant.success", "refresh_token")
	var cut []int
	for end := time.Now().Add(lifetime + 15*time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		for _, m := range ms[:2] {
			if r := m.run("token", "e2e"); r.code != 0 || r.stdout == "" {
				t.Fatalf("with moby-3 cut off: an agent on %s got exit %d: %s", m.name, r.code, r.stderr)
			}
		}
		r := ms[2].run("token", "e2e")
		cut = append(cut, r.code)
		if r.code != 0 && (r.code != 4 || !strings.Contains(r.stderr, "store")) {
			t.Fatalf("token on moby-3, cut off from the database: exit %d: %s", r.code, r.stderr)
		}
	}
	if cut[len(cut)-1] != 4 {
		t.Fatalf("exit codes of token on moby-3 while cut off: %v; want 4 (the store cannot be reached) once its token expired", cut)
	}
	if h.events.count("grant.success", "refresh_token") == before {
		t.Fatal("nobody refreshed while moby-3 was cut off")
	}
	ms[2].px.setCut(false)
	tok, took = agree(t, 2*time.Minute, "moby-3 healed", ms...)
	seen = append(seen, tok)
	t.Logf("moby-3 cut off for %s, then healed: all three agree %s later", (time.Since(cutAt) - took).Round(time.Second), took.Round(time.Millisecond))
	noGrantErrors(t, h, "the partition")

	// The holder is killed after its intent and before its request
	// reached the provider (the gate holds it, then drops it). Once its
	// lease runs out (45 s), the next holder finds the intent, older than
	// the rescue window, takes the refresh over and refreshes with the
	// same refresh token, still live.
	rotated(t, h, "the rotation before the holder's death", ms...)
	held, drop := gt.hold(gateHoldRequest)
	select {
	case <-held:
	case <-time.After(2 * lifetime):
		t.Fatal("no refresh came to the gate")
	}
	victim := holder(t, db, ms)
	_ = victim.cmd.Process.Kill()
	_ = victim.cmd.Wait()
	drop()
	h.waitRefreshes(t, 1, 3*time.Minute, "the refresh after the holder died before its request")
	tok, took = agree(t, 30*time.Second, "after the takeover", others(ms, victim)...)
	seen = append(seen, tok)
	t.Logf("%s killed before its request: the others refreshed with the same refresh token and agree %s after the provider's answer", victim.name, took.Round(time.Millisecond))
	noGrantErrors(t, h, "the holder's death before its request")
	victim.start(t)
	rotated(t, h, "the rotation after the takeover", ms...)

	// The holder is killed after the provider answered (the refresh token
	// rotated) and before its commit: the answer dies with it. The next
	// holder presents the old refresh token after the window, oidc-provider
	// refuses it (and revokes the grant): each instance says needs_reauth,
	// once, with the reason, and nobody presents it again.
	held, drop = gt.hold(gateHoldAnswer)
	select {
	case <-held:
	case <-time.After(2 * lifetime):
		t.Fatal("no refresh came to the gate")
	}
	victim = holder(t, db, ms)
	_ = victim.cmd.Process.Kill()
	_ = victim.cmd.Wait()
	drop()
	rest := others(ms, victim)
	t.Logf("the answer lost with %s: %v", victim.name, lostAnswer(t, victim, rest)["next"])
	h.sync()
	refused := len(h.events.errors())
	time.Sleep(lifetime)
	if h.sync(); len(h.events.errors()) != refused || refused != 1 {
		t.Fatalf("%d refusals at the provider, then %d: want exactly one (the old refresh token, presented once)", refused, len(h.events.errors()))
	}
	for _, m := range rest {
		if r := m.run("token", "e2e"); r.code != 3 {
			t.Fatalf("%s: token after the lost answer: exit %d, want 3 (sign in again): %s", m.name, r.code, r.stderr)
		}
	}
	// The needs_reauth is alerted once for the cluster: each instance
	// that saw it either ran on_alert or logged which one did.
	for _, m := range rest {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			b, _ := os.ReadFile(filepath.Join(m.dir, "serve.log"))
			if regexp.MustCompile(`(alert hook ran|alert told by another instance)[^\n]*kind=needs_reauth`).Match(b) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s logged neither its on_alert's run nor another instance's for the needs_reauth", m.name)
			}
		}
	}
	told := 0
	for _, m := range ms {
		b, _ := os.ReadFile(filepath.Join(m.dir, "alerts.jsonl"))
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.Contains(line, `"kind":"needs_reauth"`) {
				told++
				t.Logf("%s's on_alert told: %s", m.name, line)
			}
		}
	}
	if told != 1 {
		t.Fatalf("the needs_reauth was told by on_alert %d times across the instances; want once", told)
	}

	// Signed in again (the servers stopped: the command signs in with the
	// browser and keeps the tokens in the database), all three started.
	for _, m := range rest {
		m.stop(t)
	}
	ms[0].must(t, "", "login", "e2e", "--timeout", "90s")
	for _, m := range ms {
		m.start(t)
	}
	agree(t, 30*time.Second, "after the new sign-in", ms...)

	// The holder is paused (SIGSTOP, a VM migration) after the provider
	// answered and before its commit, past its lease and the rescue
	// window; the answer reaches it while it cannot read. The next holder
	// presents the old refresh token once the window ends: refused, one
	// needs_reauth naming the paused instance. Woken, the paused one finds
	// the generation moved: its late commit fails its compare-and-set,
	// overwrites nothing, and nothing more is presented.
	rotated(t, h, "the rotation before the pause mid-refresh", ms...)
	h.sync()
	refusedBefore := len(h.events.errors())
	held, _ = gt.hold(gateHoldAnswer)
	select {
	case <-held:
	case <-time.After(2 * lifetime):
		t.Fatal("no refresh came to the gate")
	}
	paused := holder(t, db, ms)
	_ = paused.cmd.Process.Signal(syscall.SIGSTOP)
	gt.answerHeld()
	pausedAt := time.Now()
	rest = others(ms, paused)
	lostAnswer(t, paused, rest)
	_ = paused.cmd.Process.Signal(syscall.SIGCONT)
	t.Logf("%s paused %s after the provider's answer; the others said needs_reauth, naming it", paused.name, time.Since(pausedAt).Round(time.Second))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		if st := states(t, paused)[0]; st["state"] == "needs_reauth" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, woken, is not needs_reauth within a minute: %v", paused.name, states(t, paused)[0])
		}
	}
	// Whatever the woken one tries (its commit, within or past the
	// window), every instance stays at needs_reauth, and the provider saw
	// one refusal: the old refresh token, presented once.
	for end := time.Now().Add(lifetime); time.Now().Before(end); time.Sleep(2 * time.Second) {
		for i, st := range states(t, ms...) {
			if st["state"] != "needs_reauth" {
				t.Fatalf("%s after %s woke: %v; a late commit overwrote the store, or a refresh followed", ms[i].name, paused.name, st)
			}
		}
	}
	if h.sync(); len(h.events.errors()) != refusedBefore+1 {
		t.Fatalf("%d refusals at the provider for the pause; want exactly one", len(h.events.errors())-refusedBefore)
	}

	// A dump of the database holds no token and no client secret.
	var dump strings.Builder
	for _, table := range []string{"tokentray_items", "tokentray_leases", "tokentray_schema", "tokentray_alerts"} {
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
