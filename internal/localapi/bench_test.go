//go:build unix

package localapi_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
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

// BenchmarkProxyBesideDirect is what the proxy adds to an API call: each
// iteration makes one GET straight to an httptest API (keep-alive, as an
// agent's HTTP client would) and one through the socket's proxy to the
// same API, alternating, so both see the same machine at the same moment.
// It reports the median and 99th percentile of each, and the proxy's
// throughput with 16 concurrent clients beside the direct one.
func BenchmarkProxyBesideDirect(b *testing.B) {
	payload := strings.Repeat("x", 2048) // a small JSON answer's size
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, payload)
	}))
	defer api.Close()
	f := serveConn(b, true, func(c *auth.Connection) { c.Endpoints.APIBase = api.URL })
	if _, err := f.client.Token(context.Background(), "p", time.Minute); err != nil {
		b.Fatal(err)
	}
	socket := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", f.path)
	}}}
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(c *http.Client, u string) {
		resp, err := c.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(payload)) {
			b.Fatalf("%s: %d, %d bytes", u, resp.StatusCode, n)
		}
	}
	viaProxy, straight := "http://tokentray/v1/connections/p/api/items", api.URL+"/items"
	var proxied, plain []time.Duration
	for b.Loop() {
		t0 := time.Now()
		get(direct, straight)
		t1 := time.Now()
		get(socket, viaProxy)
		plain, proxied = append(plain, t1.Sub(t0)), append(proxied, time.Since(t1))
	}
	slices.Sort(plain)
	slices.Sort(proxied)
	b.ReportMetric(float64(plain[len(plain)/2].Microseconds()), "direct-median-µs")
	b.ReportMetric(float64(plain[len(plain)*99/100].Microseconds()), "direct-p99-µs")
	b.ReportMetric(float64(proxied[len(proxied)/2].Microseconds()), "proxy-median-µs")
	b.ReportMetric(float64(proxied[len(proxied)*99/100].Microseconds()), "proxy-p99-µs")
	throughput := func(c *http.Client, u string) float64 {
		const clients, each = 16, 200
		start := time.Now()
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					get(c, u)
				}
			}()
		}
		wg.Wait()
		return clients * each / time.Since(start).Seconds()
	}
	b.ReportMetric(throughput(direct, straight), "direct-req/s")
	b.ReportMetric(throughput(socket, viaProxy), "proxy-req/s")
}
