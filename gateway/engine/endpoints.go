package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

type endpoint = call.Endpoint

// reasonSecretUnreadable is the failure reason, the operator's Ready reason
// at start and the problem reason later, of a referenced Secret that cannot
// be read, lacks its key or holds an empty one.
const reasonSecretUnreadable = "SecretUnreadable"

// secretGetter returns a referenced Secret: from the API server at start,
// from what the Secret watch saw afterwards.
type secretGetter func(ctx context.Context, ref types.NamespacedName) (*corev1.Secret, error)

// secretRefs lists the Secrets a handler's credentials come from.
func secretRefs(h spec.HandlerSpec) []types.NamespacedName {
	a := h.Auth
	if a == nil {
		return nil
	}
	var out []types.NamespacedName
	for _, r := range []*spec.SecretKeyRef{a.HMACSecretRef, a.BearerTokenSecretRef} {
		if r != nil {
			out = append(out, types.NamespacedName{Namespace: r.Namespace, Name: r.Name})
		}
	}
	if r := a.ClientCertSecretRef; r != nil {
		out = append(out, types.NamespacedName{Namespace: r.Namespace, Name: r.Name})
	}
	return out
}

// buildEndpoint resolves one handler into an endpoint: its URL and timeout,
// and the credentials read through get. tlsConfigs keeps one *tls.Config
// per distinct CA, certificate and key, so that a Secret update that leaves
// them alone keeps the pooled connections; it gains an entry for new
// material.
func buildEndpoint(ctx context.Context, h spec.HandlerSpec, get secretGetter, tlsConfigs map[string]*tls.Config) (endpoint, error) {
	u := h.Endpoint()
	if u == "" {
		return endpoint{}, failure.Permanentf("InvalidSpec", "handler: neither url nor service is set")
	}
	ep := endpoint{URL: u, Timeout: h.Timeout.Or(spec.DefaultHandlerTimeout)}
	a := h.Auth
	if a == nil {
		return ep, nil
	}
	var err error
	if a.HMACSecretRef != nil {
		if ep.HMACSecret, err = secretKey(ctx, get, a.HMACSecretRef); err != nil {
			return endpoint{}, err
		}
		// Checked here, so a bad rotation keeps the last good key and is
		// reported, rather than failing every call. A fixed Secret cures it.
		if _, err := callbacks.SigningKey(ep.HMACSecret); err != nil {
			r := a.HMACSecretRef
			return endpoint{}, failure.Temporaryf(reasonSecretUnreadable, "Secret %s/%s key %q: %w", r.Namespace, r.Name, r.Key, err)
		}
	}
	if a.BearerTokenSecretRef != nil {
		tok, err := secretKey(ctx, get, a.BearerTokenSecretRef)
		if err != nil {
			return endpoint{}, err
		}
		if ep.BearerToken, err = bearerToken(tok, a.BearerTokenSecretRef); err != nil {
			return endpoint{}, err
		}
	}
	if a.CABundle != "" || a.ClientCertSecretRef != nil {
		if ep.TLS, err = tlsFor(ctx, a, get, tlsConfigs); err != nil {
			return endpoint{}, err
		}
	}
	return ep, nil
}

// bearerToken is the token of a Secret's value, less the whitespace
// around it. One that an HTTP header cannot carry (a line break inside: a
// two-line token file) is refused like an empty one: used, every call
// would fail in net/http before it is sent, and be retried for ever as an
// unreachable handler.
func bearerToken(v []byte, ref *spec.SecretKeyRef) (string, error) {
	tok := strings.TrimSpace(string(v))
	if !httpguts.ValidHeaderFieldValue(tok) {
		return "", failure.Temporaryf(reasonSecretUnreadable,
			"Secret %s/%s key %q holds a line break or another control character inside the token, which the Authorization header cannot carry",
			ref.Namespace, ref.Name, ref.Key)
	}
	return tok, nil
}

func tlsFor(ctx context.Context, a *spec.AuthSpec, get secretGetter, tlsConfigs map[string]*tls.Config) (*tls.Config, error) {
	var ca, cert, key []byte
	var err error
	if a.CABundle != "" {
		if ca, err = base64.StdEncoding.DecodeString(a.CABundle); err != nil {
			return nil, failure.Permanentf("InvalidSpec", "handler.auth.caBundle is not base64: %w", err)
		}
	}
	if ref := a.ClientCertSecretRef; ref != nil {
		nn := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
		s, err := get(ctx, nn)
		if err != nil {
			return nil, err
		}
		// Both are required: without them TLSConfig would build a
		// configuration that presents no client certificate at all.
		if cert, err = secretValue(s, nn, corev1.TLSCertKey); err != nil {
			return nil, err
		}
		if key, err = secretValue(s, nn, corev1.TLSPrivateKeyKey); err != nil {
			return nil, err
		}
	}
	digest := tlsDigest(ca, cert, key)
	if cfg, ok := tlsConfigs[digest]; ok {
		return cfg, nil
	}
	cfg, err := call.TLSConfig(ca, cert, key)
	if err != nil {
		if _, caErr := call.TLSConfig(ca, nil, nil); caErr != nil {
			return nil, failure.Permanentf("InvalidSpec", "handler TLS: %w", caErr)
		}
		// The Secret may be mid-rotation: a fixed Secret cures it.
		ref := a.ClientCertSecretRef
		return nil, failure.Temporaryf(reasonSecretUnreadable, "Secret %s/%s keys %q and %q: %w",
			ref.Namespace, ref.Name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
	}
	tlsConfigs[digest] = cfg
	return cfg, nil
}

// tlsDigest identifies TLS material without keeping it in a map key.
func tlsDigest(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return string(h.Sum(nil))
}

func secretKey(ctx context.Context, get secretGetter, ref *spec.SecretKeyRef) ([]byte, error) {
	nn := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	s, err := get(ctx, nn)
	if err != nil {
		return nil, err
	}
	return secretValue(s, nn, ref.Key)
}

// secretValue returns the value of key in the Secret s, named ref. An empty
// or whitespace-only value (an unset $TOKEN in --from-literal=token=$TOKEN)
// is refused like a missing key: used, calls would go without the
// credential; refused, the last good material stays in use and is reported.
func secretValue(s *corev1.Secret, ref types.NamespacedName, key string) ([]byte, error) {
	v, ok := s.Data[key]
	if !ok {
		return nil, failure.Temporaryf(reasonSecretUnreadable, "Secret %s has no key %q", ref, key)
	}
	if len(bytes.TrimSpace(v)) == 0 {
		return nil, failure.Temporaryf(reasonSecretUnreadable, "Secret %s key %q is empty", ref, key)
	}
	return v, nil
}

// secretNotFound is what a getter returns for a Secret that does not exist.
func secretNotFound(ref types.NamespacedName) error {
	return failure.Temporaryf(reasonSecretUnreadable, "Secret %s/%s not found", ref.Namespace, ref.Name)
}
