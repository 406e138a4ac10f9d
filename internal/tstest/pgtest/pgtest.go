// Package pgtest gives tests a real PostgreSQL, never a mock: the server
// that TOKENTRAY_TEST_PG names (a libpq key=value string, as
// .ci/postgres-start prints it), with a schema of the test's own.
//
// Without TOKENTRAY_TEST_PG, a test skips and says how to start one; in CI
// (CI=true) it fails instead, so that CI cannot pass without having run it.
// TOKENTRAY_TEST_PG=skip skips on purpose, in CI too: a run that says so
// in its script (the Windows tests under Wine).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokentray/tokentray/internal/tstest/needenv"
)

// Env is the variable that names the test server.
const Env = "TOKENTRAY_TEST_PG"

// How is what to run to get a server.
const How = `start a throwaway PostgreSQL with: eval "$(.ci/postgres-start /tmp/tokentray-pg)" (Debian's postgresql package; stop it with .ci/postgres-start --stop /tmp/tokentray-pg)`

// Conninfo returns the test server's connection string, or skips t (fails
// it in CI) when there is none.
func Conninfo(t testing.TB) string {
	t.Helper()
	return needenv.Value(t, Env, "PostgreSQL", How)
}

// Schema makes a schema of the test's own on the test server, dropped at
// the end of the test, and returns its name and a connection string whose
// search_path is that schema alone (in options, which libpq's tools take
// too): a store opened with it starts empty.
func Schema(t testing.TB) (conn, schema string) {
	t.Helper()
	conn = Conninfo(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema = "t_" + hex.EncodeToString(b)
	Exec(t, conn, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { Exec(t, conn, "DROP SCHEMA "+schema+" CASCADE") })
	return conn + " options='-c search_path=" + schema + "'", schema
}

// Exec runs sql on the server of conn, failing t on an error.
func Exec(t testing.TB, conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, conn)
	if err != nil {
		t.Fatalf("connect to the test server (%s): %v", Env, err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
