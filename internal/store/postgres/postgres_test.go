package postgres

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/storetest"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

var ctx = context.Background()

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// open opens a store on the test server, in a new empty schema, and
// returns it with its connection string.
func open(t *testing.T) (*Store, string) {
	t.Helper()
	conn, _ := pgtest.Schema(t)
	s, err := Open(ctx, Options{URL: conn, Key: key(7), Instance: "test-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, conn
}

func TestThePostgreSQLStoreKeepsTheStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) auth.Store {
		s, _ := open(t)
		return s
	})
}

// query returns the first column of every row of sql on conn.
func query(t *testing.T, conn, sql string) []string {
	t.Helper()
	c, err := pgx.Connect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
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

func TestARowMovedReplayedOrChangedDoesNotOpen(t *testing.T) {
	s, conn := open(t)
	for _, name := range []string{"p", "q"} {
		if err := s.SaveTokens(ctx, name, signedIn(name), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetClientSecret(ctx, "p", "client-secret-cleartext"); err != nil {
		t.Fatal(err)
	}
	// p and q swap their sealed values: each opens only as what it was.
	pgtest.Exec(t, conn, `UPDATE tokentray_items a SET sealed = b.sealed FROM tokentray_items b
		WHERE a.kind = 'tokens' AND b.kind = 'tokens' AND a.name <> b.name`)
	noOpen(t, s, "p", "q's row under p's name")
	noOpen(t, s, "q", "p's row under q's name")
	pgtest.Exec(t, conn, `UPDATE tokentray_items a SET sealed = b.sealed FROM tokentray_items b
		WHERE a.kind = 'tokens' AND b.kind = 'tokens' AND a.name <> b.name`)
	if got, err := s.LoadTokens(ctx, "p"); err != nil || got.AccessToken != "at-p-cleartext" {
		t.Fatalf("swapped back: %v, %v", got, err)
	}
	// p's client secret as p's tokens: another kind.
	pgtest.Exec(t, conn, `UPDATE tokentray_items a SET sealed = b.sealed FROM tokentray_items b
		WHERE a.name = 'q' AND a.kind = 'tokens' AND b.name = 'p' AND b.kind = 'client-secret'`)
	noOpen(t, s, "q", "a client secret as tokens")
	// A row put back at another version, or with its generation changed.
	pgtest.Exec(t, conn, `UPDATE tokentray_items SET version = version + 1 WHERE name = 'p' AND kind = 'tokens'`)
	noOpen(t, s, "p", "a row at another version")
	pgtest.Exec(t, conn, `UPDATE tokentray_items SET version = version - 1, generation = 6 WHERE name = 'p' AND kind = 'tokens'`)
	noOpen(t, s, "p", "a row with another generation")
	pgtest.Exec(t, conn, `UPDATE tokentray_items SET generation = 5, sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1) WHERE name = 'p' AND kind = 'tokens'`)
	noOpen(t, s, "p", "a changed byte")
	// Another key opens nothing.
	other, err := Open(ctx, Options{URL: conn, Key: key(8)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got, err := other.ClientSecret(ctx, "p"); err == nil || got != "" || strings.Contains(err.Error(), "cleartext") {
		t.Fatalf("the client secret with another key: %q, %v", got, err)
	}
}

func TestADumpOfTheDatabaseHoldsNoTokenInTheClear(t *testing.T) {
	s, conn := open(t)
	if err := s.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClientSecret(ctx, "p", "client-secret-cleartext"); err != nil {
		t.Fatal(err)
	}
	rows := query(t, conn, `SELECT i::text || encode(coalesce(sealed, ''), 'escape') FROM tokentray_items i`)
	if len(rows) != 2 {
		t.Fatalf("%d rows; want 2", len(rows))
	}
	for _, r := range rows {
		if strings.Contains(r, "cleartext") {
			t.Fatalf("a row holds a token in the clear: %.200q", r)
		}
	}
	// pg_dump's output too, where the tool is installed.
	var dump []string
	if runtime.GOOS != "windows" {
		dump, _ = filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		dump = append(dump, p)
	}
	if len(dump) == 0 {
		t.Log("no pg_dump here: the rows were checked, not a dump")
		return
	}
	out, err := exec.Command(dump[0], "--data-only", "--dbname", conn).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("tokentray_items")) {
		t.Fatalf("the dump has no tokentray_items:\n%s", out)
	}
	if bytes.Contains(out, []byte("cleartext")) {
		t.Fatal("the dump holds a token in the clear")
	}
}

func TestATokenSetDeletedLeavesATombstoneAndItsVersionMovesOn(t *testing.T) {
	s, conn := open(t)
	if err := s.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTokens(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if got := query(t, conn, `SELECT version || ' ' || generation || ' ' || (sealed IS NULL) FROM tokentray_items WHERE name = 'p'`); len(got) != 1 || got[0] != "2 5 true" {
		t.Fatalf("after the deletion: %q; want one tombstone: version 2, generation 5, no value", got)
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

func TestASchemaFromANewerTokentrayIsRefused(t *testing.T) {
	_, conn := open(t)
	pgtest.Exec(t, conn, `UPDATE tokentray_schema SET version = $1`, SchemaVersion+1)
	_, err := Open(ctx, Options{URL: conn, Key: key(7)})
	if !errors.Is(err, ErrSchemaNewer) || !strings.Contains(err.Error(), "upgrade tokentray") {
		t.Fatalf("tables of a newer schema: %v; want %v saying to upgrade tokentray", err, ErrSchemaNewer)
	}
}

func TestTheSchemaIsCreatedOnceWhenInstancesStartTogether(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(ctx, Options{URL: conn, Key: key(7)})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := query(t, conn, `SELECT version::text FROM tokentray_schema`); len(got) != 1 || got[0] != strconv.Itoa(SchemaVersion) {
		t.Fatalf("schema versions: %q; want one row, %d", got, SchemaVersion)
	}
}

// Open refuses a password in the URL before it connects, and says so
// without the password (the cases are conninfo's).
func TestOpenRefusesAPasswordInStoreURL(t *testing.T) {
	for _, url := range []string{"postgres://tokentray:hunter2@127.0.0.1:1/tokentray", "host=127.0.0.1 port=1 password=hunter2"} {
		if _, err := Open(ctx, Options{URL: url, Key: key(7)}); err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "PGPASSFILE") {
			t.Errorf("Open(%s): %v", url, err)
		}
	}
}

func TestAStoreWithoutItsKeyRefusesToStart(t *testing.T) {
	_, err := Open(ctx, Options{URL: "host=127.0.0.1 user=x dbname=y"})
	if err == nil || !strings.Contains(err.Error(), "store_key_file") || !strings.Contains(err.Error(), "tokentray.key") {
		t.Fatalf("no key: %v", err)
	}
	if _, err = Open(ctx, Options{URL: "host=127.0.0.1 user=x dbname=y", Key: []byte("short")}); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("a short key: %v", err)
	}
}

func TestARefusedLoginSaysWhatToDo(t *testing.T) {
	conn := pgtest.Conninfo(t) + " user=tokentray_nobody"
	_, err := Open(ctx, Options{URL: conn, Key: key(7)})
	if err == nil || !strings.Contains(err.Error(), "refused the login") || !strings.Contains(err.Error(), "pgpass") {
		t.Fatalf("a role the server refuses: %v", err)
	}
}

// A server that accepts the connection and never answers, and one that is
// not there: each is an error within the store's bound, never a hang.
func TestAnUnreachableServerIsAnErrorWithinTheBound(t *testing.T) {
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
	closedAddr := closed.Addr().(*net.TCPAddr)
	closed.Close()
	const bound = 500 * time.Millisecond
	for _, tc := range []struct {
		name string
		port int
	}{{"silent", silent.Addr().(*net.TCPAddr).Port}, {"refusing", closedAddr.Port}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Open(ctx, Options{URL: "host=127.0.0.1 port=" + itoa(tc.port) + " user=tokentray dbname=tokentray sslmode=disable", Key: key(7), Timeout: bound})
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), "store_url's host and port") ||
				!errors.Is(err, auth.ErrStoreUnreachable) {
				t.Fatalf("%v; want cannot reach (auth.ErrStoreUnreachable), with what to check", err)
			}
			// A hang bound, not a measure: well above the bound on a busy
			// machine, well below what an unbounded connect would wait.
			if took > hangBound {
				t.Fatalf("took %v; the bound is %v", took, bound)
			}
		})
	}
}

// hangBound tells a call bounded at 500 ms from one that waits on a
// silent server (pgx's pool waits 15 s to close, a connect forever): far
// above the bound, so that a busy machine does not fail it.
const hangBound = 10 * time.Second

// An open store whose server stops answering: each call errs within its
// bound.
func TestACallToAServerThatStoppedAnsweringReturnsWithinTheBound(t *testing.T) {
	conn := pgtest.Conninfo(t)
	// A TCP proxy in front of the test server that can go silent.
	var host, port string
	for _, f := range strings.Fields(conn) {
		if v, ok := strings.CutPrefix(f, "host="); ok {
			host = v
		}
		if v, ok := strings.CutPrefix(f, "port="); ok {
			port = v
		}
	}
	if host == "" || port == "" {
		t.Skip("the test server is not given by host= and port=")
	}
	proxy := newBlackhole(t, net.JoinHostPort(host, port))
	_, schema := pgtest.Schema(t)
	s, err := Open(ctx, Options{URL: conn + " host=127.0.0.1 port=" + itoa(proxy.port()) + " options='-c search_path=" + schema + "'", Key: key(7), Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	proxy.silence()
	start := time.Now()
	_, err = s.LoadTokens(ctx, "p")
	if took := time.Since(start); err == nil || took > hangBound || !errors.Is(err, auth.ErrStoreUnreachable) {
		t.Fatalf("a load from a silent server: %v after %v; want an error within the bound", err, took)
	}
	if strings.Contains(err.Error(), "cleartext") || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("the error: %v", err)
	}
	t.Logf("load: %v after %v", err, time.Since(start))
	start = time.Now()
	s.Close()
	if took := time.Since(start); took > hangBound {
		t.Fatalf("closing the store took %v; want it within its bound", took)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// blackhole is a TCP proxy to a server that can be told to go silent: it
// then passes nothing more either way, and keeps the connections open.
type blackhole struct {
	ln     net.Listener
	mu     sync.Mutex
	silent bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); up.Close() })
			go b.pipe(c, up)
			go b.pipe(up, c)
		}
	}()
	return b
}

func (b *blackhole) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *blackhole) silence() {
	b.mu.Lock()
	b.silent = true
	b.mu.Unlock()
}

func (b *blackhole) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		b.mu.Lock()
		silent := b.silent
		b.mu.Unlock()
		if silent {
			continue // swallowed
		}
		if _, err := to.Write(buf[:n]); err != nil {
			return
		}
	}
}
