// Package proxy sends an agent's API calls to a connection's API with the
// connection's access token added, so that the agent never holds a token:
// an AI agent that has none cannot be talked into printing it, and no
// agent, in any language, needs a line of OAuth. It implements, once, what
// the customer drew: API call → 401? → refresh → retry → still 401? →
// alert; a sign-in needed → the request may wait for it instead of
// failing.
//
// Only the connection's API base is reachable: the host comes from the
// config, and a path that would leave the base is refused. It is no open
// proxy.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
)

// Defaults of a Proxy.
const (
	// DefaultMaxReplay is the largest request body kept to send again
	// after a 401 or a 429/503; a larger one streams through once.
	DefaultMaxReplay = 1 << 20
	// DefaultMaxRetryAfter is the longest Retry-After honoured by waiting
	// (once, for idempotent methods); a longer one goes back to the agent.
	DefaultMaxRetryAfter = 30 * time.Second
	// MaxWait is the longest a request may wait for a sign-in.
	MaxWait = time.Hour
)

// KeyHeader carries the key of a connection's loopback port (proxy_port):
// a client that cannot speak to the unix socket proves with it that it may
// use the connection.
const KeyHeader = "Tokentray-Proxy-Key"

// WaitHeader and WaitParam let a request wait for a sign-in (a duration:
// "5m") when the connection needs one, instead of failing at once. The
// parameter is taken out of the query before the request goes on.
const (
	WaitHeader = "Tokentray-Wait"
	WaitParam  = "tokentray_wait"
)

// Proxy forwards requests to the APIs of connections.
type Proxy struct {
	// Transport sends the requests (default: http.DefaultTransport's
	// settings, in a transport of its own).
	Transport http.RoundTripper
	Clock     auth.Clock
	// MaxReplay, MaxRetryAfter: see the defaults.
	MaxReplay     int64
	MaxRetryAfter time.Duration

	once   sync.Once
	mu     sync.Mutex
	queues map[string]*queue // by connection
	// refusedFresh is, by connection, the hash of the access token the API
	// refused right after a refresh had brought it.
	refusedFresh sync.Map
}

// Error is a failure of the proxy itself (not of the API, whose answers go
// back as they came): Status is the HTTP status, Code the API's error code.
type Error struct {
	Status  int
	Code    string
	Message string
	Hint    string
}

func (e *Error) Error() string { return e.Message }

func (p *Proxy) init() {
	p.once.Do(func() {
		if p.Transport == nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.MaxIdleConnsPerHost = 64
			t.ResponseHeaderTimeout = 5 * time.Minute
			p.Transport = t
		}
		if p.Clock == nil {
			p.Clock = auth.SystemClock{}
		}
		if p.MaxReplay <= 0 {
			p.MaxReplay = DefaultMaxReplay
		}
		if p.MaxRetryAfter <= 0 {
			p.MaxRetryAfter = DefaultMaxRetryAfter
		}
		p.queues = map[string]*queue{}
	})
}

