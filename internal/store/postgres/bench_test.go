package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tokentray/tokentray/internal/store/sharedtest"
	"github.com/tokentray/tokentray/internal/tstest/pgtest"
)

// The shared store's benchmarks (internal/store/sharedtest) on the real
// database (TOKENTRAY_TEST_PG):
//
//	go test -run XXX -bench Shared -benchtime 20x ./internal/store/postgres/

// BenchmarkSharedBurstDuringARefresh: see sharedtest.BurstDuringARefresh.
func BenchmarkSharedBurstDuringARefresh(b *testing.B) {
	conn, _ := pgtest.Schema(b)
	sharedtest.BurstDuringARefresh(b, engine{conn})
}

// BenchmarkSharedNewsOfACommit: see sharedtest.NewsOfACommit; the
// reference is a SELECT 1 on the same server.
func BenchmarkSharedNewsOfACommit(b *testing.B) {
	conn, _ := pgtest.Schema(b)
	pc, err := pgx.Connect(ctx, conn)
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(context.Background())
	sharedtest.NewsOfACommit(b, engine{conn}, func() error {
		var one int
		return pc.QueryRow(ctx, "SELECT 1").Scan(&one)
	})
}
