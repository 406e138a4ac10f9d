//go:build unix

package localapi_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/internal/localapi"
)

// FuzzRequest sends arbitrary HTTP requests to the API's handlers: no
// panic, no 5xx for a malformed request, and never a token in an error.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /v1/connections HTTP/1.1\r\nHost: tokentray\r\n\r\n",
		"GET /v1/connections/p/token?min_valid=2m HTTP/1.1\r\nHost: tokentray\r\n\r\n",
		"GET /v1/connections/p/token?min_valid=-1s HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /v1/connections/%2e%2e/token HTTP/1.1\r\nHost: t\r\n\r\n",
		"POST /v1/connections/p/refresh?stale=zz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
		"DELETE /v1/connections/p HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /v1/connections/p/token?min_valid=9999999999h HTTP/1.1\r\nHost: t\r\n\r\n",
	} {
		f.Add(seed)
	}
	fx := serve(f, true)
	handler := localapi.HandlerOf(fx.server)
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		req.RequestURI = ""
		rec := httptest.NewRecorder()
		// A caller may be made to wait (for the promises made to earlier
		// ones, as long as they run): as a client that gives up soon. The
		// fuzzer's inputs share one server, so a wait of one would
		// otherwise be the next one's hang.
		ctx, cancel := context.WithTimeout(localapi.WithUnknownPeer(req.Context()), 250*time.Millisecond)
		defer cancel()
		handler.ServeHTTP(rec, req.WithContext(ctx))
		body := rec.Body.Bytes()
		if rec.Code >= 500 && !bytes.Contains(body, []byte(`"error"`)) {
			t.Fatalf("%q: HTTP %d without a JSON error: %s", raw, rec.Code, body)
		}
		if rec.Code >= 400 && bytes.Contains(body, []byte("at-")) {
			t.Fatalf("%q: a token in an error answer: %s", raw, body)
		}
	})
}
