package localcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// serviceClusterIPRange only gets addresses allocated from it: no proxy runs,
// so no traffic goes anywhere. Its first address is the kubernetes Service.
const (
	serviceClusterIPRange = "10.96.0.0/16"
	kubernetesServiceIP   = "10.96.0.1"
	podCIDR               = "10.244.0.1/16"
	serviceAccountIssuer  = "https://kubernetes.default.svc.cluster.local"
	frontProxyClientName  = "front-proxy-client"
)

// pki is the set of credential files of one cluster, all under DataDir/pki.
// The CA, the service-account key and the tokens are made on first start
// and kept, so kubeconfigs and tokens stay valid across restarts.
type pki struct {
	caCert, caKey           string
	servingCert, servingKey string // kube-apiserver, controller-manager and scheduler serve with it
	proxyClientCert         string // kube-apiserver's client certificate towards aggregated API servers
	proxyClientKey          string
	saKey, saPub            string
	tokenFile               string
	tokens                  map[string]string // identity name → bearer token
}

// Identities in the static token file. The controller-manager and the
// scheduler get their bootstrap RBAC roles through their user names; admin
// and kwok are in system:masters.
var identities = []struct{ name, user, groups string }{
	{"admin", "opgate-admin", "system:masters"},
	{"kube-controller-manager", "system:kube-controller-manager", ""},
	{"kube-scheduler", "system:kube-scheduler", ""},
	{"kwok", "kwok-controller", "system:masters"},
}

func ensurePKI(dir string, now time.Time) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		caCert: filepath.Join(dir, "ca.crt"), caKey: filepath.Join(dir, "ca.key"),
		servingCert: filepath.Join(dir, "serving.crt"), servingKey: filepath.Join(dir, "serving.key"),
		proxyClientCert: filepath.Join(dir, "front-proxy-client.crt"), proxyClientKey: filepath.Join(dir, "front-proxy-client.key"),
		saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"),
		tokenFile: filepath.Join(dir, "tokens.csv"),
	}
	ca, caKey, err := ensureCA(p.caCert, p.caKey, now)
	if err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	if err := ensureLeafCert(p.servingCert, p.servingKey, servingCertTemplate(), ca, caKey, now); err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	if err := ensureLeafCert(p.proxyClientCert, p.proxyClientKey, frontProxyClientTemplate(), ca, caKey, now); err != nil {
		return nil, fmt.Errorf("front-proxy client certificate: %w", err)
	}
	if err := ensureServiceAccountKey(p.saKey, p.saPub); err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	if p.tokens, err = ensureTokens(p.tokenFile); err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	return p, nil
}

func ensureCA(certPath, keyPath string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	cert, key, err := loadPair(certPath, keyPath)
	if err == nil && now.Add(24*time.Hour).Before(cert.NotAfter) {
		return cert, key, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "opgate-local-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, newKey.Public(), newKey)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(certPath, keyPath, der, newKey); err != nil {
		return nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	return cert, newKey, err
}

// servingCertTemplate is the certificate kube-apiserver, the
// controller-manager and the scheduler serve with.
func servingCertTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(kubernetesServiceIP)},
	}
}

// frontProxyClientTemplate is the client certificate kube-apiserver shows to
// aggregated API servers (--proxy-client-cert-file); its name is the only
// one allowed by --requestheader-allowed-names.
func frontProxyClientTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: frontProxyClientName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// ensureLeafCert keeps the certificate at certPath if ca signed it and it is
// valid for another week, and otherwise makes a new one from tmpl, valid
// for a year.
func ensureLeafCert(certPath, keyPath string, tmpl *x509.Certificate, ca *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	if cert, _, err := loadPair(certPath, keyPath); err == nil &&
		now.Add(7*24*time.Hour).Before(cert.NotAfter) && cert.CheckSignatureFrom(ca) == nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl.SerialNumber = randomSerial()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(365 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	return writePair(certPath, keyPath, der, key)
}

// ensureServiceAccountKey makes the RSA key that signs service-account
// tokens (kube-apiserver --service-account-signing-key-file, controller-manager
// --service-account-private-key-file) and its public half.
func ensureServiceAccountKey(keyPath, pubPath string) error {
	if fileExists(keyPath) && fileExists(pubPath) {
		return nil
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := writePEM(keyPath, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), 0o600); err != nil {
		return err
	}
	return writePEM(pubPath, "PUBLIC KEY", pub, 0o644)
}

// ensureTokens reads the static token file, or writes one with a random
// token per identity.
func ensureTokens(path string) (map[string]string, error) {
	if tokens, err := readTokens(path); err == nil && len(tokens) == len(identities) {
		return tokens, nil
	}
	tokens := map[string]string{}
	var csv []byte
	for _, id := range identities {
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return nil, err
		}
		token := hex.EncodeToString(buf)
		tokens[id.name] = token
		// token,user,uid[,"group1,group2"]
		csv = fmt.Appendf(csv, "%s,%s,%s", token, id.user, id.user)
		if id.groups != "" {
			csv = fmt.Appendf(csv, ",%q", id.groups)
		}
		csv = append(csv, '\n')
	}
	return tokens, os.WriteFile(path, csv, 0o600)
}

func readTokens(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	byUser := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.SplitN(line, ",", 4); len(fields) >= 3 {
			byUser[fields[1]] = fields[0]
		}
	}
	tokens := map[string]string{}
	for _, id := range identities {
		if tok := byUser[id.user]; tok != "" {
			tokens[id.name] = tok
		}
	}
	return tokens, nil
}

func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	key, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	return cert, key, nil
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(keyPath, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o644)
}

func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), mode)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
