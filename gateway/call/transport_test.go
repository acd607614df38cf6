package call

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/failure"
)

// clientCert returns a self-signed client certificate and its key as PEM.
func clientCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "opgate-test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func TestCallOverTLS(t *testing.T) {
	certPEM, keyPEM := clientCert(t)
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(certPEM)

	plain := httptest.NewTLSServer(answer(200, nil, ""))
	defer plain.Close()
	mutual := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cn := r.TLS.PeerCertificates[0].Subject.CommonName; cn != "opgate-test" {
			t.Errorf("client certificate CN = %q", cn)
		}
	}))
	mutual.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	mutual.StartTLS()
	defer mutual.Close()

	caOf := func(s *httptest.Server) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	}
	tests := []struct {
		name    string
		srv     *httptest.Server
		certPEM []byte
		keyPEM  []byte
		noTLS   bool   // leave Endpoint.TLS nil: system roots
		reason  string // "" for success
	}{
		{"caBundle trusts the handler", plain, nil, nil, false, ""},
		{"system roots do not trust a private CA", plain, nil, nil, true, ReasonHandlerUnreachable},
		{"client certificate is presented", mutual, certPEM, keyPEM, false, ""},
		{"handler requiring a client certificate refuses none", mutual, nil, nil, false, ReasonHandlerUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := Endpoint{URL: tt.srv.URL}
			if !tt.noTLS {
				cfg, err := TLSConfig(caOf(tt.srv), tt.certPEM, tt.keyPEM)
				if err != nil {
					t.Fatal(err)
				}
				ep.TLS = cfg
			}
			_, err := newTestClient(t, Config{}).Call(context.Background(), ep, testRequest("d1", 1))
			if got := failure.As(err).Reason; (err == nil) != (tt.reason == "") || (err != nil && got != tt.reason) {
				t.Errorf("Call = %v (%s), want %q", err, got, tt.reason)
			}
		})
	}
}

func TestTLSConfigRefusesBadPEM(t *testing.T) {
	certPEM, keyPEM := clientCert(t)
	_, otherKey := clientCert(t)
	tests := []struct {
		name                string
		ca, cert, key, want string
	}{
		{"caBundle without a certificate", "not pem", "", "", "caBundle holds no PEM certificate"},
		{"certificate without key", "", string(certPEM), "", "given together"},
		{"key without certificate", "", "", string(keyPEM), "given together"},
		{"key of another certificate", "", string(certPEM), string(otherKey), "client certificate:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := TLSConfig([]byte(tt.ca), []byte(tt.cert), []byte(tt.key))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("TLSConfig error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestTransportPoolKeepsOneTransportPerTLSConfig(t *testing.T) {
	p := newTransportPool()
	defer p.closeIdle()
	a, b := &tls.Config{}, &tls.Config{}
	if p.get(nil) != p.plain {
		t.Error("no TLS config must use the plain transport")
	}
	if first, again := p.get(a), p.get(a); first != again {
		t.Error("the same TLS config got two transports, so no connection is reused")
	}
	if p.get(a) == p.get(b) {
		t.Error("two TLS configs share a transport")
	}
	first := p.get(a)
	for range maxTLSTransports {
		p.get(&tls.Config{})
	}
	if len(p.byTLS) != maxTLSTransports || len(p.order) != maxTLSTransports {
		t.Errorf("pool holds %d transports, want at most %d", len(p.byTLS), maxTLSTransports)
	}
	if p.get(a) == first {
		t.Error("the oldest transport was not evicted")
	}
}

func TestTransportPoolForgetsARotatedTLSConfig(t *testing.T) {
	p := newTransportPool()
	defer p.closeIdle()
	old, kept := &tls.Config{}, &tls.Config{}
	first, other := p.get(old), p.get(kept)
	p.forget(old)
	p.forget(&tls.Config{}) // never pooled: nothing to do
	if len(p.byTLS) != 1 || len(p.order) != 1 || p.order[0] != kept {
		t.Errorf("pool holds %d transports (order %d), want only the one still in use", len(p.byTLS), len(p.order))
	}
	if p.get(kept) != other {
		t.Error("forgetting one configuration dropped another's transport")
	}
	if p.get(old) == first {
		t.Error("a forgotten configuration got its old transport back")
	}
}
