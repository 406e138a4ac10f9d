// Package needenv is how a test that needs a real server (PostgreSQL,
// etcd) finds it: a variable names it. Without the variable the test
// skips and says how to start one; in CI (CI=true) it fails instead, so
// that CI cannot pass without having run it. The value "skip" skips on
// purpose, in CI too: a run that says so in its script (the Windows tests
// under Wine).
package needenv

import (
	"os"
	"testing"
)

// Value returns the variable env, or skips t (fails it in CI) when it is
// not set; what names the server, how says how to start one.
func Value(t testing.TB, env, what, how string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "skip" {
		t.Skipf("%s=skip: the %s tests are skipped on purpose in this run", env, what)
	}
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set, and CI=true: the %s tests must run in CI; %s", env, what, how)
		}
		t.Skipf("%s is not set: no %s to test against; %s", env, what, how)
	}
	return v
}
