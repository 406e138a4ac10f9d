//go:build unix

package localapi

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkTokenOverSocket is one GET /v1/connections/NAME/token over the
// unix socket while a valid token is held: what a script's call costs.
func BenchmarkTokenOverSocket(b *testing.B) {
	f := servedAndRefreshed(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := f.client.Token(ctx, "p", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenOverSocket64Clients is the same with 64 concurrent clients.
func BenchmarkTokenOverSocket64Clients(b *testing.B) {
	f := servedAndRefreshed(b)
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := f.client.Token(ctx, "p", time.Minute); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// servedAndRefreshed takes the one refresh out of the measurement.
func servedAndRefreshed(b *testing.B) *fixture {
	f := serve(b, true)
	if _, err := f.client.Token(context.Background(), "p", time.Minute); err != nil {
		b.Fatal(err)
	}
	return f
}