// Forward sends r to k's API at path (escaped, relative to the API base)
// and streams the answer to w. An error is returned only when nothing was
// written yet: an *Error, or the keeper's error (a sign-in needed, the
// provider unreachable), for the caller to answer as its API does.
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request, k *auth.Keeper, path string) error {
	p.init()
	conn := k.Connection()
	if conn.Endpoints.APIBase == "" {
		return &Error{Status: http.StatusConflict, Code: apitype.CodeBadRequest, Message: conn.Name + " has no api_base to send API calls to",
			Hint: "Set api_base in its [[connection]] table: the URL its API paths are relative to."}
	}
	target, err := Target(conn.Endpoints.APIBase, path, r.URL.RawQuery)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: apitype.CodeBadRequest, Message: err.Error()}
	}
	// The answer may start before the agent's body has all come (a
	// stream both ways): an HTTP/1 server must be told it may.
	_ = http.NewResponseController(w).EnableFullDuplex()
	wait, err := waitOf(r)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: apitype.CodeBadRequest, Message: err.Error()}
	}
	ctx := r.Context()

	tok, release, err := p.token(ctx, k, wait, "")
	if err != nil {
		return err
	}
	defer release()
	body := newReplayBody(r.Body, p.MaxReplay)
	defer body.Close()
	idempotent := slices.Contains([]string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace}, r.Method)

	resp, err := p.send(ctx, r, target, k, tok, body, 0)
	release()
	if err != nil {
		return err
	}
	if auth.ResourceNonceAsked(resp) && tok.Bound() && body.complete(ctx) {
		// The API wants its DPoP nonce in the proof (RFC 9449 §9): sent
		// again with it, once; it acted on nothing.
		resp.Body.Close()
		if resp, err = p.send(ctx, r, target, k, tok, body, 1); err != nil {
			return err
		}
	}
	used := tok.AccessToken.Reveal()
	retried := false
	switch {
	case auth.ProofRefused(resp):
		// The API refused the DPoP proof (a nonce it changed again, a
		// proof it could not verify), not the token: a refresh cannot
		// help, and would spend the refresh token. It goes back as it came.
	case resp.StatusCode == http.StatusUnauthorized && p.futile(conn.Name, used):
		// The API refused this very token right after the refresh that
		// brought it: another refresh cannot help (a path the app may not
		// use, another environment's API), and one per call could get the
		// client rate-limited. It goes back as it came.
	case resp.StatusCode == http.StatusUnauthorized && body.complete(ctx):
		resp.Body.Close()
		if err := k.RefreshRefused(ctx, func(t string) bool { return t == used }); err != nil && (wait <= 0 || !personMustAct(err)) {
			return err
		}
		// A token other than the refused one: the refreshed one, or, when
		// the refresh token is dead too, the one a person's sign-in brings
		// (if the request may wait for it).
		tok, release, err = p.token(ctx, k, wait, used)
		if err != nil {
			return err
		}
		resp, err = p.send(ctx, r, target, k, tok, body, 1)
		release()
		if err != nil {
			return err
		}
		used, retried = tok.AccessToken.Reveal(), true
		if resp.StatusCode == http.StatusUnauthorized {
			k.APIRefused(fmt.Sprintf("%s %s answered HTTP 401 to a token refreshed just before", r.Method, target.Path))
			p.refusedFresh.Store(conn.Name, apitype.TokenHash(used))
		}
	case resp.StatusCode == http.StatusUnauthorized:
		// Not sent again (its body was too large to keep): the agent gets
		// the 401, and its own retry finds the new token.
		go func() { _ = k.RefreshRefused(context.WithoutCancel(ctx), func(t string) bool { return t == used }) }()
	}
	if !retried && idempotent && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && body.complete(ctx) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), p.Clock.Now()); ok && d <= p.MaxRetryAfter {
			resp.Body.Close()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-p.Clock.After(d):
			}
			if tok, err = k.Token(ctx, auth.DefaultMinValid); err != nil {
				return err
			}
			if resp, err = p.send(ctx, r, target, k, tok, body, 1); err != nil {
				return err
			}
			used = tok.AccessToken.Reveal()
		}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		k.APIAccepted()
	}
	if rl, ok := rateLimit(resp.Header, p.Clock.Now()); ok {
		k.RateLimited(rl)
	}
	copyResponse(w, resp, used)
	return nil
}

// futile reports whether token is the one the API refused right after the
// refresh that brought it: refreshing for it again cannot help.
func (p *Proxy) futile(connection, token string) bool {
	h, ok := p.refusedFresh.Load(connection)
	return ok && h == apitype.TokenHash(token)
}

