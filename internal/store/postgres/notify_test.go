package postgres

import (
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/store/sharedtest"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// After its connection was cut, the watch listens again by itself and says
// that it may have missed some (""); every write is heard again after
// (the writes themselves: sharedtest).
func TestAWatchListensAgainAfterACut(t *testing.T) {
	conn, _ := pgtest.Schema(t)
	a, _ := instance(t, conn, "moby-1", LeaseOptions{})
	b, _ := instance(t, conn, "moby-2", LeaseOptions{})
	b.watchRetry = 50 * time.Millisecond
	h := sharedtest.Watch(t, b, nil)
	// The server ends the watch's connection (a restart, a failover).
	pgtest.Exec(t, conn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN `+changedChannel+`%'`)
	h.Want(t, "", "its connection was cut")
	if err := a.SaveTokens(ctx, "p", signedIn("p"), 0); err != nil {
		t.Fatal(err)
	}
	h.Want(t, "p", "a write after the cut")
}
