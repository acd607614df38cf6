package call

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// maxTLSTransports bounds the transports kept for distinct TLS
// configurations. Operators times rotations of their Secrets stay far below
// it; a caller building a new *tls.Config per call would otherwise grow the
// pool without end.
const maxTLSTransports = 64

// transportPool holds one keep-alive transport for endpoints without their
// own TLS configuration and one per *tls.Config, since an http.Transport
// has a single TLS configuration.
type transportPool struct {
	plain *http.Transport

	mu    sync.Mutex
	byTLS map[*tls.Config]*http.Transport
	order []*tls.Config // oldest first, for eviction
}

func newTransportPool() *transportPool {
	return &transportPool{plain: newTransport(nil), byTLS: map[*tls.Config]*http.Transport{}}
}

// newTransport returns a keep-alive transport sized for many calls in
// flight to few handlers: net/http's default of 2 idle connections per host
// would reconnect for most calls of an operator with maxInFlight 64.
func newTransport(tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func (p *transportPool) get(tlsConfig *tls.Config) *http.Transport {
	if tlsConfig == nil {
		return p.plain
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.byTLS[tlsConfig]; ok {
		return t
	}
	if len(p.order) >= maxTLSTransports {
		oldest := p.order[0]
		p.order = p.order[1:]
		// Calls in flight on it finish; only its idle connections go.
		p.byTLS[oldest].CloseIdleConnections()
		delete(p.byTLS, oldest)
	}
	t := newTransport(tlsConfig)
	p.byTLS[tlsConfig] = t
	p.order = append(p.order, tlsConfig)
	return t
}

// forget drops the transport of one TLS configuration, closing its idle
// connections; calls in flight on it finish.
func (p *transportPool) forget(tlsConfig *tls.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.byTLS[tlsConfig]
	if !ok {
		return
	}
	t.CloseIdleConnections()
	delete(p.byTLS, tlsConfig)
	for i, c := range p.order {
		if c == tlsConfig {
			p.order = append(p.order[:i], p.order[i+1:]...)
			break
		}
	}
}

func (p *transportPool) closeIdle() {
	p.plain.CloseIdleConnections()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.byTLS {
		t.CloseIdleConnections()
	}
}

// TLSConfig builds an Endpoint's TLS configuration from PEM data. A non-empty
// caPEM (a WebhookOperator's caBundle) replaces the system roots, as a
// Kubernetes webhook's caBundle does; certPEM and keyPEM, given together,
// are the client certificate.
func TLSConfig(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("caBundle holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	switch {
	case len(certPEM) > 0 && len(keyPEM) > 0:
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case len(certPEM) > 0 || len(keyPEM) > 0:
		return nil, errors.New("client certificate and key must be given together")
	}
	return cfg, nil
}