// send makes one attempt.
func (p *Proxy) send(ctx context.Context, in *http.Request, target *url.URL, k *auth.Keeper, tok *auth.Handout, body *replayBody, attempt int) (*http.Response, error) {
	conn := k.Connection()
	out, err := http.NewRequestWithContext(ctx, in.Method, target.String(), nil)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: apitype.CodeBadRequest, Message: err.Error()}
	}
	out.URL = target // as built: its escaping kept
	out.Header = outHeaders(in.Header)
	// The transport asks for gzip itself and decodes it, so that the answer
	// is searched for the token as plain bytes: a body compressed for the
	// agent could carry it unseen.
	out.Header.Del("Accept-Encoding")
	for name, value := range conn.APIHeaders {
		out.Header.Set(name, value)
	}
	out.Header.Set("Authorization", authorization(tok))
	// A DPoP-bound token goes with a proof for this very request.
	proof, err := k.DPoPProof(in.Method, target.String(), &tok.TokenSet)
	if err != nil {
		return nil, err
	}
	if proof != "" {
		out.Header.Set("DPoP", proof)
	}
	if in.Body != nil && in.Body != http.NoBody {
		b, n, err := body.attempt(attempt)
		if err != nil {
			return nil, err
		}
		out.Body, out.ContentLength = b, n
		if n < 0 && attempt == 0 {
			out.ContentLength = in.ContentLength
		}
	}
	resp, err := p.Transport.RoundTrip(out)
	if err == nil {
		k.NoteDPoPNonce(target.String(), resp.Header)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &Error{Status: http.StatusBadGateway, Code: apitype.CodeAPIUnreachable,
			Message: fmt.Sprintf("%s %s: %v", in.Method, target.Redacted(), err), Hint: "The API could not be reached: check the network and api_base."}
	}
	return resp, nil
}

// authorization is the Authorization header for tok: its type as the
// token endpoint named it, with "bearer" written as RFC 6750 does.
func authorization(tok *auth.Handout) string {
	typ := tok.TokenType
	if typ == "" || strings.EqualFold(typ, "bearer") {
		typ = "Bearer"
	}
	return typ + " " + tok.AccessToken.Reveal()
}

// Target is where a proxied path goes: under base, with the query given.
// A path that would leave the base (a ".." segment, also percent-encoded
// or behind an encoded slash), an absolute URL or a host in disguise is
// refused.
func Target(base, path, rawQuery string) (*url.URL, error) {
	b, err := url.Parse(base)
	if err != nil || (b.Scheme != "https" && b.Scheme != "http") || b.Host == "" {
		return nil, fmt.Errorf("the api_base %q is not an http(s) URL", base)
	}
	if strings.HasPrefix(path, "/") || strings.Contains(path, "//") {
		return nil, fmt.Errorf("the API path %q has an empty segment; write the path relative to the API base, as …/api/rest/v1.0/me", path)
	}
	if i := strings.IndexByte(path, '/'); i > 0 && strings.HasSuffix(path[:i], ":") {
		return nil, fmt.Errorf("the API path %q is an absolute URL; only the connection's API base (%s) is reachable, so write the path relative to it", path, base)
	}
	for _, seg := range strings.Split(path, "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return nil, fmt.Errorf("the API path %q is not validly escaped: %v", path, err)
		}
		for _, part := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
			if part == ".." || part == "." {
				return nil, fmt.Errorf("the API path %q leaves the API base; only paths under %s are reachable", path, base)
			}
		}
		if dec == "." || dec == ".." {
			return nil, fmt.Errorf("the API path %q leaves the API base; only paths under %s are reachable", path, base)
		}
	}
	escaped := strings.TrimSuffix(b.EscapedPath(), "/") + "/" + path
	u := &url.URL{Scheme: b.Scheme, Host: b.Host, RawQuery: dropParam(rawQuery, WaitParam)}
	if u.Path, err = url.PathUnescape(escaped); err != nil {
		return nil, err
	}
	u.RawPath = escaped
	if u.EscapedPath() != escaped {
		u.RawPath = ""
	}
	return u, nil
}

