package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// prober checks the health endpoints of the components, trusting only the
// cluster's CA.
type prober struct{ client *http.Client }

func newProber(p *pki) (*prober, error) {
	caPEM, err := os.ReadFile(p.caCert)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", p.caCert)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	return &prober{client: &http.Client{Transport: transport, Timeout: 5 * time.Second}}, nil
}

// check is a condition that holds when url answers 200 with a body
// containing want.
func (pr *prober) check(url, want string) condition {
	return func(ctx context.Context) (bool, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, "", err
		}
		resp, err := pr.client.Do(req)
		if err != nil {
			return false, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
			return true, "", nil
		}
		return false, fmt.Sprintf("HTTP %d %s", resp.StatusCode, firstFailures(string(body))), nil
	}
}

// firstFailures keeps the failing checks of a verbose /readyz answer, or the
// start of any other body.
func firstFailures(body string) string {
	var failed []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "[-]") {
			failed = append(failed, line)
		}
	}
	if len(failed) > 0 {
		return strings.Join(failed, "; ")
	}
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	return strings.TrimSpace(body)
}

func defaultServiceAccountExists(ctx context.Context, client kubernetes.Interface) (bool, string, error) {
	_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, "not created yet", nil
	}
	return err == nil, "", err
}
