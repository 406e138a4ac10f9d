package localapi

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/proxy"
)

// Ports serve the proxy of each connection that has a proxy_port on
// https://127.0.0.1:PORT as well, for clients that cannot speak to a unix
// socket: there, every path is the connection's API path.
//
// A loopback port, unlike the socket, is anyone's to take: a process of
// another user that binds it before tokentray would receive what agents
// send. So a port serves TLS with a certificate whose CA agents pin
// (`tokentray proxy-key NAME --cacert`): against a squatter their
// handshake fails, and it gets a ClientHello and nothing else. Inside TLS,
// each request must carry the port's key (proxy.KeyHeader), since any
// local process may connect, and one from another local user is refused
// as on the socket.
type Ports struct {
	// Server is the local API whose proxy and error answers the ports use.
	Server *Server
	// Key is the key of name's port.
	Key func(name string) (string, error)
	// TLS is the certificate every port serves, asked for at each
	// handshake (a renewal applies at once): proxykey's, whose CA agents
	// get from `tokentray proxy-key NAME --cacert`.
	TLS func() (*tls.Certificate, error)
	// Problem tells of a port that cannot be opened.
	Problem func(connection, text string)

	mu   sync.Mutex
	open map[string]*port // by connection
}

type port struct {
	num    int
	keeper *auth.Keeper
	srv    *http.Server
}

// Sync opens the ports of keepers that have one and closes the others.
func (p *Ports) Sync(keepers []*auth.Keeper) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		p.open = map[string]*port{}
	}
	want := map[string]*auth.Keeper{}
	for _, k := range keepers {
		if k.Connection().ProxyPort != 0 {
			want[k.Connection().Name] = k
		}
	}
	for name, o := range p.open {
		if k := want[name]; k != o.keeper || k.Connection().ProxyPort != o.num {
			_ = o.srv.Close()
			delete(p.open, name)
		}
	}
	for name, k := range want {
		if p.open[name] != nil {
			continue
		}
		num := k.Connection().ProxyPort
		// Asked once before listening, so that a certificate that cannot
		// be had is told as a problem, not as every agent's failed
		// handshake.
		if _, err := p.certificate(); err != nil {
			if p.Problem != nil {
				p.Problem(name, fmt.Sprintf("the proxy port %d has no TLS certificate: %v", num, err))
			}
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", num))
		if err != nil {
			if p.Problem != nil {
				p.Problem(name, fmt.Sprintf("the proxy port %d cannot be opened (%v): choose another proxy_port; agents that pin tokentray's CA refuse whatever holds it now", num, err))
			}
			continue
		}
		srv := &http.Server{Handler: p.handler(k), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10,
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				return context.WithValue(ctx, peerKey{}, checkTCPPeer(c))
			},
			// A failed handshake is the client's to see; logged here, any
			// local process could fill the log with them.
			ErrorLog: log.New(io.Discard, "", 0)}
		tl := tls.NewListener(l, &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return p.certificate()
			},
			// HTTP/1.1 only, as on the socket: the proxy's streaming and
			// hop-by-hop rules are written and tested for it.
			NextProtos: []string{"http/1.1"},
		})
		p.open[name] = &port{num: num, keeper: k, srv: srv}
		go func() { _ = srv.Serve(tl) }()
	}
}

// certificate is the certificate the ports serve.
func (p *Ports) certificate() (*tls.Certificate, error) {
	if p.TLS == nil {
		return nil, errors.New("none was given")
	}
	return p.TLS()
}

// Close closes every port.
func (p *Ports) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, o := range p.open {
		_ = o.srv.Close()
		delete(p.open, name)
	}
}

// handler is k's port: the peer and the key checked, then the proxy.
func (p *Ports) handler(k *auth.Keeper) http.Handler {
	name := k.Connection().Name
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pr, _ := r.Context().Value(peerKey{}).(peer); pr == peerOtherUser {
			writeError(w, http.StatusForbidden, apitype.Error{Code: apitype.CodeForbidden, Message: "this tokentray belongs to another user"})
			return
		}
		key, err := p.Key(name)
		if err != nil {
			writeError(w, http.StatusInternalServerError, apitype.Error{Code: apitype.CodeInternal, Message: err.Error()})
			return
		}
		got := r.Header.Get(proxy.KeyHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(key)) != 1 {
			what := "wrong"
			if got == "" {
				what = "missing"
			}
			writeError(w, http.StatusUnauthorized, apitype.Error{Code: apitype.CodeForbidden,
				Message: fmt.Sprintf("the %s header is %s: this port serves only clients that know %s's proxy key", proxy.KeyHeader, what, name),
				Hint:    "tokentray proxy-key " + name + " prints it (and --rotate replaces it)"})
			return
		}
		p.Server.forward(w, r, name, strings.TrimPrefix(r.URL.EscapedPath(), "/"))
	})
}