// dropParam is rawQuery without the parameter name, every other one as it
// was written (in its order and escaping).
func dropParam(rawQuery, name string) string {
	if !strings.Contains(rawQuery, name) {
		return rawQuery
	}
	var kept []string
	for _, kv := range strings.Split(rawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if key, err := url.QueryUnescape(k); err == nil && key == name {
			continue
		}
		kept = append(kept, kv)
	}
	return strings.Join(kept, "&")
}

// waitOf is how long r may wait for a sign-in.
func waitOf(r *http.Request) (time.Duration, error) {
	v := r.Header.Get(WaitHeader)
	if q := r.URL.Query().Get(WaitParam); q != "" {
		v = q
	}
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		if n, nerr := strconv.Atoi(v); nerr == nil && n >= 0 {
			d, err = time.Duration(n)*time.Second, nil
		} else {
			return 0, fmt.Errorf("%s %q is not a duration such as 5m or 300", WaitHeader, v)
		}
	}
	return min(d, MaxWait), nil
}

// hopByHop are the headers of one connection, not of the request
// (RFC 9110, 7.6.1), which a proxy never passes on.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// outHeaders are the agent's headers that go on: without hop-by-hop ones,
// credentials of its own (Authorization, DPoP, Cookie, Proxy-*),
// tokentray's own and a Host.
func outHeaders(in http.Header) http.Header {
	out := in.Clone()
	dropHopByHop(out)
	for name := range out {
		if name == "Authorization" || name == "Dpop" || name == "Cookie" || name == "Host" || name == "Forwarded" ||
			strings.HasPrefix(name, "Proxy-") || strings.HasPrefix(name, "Tokentray-") || strings.HasPrefix(name, "X-Forwarded-") {
			delete(out, name)
		}
	}
	return out
}

func dropHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// copyResponse streams resp to w: its headers but the hop-by-hop ones and
// cookies, and its body, each chunk as it comes (a stream of events stays
// one). The token is never in what the agent gets: an API that echoes the
// request's headers back has it replaced by as many asterisks.
func copyResponse(w http.ResponseWriter, resp *http.Response, token string) {
	h := w.Header()
	for name, values := range resp.Header {
		h[name] = slices.Clone(values)
	}
	dropHopByHop(h)
	h.Del("Set-Cookie")
	mask := strings.Repeat("*", len(token))
	for name, values := range h {
		for i, v := range values {
			values[i] = strings.ReplaceAll(v, token, mask)
		}
		h[name] = values
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	out := &redactor{w: w, token: []byte(token)}
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if out.Write(buf[:n]) != nil {
				return
			}
			// Flush what is complete now: a slow stream reaches the agent
			// as it comes, not when a buffer fills.
			if out.flushSafe() != nil || rc.Flush() != nil {
				return
			}
		}
		if err == io.EOF {
			_ = out.Close()
			_ = rc.Flush()
			return
		}
		if err != nil {
			// Cut off: the agent must not take a truncated answer for a
			// whole one, so the connection is dropped, not ended.
			panic(http.ErrAbortHandler)
		}
	}
}

// redactor writes what it is given, with every occurrence of token
// replaced by as many asterisks (the length, and so Content-Length, stays
// the same). It holds back only an end that may be the start of a token
// split between two reads: the end of an event in a stream is not held.
type redactor struct {
	w       io.Writer
	token   []byte
	pending []byte
}

func (r *redactor) Write(p []byte) error {
	r.pending = append(r.pending, p...)
	if len(r.token) == 0 {
		return nil
	}
	for i := bytes.Index(r.pending, r.token); i >= 0; i = bytes.Index(r.pending, r.token) {
		copy(r.pending[i:], bytes.Repeat([]byte("*"), len(r.token)))
	}
	return nil
}

