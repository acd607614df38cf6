package engine

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

type endpoint = call.Endpoint

// resolveEndpoints builds one endpoint per callback: the callback's handler
// or the operator's, its path appended, with credentials read from Secrets.
func (c *Controller) resolveEndpoints(ctx context.Context) (map[string]endpoint, error) {
	out := make(map[string]endpoint, len(c.op.Spec.Callbacks))
	for _, cb := range c.op.Spec.Callbacks {
		ep, err := c.endpointFor(ctx, cb.EffectiveHandler(c.op.Spec.Handler))
		if err != nil {
			return nil, fmt.Errorf("callback %s: %w", cb.ID, err)
		}
		out[cb.ID] = ep
	}
	return out, nil
}

func (c *Controller) endpointFor(ctx context.Context, h spec.HandlerSpec) (endpoint, error) {
	u := h.Endpoint()
	if u == "" {
		return endpoint{}, failure.Permanentf("InvalidSpec", "handler: neither url nor service is set")
	}
	ep := endpoint{URL: u, Timeout: h.Timeout.Or(spec.DefaultHandlerTimeout)}
	var err error
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
