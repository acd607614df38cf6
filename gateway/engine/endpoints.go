package engine

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// DefaultTimeout of a callback request when the handler gives none.
const DefaultTimeout = 10 * time.Second

type endpoint = call.Endpoint

// resolveEndpoints builds one endpoint per callback: the callback's handler
// or the operator's, its path appended, with credentials read from Secrets.
func (c *Controller) resolveEndpoints(ctx context.Context) (map[string]endpoint, error) {
	out := make(map[string]endpoint, len(c.op.Spec.Callbacks))
	for _, cb := range c.op.Spec.Callbacks {
		h := c.op.Spec.Handler
		if cb.Handler != nil {
			h = *cb.Handler
		}
		ep, err := c.endpointFor(ctx, h, cb.Path)
		if err != nil {
			return nil, fmt.Errorf("callback %s: %w", cb.ID, err)
		}
		out[cb.ID] = ep
	}
	return out, nil
}

func (c *Controller) endpointFor(ctx context.Context, h spec.HandlerSpec, path string) (endpoint, error) {
	base, err := handlerURL(h)
	if err != nil {
		return endpoint{}, failure.Permanentf("InvalidSpec", "handler: %w", err)
	}
	ep := endpoint{URL: joinPath(base, path), Timeout: h.Timeout.Or(DefaultTimeout)}
	if h.Auth == nil {
		return ep, nil
	}
	a := h.Auth
	if a.HMACSecretRef != nil {
		if ep.HMACSecret, err = c.secretKey(ctx, a.HMACSecretRef); err != nil {
			return endpoint{}, err
		}
	}
	if a.BearerTokenSecretRef != nil {
		tok, err := c.secretKey(ctx, a.BearerTokenSecretRef)
		if err != nil {
			return endpoint{}, err
		}
		ep.BearerToken = strings.TrimSpace(string(tok))
	}
	if a.CABundle != "" || a.ClientCertSecretRef != nil {
		var ca, cert, key []byte
		if a.CABundle != "" {
			if ca, err = base64.StdEncoding.DecodeString(a.CABundle); err != nil {
				return endpoint{}, failure.Permanentf("InvalidSpec", "handler.auth.caBundle is not base64: %w", err)
			}
		}
		if ref := a.ClientCertSecretRef; ref != nil {
			s, err := c.secret(ctx, ref.Namespace, ref.Name)
			if err != nil {
				return endpoint{}, err
			}
			cert, key = s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
		}
		if ep.TLS, err = call.TLSConfig(ca, cert, key); err != nil {
			return endpoint{}, failure.Permanentf("InvalidSpec", "handler TLS: %w", err)
		}
	}
	return ep, nil
}

func (c *Controller) secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s, err := c.Kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, failure.Temporaryf("SecretUnreadable", "read Secret %s/%s: %w", namespace, name, err)
	}
	return s, nil
}

func (c *Controller) secretKey(ctx context.Context, ref *spec.SecretKeyRef) ([]byte, error) {
	s, err := c.secret(ctx, ref.Namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		return nil, failure.Temporaryf("SecretUnreadable", "Secret %s/%s has no key %q", ref.Namespace, ref.Name, ref.Key)
	}
	return v, nil
}

// handlerURL resolves a URL or a Service reference to a base URL.
func handlerURL(h spec.HandlerSpec) (string, error) {
	if h.URL != "" {
		if _, err := url.Parse(h.URL); err != nil {
			return "", err
		}
		return h.URL, nil
	}
	s := h.Service
	if s == nil {
		return "", fmt.Errorf("neither url nor service is set")
	}
	scheme := s.Scheme
	if scheme == "" {
		scheme = "http"
	}
	port := s.Port
	if port == 0 {
		port = 80
		if scheme == "https" {
			port = 443
		}
	}
	return scheme + "://" + s.Name + "." + s.Namespace + ".svc:" + strconv.Itoa(int(port)) + s.Path, nil
}

func joinPath(base, path string) string {
	if path == "" {
		return base
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(path, "/")
}