// flushSafe writes all but an end that begins the token.
func (r *redactor) flushSafe() error {
	keep := 0
	for i := max(len(r.pending)-len(r.token)+1, 0); i < len(r.pending); i++ {
		if r.pending[i] == r.token[0] && bytes.HasPrefix(r.token, r.pending[i:]) {
			keep = len(r.pending) - i
			break
		}
	}
	n := len(r.pending) - keep
	if n == 0 {
		return nil
	}
	_, err := r.w.Write(r.pending[:n])
	r.pending = append(r.pending[:0], r.pending[n:]...)
	return err
}

// Close writes the rest.
func (r *redactor) Close() error {
	_, err := r.w.Write(r.pending)
	r.pending = nil
	return err
}

// retryAfter reads a Retry-After value: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// rateLimit reads an API's rate-limit headers (Procore's X-Rate-Limit-*,
// and the RateLimit-* of other APIs); Reset is a Unix time or seconds
// from now.
func rateLimit(h http.Header, now time.Time) (auth.RateLimit, bool) {
	for _, prefix := range []string{"X-Rate-Limit-", "X-Ratelimit-", "Ratelimit-"} {
		limit, err1 := strconv.Atoi(h.Get(prefix + "Limit"))
		remaining, err2 := strconv.Atoi(h.Get(prefix + "Remaining"))
		if err1 != nil || err2 != nil {
			continue
		}
		rl := auth.RateLimit{Limit: limit, Remaining: remaining, Time: now}
		if reset, err := strconv.ParseInt(h.Get(prefix+"Reset"), 10, 64); err == nil && reset > 0 {
			if reset > 1_000_000_000 { // a Unix time
				rl.Reset = time.Unix(reset, 0)
			} else {
				rl.Reset = now.Add(time.Duration(reset) * time.Second)
			}
		}
		return rl, true
	}
	return auth.RateLimit{}, false
}

// replayBody is a request body sent once as it streams in, and kept (up
// to max bytes) to be sent again.
type replayBody struct {
	src  io.ReadCloser
	max  int64
	mu   sync.Mutex
	kept bytes.Buffer
	over bool // more than max was read: not kept
	eof  bool
	// done is closed when the transport has let go of the first attempt's
	// body: until then it may still be reading it.
	done chan struct{}
	used bool
}

func newReplayBody(src io.ReadCloser, max int64) *replayBody {
	if src == nil {
		src = http.NoBody
	}
	return &replayBody{src: src, max: max, done: make(chan struct{})}
}

