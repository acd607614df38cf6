package localcluster

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"
)

func TestEnsurePKIMakesVerifiableCertsOnceAndKeepsThem(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	first, err := ensurePKI(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	caBefore := readFile(t, first.caCert)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caBefore)
	serving := parseCert(t, first.servingCert)
	for _, name := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc", kubernetesServiceIP} {
		if _, err := serving.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	proxy := parseCert(t, first.proxyClientCert)
	if _, err := proxy.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("front-proxy client certificate: %v", err)
	}
	if proxy.Subject.CommonName != frontProxyClientName {
		t.Errorf("front-proxy client CN %q", proxy.Subject.CommonName)
	}
	if len(first.tokens) != len(identities) {
		t.Errorf("tokens %v, want one per identity", first.tokens)
	}

	second, err := ensurePKI(dir, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if string(readFile(t, second.caCert)) != string(caBefore) {
		t.Error("second start replaced the CA")
	}
	for name, token := range first.tokens {
		if second.tokens[name] != token {
			t.Errorf("token of %s changed across starts", name)
		}
	}

	// A serving certificate about to expire is renewed, under the same CA.
	third, err := ensurePKI(dir, now.Add(360*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if renewed := parseCert(t, third.servingCert); !renewed.NotAfter.After(serving.NotAfter) {
		t.Errorf("serving certificate not renewed: expires %s", renewed.NotAfter)
	}
	if string(readFile(t, third.caCert)) != string(caBefore) {
		t.Error("renewing the serving certificate replaced the CA")
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func parseCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(readFile(t, path))
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
