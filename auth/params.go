package auth

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
)

// tokenClient is client with conn's extra token parameters (token_params)
// and its preset's token headers added to every form POST to its token
// endpoint. x/oauth2 takes extra parameters for the code exchange but not
// for a refresh, so they are added here, once, for the exchange, each
// refresh and client credentials alike.
func tokenClient(client *http.Client, conn *Connection) *http.Client {
	var headers map[string]string
	if conn.Provider != nil {
		headers = conn.Provider.TokenHeaders
	}
	if len(conn.TokenParams) == 0 && len(headers) == 0 {
		return client
	}
	c := *client
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &paramTransport{base: base, tokenURL: conn.Endpoints.TokenURL, params: conn.TokenParams, headers: headers}
	return &c
}

type paramTransport struct {
	base     http.RoundTripper
	tokenURL string
	params   map[string]string
	headers  map[string]string
}

func (t *paramTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if req.Method != http.MethodPost || req.URL.String() != t.tokenURL || mt != "application/x-www-form-urlencoded" || req.Body == nil {
		return t.base.RoundTrip(req)
	}
	if len(t.params) == 0 {
		r := req.Clone(req.Context())
		t.setHeaders(r)
		return t.base.RoundTrip(r)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	// The request's own parameters win: config validation already refuses
	// the ones OAuth defines, this only keeps it so.
	for k, v := range t.params {
		if !form.Has(k) {
			form.Set(k, v)
		}
	}
	encoded := form.Encode()
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader([]byte(encoded)))
	r.ContentLength = int64(len(encoded))
	r.Header.Set("Content-Length", strconv.Itoa(len(encoded)))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader([]byte(encoded))), nil }
	t.setHeaders(r)
	return t.base.RoundTrip(r)
}

// setHeaders adds the preset's token-endpoint headers (GitHub's Accept).
func (t *paramTransport) setHeaders(r *http.Request) {
	for k, v := range t.headers {
		r.Header.Set(k, v)
	}
}
