package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// A server closes a kept-alive connection when its idle timeout ends, and a
// request written to it just then is lost: Go does not send a POST again,
// and a refresh with no answer has an unknown outcome. The server here drops
// every connection's second request unanswered, as if its idle timeout had
// ended just as that request arrived: each token request must go out on a
// connection of its own.
func TestATokenRequestIsNotSentOnAConnectionTheServerIsClosing(t *testing.T) {
	r := newRigWith(t, func(o *KeeperOptions) { o.HTTPClient = &http.Client{} }) // as programs have it
	var mu sync.Mutex
	requests := map[string]int{} // by the client's address: one per connection
	dropped := 0
	upstream := r.srv.srv.Config.Handler
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests[req.RemoteAddr]++
		again := requests[req.RemoteAddr] > 1
		if again {
			dropped++
		}
		mu.Unlock()
		if again {
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				_ = c.Close()
			}
			return
		}
		upstream.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	r.conn.Endpoints.TokenURL = front.URL + "/token"
	r.conn.Endpoints.RevokeURL = front.URL + "/revoke"

	r.signedIn()
	for i := range 3 {
		if err := r.k.Refresh(context.Background()); err != nil {
			t.Fatalf("refresh %d: %v", i+1, err)
		}
	}
	if out, err := r.k.Logout(context.Background(), false); err != nil || !out.Revoked {
		t.Fatalf("sign-out: %+v, %v", out, err)
	}
	r.noReuse()
	r.srv.mu.Lock()
	refreshes := r.srv.refreshes
	r.srv.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if refreshes != 3 || dropped != 0 || len(requests) != 4 {
		t.Fatalf("%d refreshes answered, %d requests sent on a used connection, %d connections; want 3, none, 4 (3 refreshes and a revocation)", refreshes, dropped, len(requests))
	}
}
