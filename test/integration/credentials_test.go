package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
)

// authGate stands in front of a test handler and answers 401 to every
// request that does not carry the credential it currently accepts, as a
// handler does once its side of a rotation is done.
type authGate struct {
	bearer bool // Authorization: Bearer instead of a webhook-signature

	mu      sync.Mutex
	current []byte
	refused atomic.Int32
}

func (g *authGate) accept(credential string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.current = []byte(credential)
}

func (g *authGate) check(h http.Header, body []byte) error {
	g.mu.Lock()
	current := g.current
	g.mu.Unlock()
	if g.bearer {
		if h.Get("Authorization") != "Bearer "+string(current) {
			return errors.New("wrong bearer token")
		}
		return nil
	}
	v, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: current})
	if err != nil {
		return err
	}
	return v.Verify(h, body)
}

func (g *authGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := g.check(r.Header, body); err != nil {
			g.refused.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func writeSecret(t *testing.T, ns, name, value string) {
	t.Helper()
	secrets := kube(t).CoreV1().Secrets(ns)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"key": []byte(value)}}
	_, err := secrets.Update(context.Background(), s, metav1.UpdateOptions{})
	if err != nil {
		_, err = secrets.Create(context.Background(), s, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("write Secret %s/%s: %v", ns, name, err)
	}
}

// sizeStatus answers every callback with the object's size in its status,
// so a test can tell which spec a successful call saw.
func sizeStatus(req callbacks.Request) (int, any) {
	size, _, _ := unstructured.NestedInt64(req.Object.Object, "spec", "size")
	return 200, map[string]any{"status": map[string]any{"message": fmt.Sprintf("size %d", size)}}
}

func TestRotatedHandlerCredentialsAreUsedWithoutRestart(t *testing.T) {
	for _, tt := range []struct {
		name   string
		bearer bool
		stored string // after the credential in the Secret
	}{
		{"hmac secret", false, ""},
		{"bearer token", true, ""},
		// kubectl create secret --from-file keeps the file's newline; the
		// handler reads the key without it (docs/registration.md).
		{"hmac secret made from a file with its final newline", false, "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			writeSecret(t, ns, "handler-auth", "old-credential"+tt.stored)
			gate := &authGate{bearer: tt.bearer}
			gate.accept("old-credential")
			h := newHandler(t, sizeStatus)
			h.Config.Handler = gate.wrap(h.Config.Handler)
			ref := &spec.SecretKeyRef{Namespace: ns, Name: "handler-auth", Key: "key"}
			startGateway(t, operatorFor(t, "rotate", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(100 * time.Millisecond)
				s.Handler.Auth = &spec.AuthSpec{HMACSecretRef: ref}
				if tt.bearer {
					s.Handler.Auth = &spec.AuthSpec{BearerTokenSecretRef: ref}
				}
				s.Callbacks = []spec.Callback{
					{ID: "create", Events: []spec.Event{spec.EventCreate}},
					{ID: "update", Events: []spec.Event{spec.EventUpdate}},
					{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
				}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "size 1") })

			// The handler takes the new credential first, then the Secret
			// follows: calls in between are refused, as in a real rotation.
			gate.accept("new-credential")
			writeSecret(t, ns, "handler-auth", "new-credential"+tt.stored)
			updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
				_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
			})
			eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "size 2") })
			if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), "example", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, func() error { return called(h, "cleanup", 1) })
			waitWidgetGone(t, ns, "example")
			for _, e := range events(t, ns, "example") {
				if e.Type == "Warning" && strings.Contains(e.Message, "permanently") {
					t.Errorf("a rotation recorded a permanent failure: %s %s", e.Reason, e.Message)
				}
			}
		})
	}
}

func TestHandlerRefusalsCuredByConfigurationAreRetried(t *testing.T) {
	for _, tt := range []struct {
		name   string
		code   int
		body   []byte
		reason string
	}{
		{"401 during a credential rotation", 401, []byte("signature refused"), "HandlerUnauthorized"},
		{"403 during a credential rotation", 403, nil, "HandlerUnauthorized"},
		{"404 during a handler rollout", 404, []byte("404 page not found"), "HandlerNotFound"},
		{"405 from a misrouted path", 405, nil, "HandlerMethodNotAllowed"},
		{"a refusal whose body says it is temporary", 401, []byte(`{"error": {"message": "key not loaded yet", "permanent": false}}`), "HandlerUnauthorized"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			var n atomic.Int32
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				if n.Add(1) <= 2 {
					if tt.body == nil {
						return tt.code, nil
					}
					return tt.code, tt.body
				}
				return 200, map[string]any{"status": map[string]any{"message": "ok"}}
			})
			startGateway(t, operatorFor(t, "cured", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(100 * time.Millisecond)
				s.Callbacks = []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}}
			}))
			createWidget(t, ns, "example", 1)
			eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "ok") })
			if got := len(h.calls("create")); got != 3 {
				t.Errorf("create called %d times, want 3 (2 refusals, 1 success)", got)
			}
			eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "example", "Warning", tt.reason) })
			for _, e := range events(t, ns, "example") {
				if e.Type == "Warning" && strings.Contains(e.Message, "permanently") {
					t.Errorf("HTTP %d recorded a permanent failure: %s %s", tt.code, e.Reason, e.Message)
				}
			}
		})
	}
}

func TestDeletedHandlerSecretKeepsLastGoodKeyAndIsReported(t *testing.T) {
	ns := newNamespace(t)
	writeSecret(t, ns, "handler-auth", "the-key")
	gate := &authGate{}
	gate.accept("the-key")
	h := newHandler(t, sizeStatus)
	h.Config.Handler = gate.wrap(h.Config.Handler)
	startGateway(t) // registry mode: the problem reaches the WebhookOperator
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: lostsecret}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  handler:
    url: %q
    auth: {hmacSecretRef: {namespace: %s, name: handler-auth, key: key}}
  callbacks:
    - {id: create, events: [create]}
    - {id: update, events: [update]}
`, ns, h.URL, ns))
	createWidget(t, ns, "example", 1)
	eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "size 1") })

	if err := kube(t).CoreV1().Secrets(ns).Delete(context.Background(), "handler-auth", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if e := operatorLastError(t, "lostsecret"); !strings.Contains(e, "SecretUnreadable") || !strings.Contains(e, "handler-auth not found") {
			return fmt.Errorf("WebhookOperator lastError = %q, want the missing Secret", e)
		}
		return hasEvent(t, metav1.NamespaceDefault, "lostsecret", "Warning", "SecretUnreadable")
	})
	// The handler still holds the key: calls go on with the last good one.
	updateWidget(t, ns, "example", func(w *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(w.Object, int64(2), "spec", "size")
	})
	eventually(t, 20*time.Second, func() error { return statusMessage(t, ns, "example", "size 2") })
	if n := gate.refused.Load(); n != 0 {
		t.Errorf("the handler refused %d calls: the last good key was not kept", n)
	}

	writeSecret(t, ns, "handler-auth", "the-key")
	eventually(t, 30*time.Second, func() error {
		if e := operatorLastError(t, "lostsecret"); e != "" {
			return fmt.Errorf("WebhookOperator lastError = %q after the Secret came back, want none", e)
		}
		return nil
	})
}
