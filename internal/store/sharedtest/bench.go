package sharedtest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
)

// The benchmarks of issue #21's targets that run in one process, over a
// real engine: three instances are three keepers, each with its own store
// and lease, as three machines would have. Each reports, beside its
// figure, a reference measured in the same run: these machines are noisy.
// A store's own benchmarks call them with its engine.

// percentile is the p-th percentile of ds (sorted in place).
func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BurstDuringARefresh is a benchmark on e: the tokens are due, and 200 callers
// spread over three instances ask for a token valid for 5 minutes at once.
// Exactly one token request reaches the provider per burst (one holder of
// the lease refreshes; the others adopt its commit under the lease); the
// callers' p50 and p99 are reported beside the provider's own time for one
// request on a connection of its own, as a refresh sends it (a refresh can
// be no faster), measured on the same server. One burst before the
// measured ones is not counted: a running instance has its connections to
// the database open, and the first burst of a new process opens them (a
// PostgreSQL backend is a process of its own); one burst is a hundredth of
// the samples at -benchtime 100x, so it alone would be the p99.
func BurstDuringARefresh(b *testing.B, e Engine) {
	p, srv, ac := SharedGrant(b, e)
	setup, _ := e.Open(b, "setup", LeaseOptions{})
	var keepers []*auth.Keeper
	for _, name := range []string{"moby-1", "moby-2", "moby-3"} {
		k, _ := KeeperOf(b, e, name, ac, srv, auth.SystemClock{})
		keepers = append(keepers, k)
	}
	const callers = 200
	var all []time.Duration
	var provider []time.Duration
	requests := 0
	oneConnection := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := -1; i < b.N; i++ { // -1: the burst that opens the connections
		if i == 0 {
			b.ResetTimer()
		}
		b.StopTimer()
		// Due: the stored tokens have 2 minutes left, less than asked for.
		stored, err := setup.LoadTokens(ctx, ac.Name)
		if err != nil {
			b.Fatal(err)
		}
		due := *stored
		due.ObtainedAt = time.Now().Add(-58 * time.Minute)
		due.Lifetime = time.Hour
		due.Generation = auth.NextGeneration(auth.StoredGeneration(stored), time.Now())
		if err := setup.SaveTokens(ctx, ac.Name, &due, auth.StoredGeneration(stored)); err != nil {
			b.Fatal(err)
		}
		for _, k := range keepers {
			k.StoreChanged(ctx)
		}
		// The reference: one request to the provider, as a refresh sends it.
		start := time.Now()
		resp, err := oneConnection.PostForm(srv.URL+"/token", map[string][]string{"grant_type": {"client_credentials"}})
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if i >= 0 {
			provider = append(provider, time.Since(start))
		}
		p.SetLive(due.RefreshToken.Reveal()) // the reference request rotated nothing that counts
		before, _ := p.Requests()
		b.StartTimer()

		var mu sync.Mutex
		var wg sync.WaitGroup
		gate := make(chan struct{})
		lat := make([]time.Duration, 0, callers)
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				start := time.Now()
				tok, err := keepers[c%len(keepers)].Token(ctx, 5*time.Minute)
				d := time.Since(start)
				if err != nil || tok.AccessToken == due.AccessToken {
					b.Errorf("caller %d: %v, %v", c, tok, err)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}()
		}
		close(gate)
		wg.Wait()
		b.StopTimer()
		n, reused := p.Requests()
		if i >= 0 {
			all = append(all, lat...)
			requests += n - before
		}
		if len(reused) > 0 {
			b.Fatalf("a refresh token was presented twice: %v", reused)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(requests)/float64(b.N), "requests/burst")
	b.ReportMetric(ms(percentile(all, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(provider, 0.5)), "provider-p50-ms")
}

// NewsOfACommit is a benchmark on e: one instance commits new tokens; how
// long until another hands them out (the engine's news of the commit, the
// watch, the keeper's read of the store), beside roundTrip, one round trip
// to the same engine (the reference, alternating).
func NewsOfACommit(b *testing.B, e Engine, roundTrip func() error) {
	_, srv, ac := SharedGrant(b, e)
	a, _ := e.Open(b, "moby-1", LeaseOptions{})
	s, l := e.Open(b, "moby-2", LeaseOptions{})
	k := keeperOn(b, s, l, ac, srv, auth.SystemClock{})
	wctx, cancel := context.WithCancel(ctx)
	watching := make(chan struct{})
	var once sync.Once
	go s.(auth.StoreWatcher).WatchTokens(wctx, func(name string) {
		once.Do(func() { close(watching) })
		if name == "" || name == ac.Name {
			k.StoreChanged(wctx)
		}
	})
	b.Cleanup(cancel)
	// Listening once a write is heard.
	for ready := false; !ready; {
		_ = a.SetClientSecret(ctx, "ready", "x")
		select {
		case <-watching:
			ready = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	var news, trip []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stored, err := a.LoadTokens(ctx, ac.Name)
		if err != nil {
			b.Fatal(err)
		}
		next := *stored
		next.AccessToken = auth.Secret(fmt.Sprintf("at-news-%d", i))
		next.ObtainedAt, next.Lifetime = time.Now(), time.Hour
		next.Generation = auth.NextGeneration(auth.StoredGeneration(stored), time.Now())
		start := time.Now()
		if err := a.SaveTokens(ctx, ac.Name, &next, auth.StoredGeneration(stored)); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		for {
			tok, err := k.Token(ctx, time.Minute)
			if err == nil && tok.AccessToken == next.AccessToken {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("moby-2 never handed out the committed token: %v, %v", tok, err)
			}
			time.Sleep(100 * time.Microsecond)
		}
		news = append(news, time.Since(committed))
		start = time.Now()
		if err := roundTrip(); err != nil {
			b.Fatal(err)
		}
		trip = append(trip, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(news, 0.5)), "news-p50-ms")
	b.ReportMetric(ms(percentile(news, 0.99)), "news-p99-ms")
	b.ReportMetric(ms(percentile(news, 1)), "news-max-ms")
	b.ReportMetric(ms(percentile(trip, 0.5)), "roundtrip-p50-ms")
}