// attempt is the body of attempt n, and its length (-1: unknown).
func (b *replayBody) attempt(n int) (io.ReadCloser, int64, error) {
	if n == 0 {
		b.used = true
		return &firstBody{b: b}, -1, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over || !b.eof {
		return nil, 0, errors.New("the request body was not kept whole, so it cannot be sent again")
	}
	return io.NopCloser(bytes.NewReader(b.kept.Bytes())), int64(b.kept.Len()), nil
}

// letGoBound bounds the wait for the transport to let go of a body it
// sent: it closes it once written, or once the connection is dropped.
const letGoBound = 10 * time.Second

// complete reports whether the body can be sent again: there was none, or
// it was read to its end and kept whole. It waits for the first attempt
// to let go of it.
func (b *replayBody) complete(ctx context.Context) bool {
	if !b.used {
		return true
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return false
	case <-time.After(letGoBound):
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.over && b.eof
}

// Close lets the agent's body go.
func (b *replayBody) Close() {
	if !b.used {
		close(b.done)
	}
	_ = b.src.Close()
}

// firstBody is the first attempt's body: the agent's, streamed, with what
// passes kept.
type firstBody struct {
	b      *replayBody
	closed sync.Once
}

func (f *firstBody) Read(p []byte) (int, error) {
	b := f.b
	n, err := b.src.Read(p)
	b.mu.Lock()
	if n > 0 && !b.over {
		if int64(b.kept.Len()+n) > b.max {
			b.over = true
			b.kept = bytes.Buffer{}
		} else {
			b.kept.Write(p[:n])
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	b.mu.Unlock()
	return n, err
}

func (f *firstBody) Close() error {
	f.closed.Do(func() { close(f.b.done) })
	return nil
}

// token is the access token for a request to k's API. When a person must
// act first (a sign-in, a client fixed) and the request may wait, it waits
// for that, in line with the other requests that wait: release, called once
// the request was sent, lets the next one in line go, so that they reach
// the API in the order they came.
//
// refused is an access token the API refused: it does not count, and
// while it is the one held, a person must act.
func (p *Proxy) token(ctx context.Context, k *auth.Keeper, wait time.Duration, refused string) (tok *auth.Handout, release func(), err error) {
	none := func() {}
	get := func() (*auth.Handout, error) {
		tok, err := k.Token(ctx, auth.DefaultMinValid)
		if err == nil && refused != "" && tok.AccessToken.Reveal() == refused {
			return nil, fmt.Errorf("%s: the API refused its access token, and a new one needs a sign-in: %w", k.Connection().Name, auth.ErrNeedsSignIn)
		}
		return tok, err
	}
	tok, err = get()
	if err == nil || wait <= 0 || !personMustAct(err) {
		return tok, none, err
	}
	events, stop := k.Subscribe()
	defer stop()
	t := p.queueOf(k).join()
	deadline := p.Clock.After(wait)
	gaveUp := func(err error) (*auth.Handout, func(), error) {
		t.leave()
		return nil, none, err
	}
	timedOut := func(err error) error {
		return fmt.Errorf("%s: waited %s for a person to sign in (or fix the client), in vain: %w", k.Connection().Name, wait, err)
	}
	select { // the requests that came earlier go first
	case <-t.before:
	case <-deadline:
		return gaveUp(timedOut(err))
	case <-ctx.Done():
		return gaveUp(ctx.Err())
	}
	for {
		if tok, err = get(); err == nil {
			return tok, t.leave, nil
		}
		if !personMustAct(err) {
			return gaveUp(err)
		}
		select {
		case <-events:
		case <-p.Clock.After(5 * time.Second): // in case an event was missed
		case <-deadline:
			return gaveUp(timedOut(err))
		case <-ctx.Done():
			return gaveUp(ctx.Err())
		}
	}
}

// personMustAct reports whether err is fixed by a person: a sign-in, or
// the client settings fixed.
func personMustAct(err error) bool {
	return errors.Is(err, auth.ErrNeedsSignIn) || errors.Is(err, auth.ErrCredentialsRefused)
}

func (p *Proxy) queueOf(k *auth.Keeper) *queue {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queues[k.Connection().Name]
	if q == nil {
		q = &queue{}
		p.queues[k.Connection().Name] = q
	}
	return q
}

// Waiting is how many requests wait for k's sign-in.
func (p *Proxy) Waiting(k *auth.Keeper) int {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.queues[k.Connection().Name]; q != nil {
		return int(q.n.Load())
	}
	return 0
}

// queue is the line of requests waiting for a connection's sign-in.
type queue struct {
	mu   sync.Mutex
	tail chan struct{} // closed when the last one in line has gone
	n    atomic.Int32  // how many are in line
}

// ticket is a request's place in the line.
type ticket struct {
	before <-chan struct{} // closed when the one before it has gone
	gone   chan struct{}
	once   sync.Once
	n      *atomic.Int32
}

// join puts a request at the end of the line.
func (q *queue) join() *ticket {
	q.mu.Lock()
	defer q.mu.Unlock()
	before := q.tail
	if before == nil {
		c := make(chan struct{})
		close(c)
		before = c
	}
	t := &ticket{before: before, gone: make(chan struct{}), n: &q.n}
	q.tail = t.gone
	q.n.Add(1)
	return t
}

// leave lets the next one in line go, once every one before this one has
// gone too: a request that gives up early keeps the line's order.
func (t *ticket) leave() {
	t.once.Do(func() {
		t.n.Add(-1)
		go func() {
			<-t.before
			close(t.gone)
		}()
	})
}
