package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/runner"
)

// Watched, related and child Secrets are sent whole (data included) to the
// operator's handler: with a Secret namespace set, an operator whose
// Secret kind is not confined to that namespace is refused, says which
// field and what to do, gets a Warning Event, and its handler gets nothing.
func TestSecretKindsOutsideTheSecretNamespaceAreRefused(t *testing.T) {
	allowed, other := newNamespace(t), newNamespace(t)
	writeSecret(t, other, "stolen", "not-yours")
	h := newHandler(t, ok(nil))
	startGatewayWithOptions(t, runner.Options{SecretNamespace: allowed}) // registry mode
	cases := []struct{ name, spec, field string }{
		{"related-secret", fmt.Sprintf(`
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  related: [{apiVersion: v1, kind: Secret}]`, other), "spec.related[0]"},
		{"child-secret-cross-namespace", fmt.Sprintf(`
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  children: [{apiVersion: v1, kind: Secret, allowCrossNamespace: true}]`, allowed), "spec.children[0]"},
		{"watched-secret", `
  watch: {apiVersion: v1, kind: Secret}`, "spec.watch"},
	}
	for _, c := range cases {
		createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:%s
  handler: {url: %q}
  callbacks: [{id: sync, events: [sync, create]}]
`, c.name, c.spec, h.URL))
	}
	createWidget(t, other, "example", 1)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			waitReady(t, c.name, "False/SecretNotAllowed")
			msg := readyCondition(t, c.name)
			for _, want := range []string{c.field, fmt.Sprintf("namespace %q", allowed)} {
				if !strings.Contains(msg, want) {
					t.Errorf("Ready = %s, want it to name %s", msg, want)
				}
			}
			eventually(t, 20*time.Second, func() error { return hasEvent(t, "default", c.name, "Warning", "SecretNotAllowed") })
		})
	}
	for _, cb := range []string{"sync", "create"} {
		if n := len(h.calls(cb)); n != 0 {
			b, _ := json.Marshal(h.calls(cb)[0])
			t.Fatalf("the handler got %d %s calls, the first %s; a refused operator must send nothing", n, cb, b)
		}
	}
}

// A related Secret of an operator that watches only the Secret namespace
// can only come from there: the operator runs, and its handler sees the
// Secrets of that namespace and no other.
func TestRelatedSecretsConfinedToTheSecretNamespaceAreSent(t *testing.T) {
	allowed, other := newNamespace(t), newNamespace(t)
	writeSecret(t, allowed, "mine", "ok")
	writeSecret(t, other, "stolen", "not-yours")
	h := newHandler(t, ok(nil))
	startGatewayWithOptions(t, runner.Options{SecretNamespace: allowed})
	const name = "related-secret-confined"
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  related: [{apiVersion: v1, kind: Secret}]
  handler: {url: %q}
  callbacks: [{id: sync, events: [sync]}]
`, name, allowed, h.URL))
	createWidget(t, allowed, "example", 1)
	waitReady(t, name, "True/")
	eventually(t, 30*time.Second, func() error {
		if len(h.calls("sync")) == 0 {
			return fmt.Errorf("no sync call yet")
		}
		return nil
	})
	for _, req := range h.calls("sync") {
		b, _ := json.Marshal(req)
		if strings.Contains(string(b), "stolen") || !strings.Contains(string(b), "mine") {
			t.Fatalf("sync request %s: want Secret mine of namespace %s and nothing else", b, allowed)
		}
	}
}
