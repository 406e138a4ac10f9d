//go:build unix

package localapi

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tokentray/tokentray/client/apitype"
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

// BenchmarkEventStreamDelivery is the time from a line published on the
// hub to its arrival at a client of GET /v1/events over the socket: how
// late a window or a script learns of a change. Reports the median and the
// 99th percentile.
func BenchmarkEventStreamDelivery(b *testing.B) {
	f := serve(b, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrived := make(chan time.Time, 1)
	ready := make(chan struct{})
	go func() {
		_ = f.client.Events(ctx, func(e apitype.Event) error {
			switch {
			case e.Type == apitype.EventReady:
				close(ready)
			case e.Type == apitype.EventLog && e.Text == "ping":
				arrived <- time.Now()
			}
			return nil
		})
	}()
	<-ready
	var took []time.Duration
	for b.Loop() {
		sent := time.Now()
		f.hub.Log("", "ping")
		took = append(took, (<-arrived).Sub(sent))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "median-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}
