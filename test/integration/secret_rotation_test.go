package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
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

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// rotatingVerifier is a handler's signature check whose accepted secrets
// the test changes mid-flight, as a handler does during a rotation.
type rotatingVerifier struct {
	mu      sync.Mutex
	v       *callbacks.Verifier
	refused atomic.Int32
}

func (r *rotatingVerifier) accept(t *testing.T, secrets ...string) {
	t.Helper()
	raw := make([][]byte, len(secrets))
	for i, s := range secrets {
		raw[i] = []byte(s)
	}
	v, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secrets: raw})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.v = v
	r.mu.Unlock()
}

func (r *rotatingVerifier) verify(h http.Header, body []byte) error {
	r.mu.Lock()
	v := r.v
	r.mu.Unlock()
	if err := v.Verify(h, body); err != nil {
		r.refused.Add(1)
		return err
	}
	return nil
}

// whsec writes a key the Standard Webhooks way.
func whsec(key string) string { return "whsec_" + base64.StdEncoding.EncodeToString([]byte(key)) }

func TestSecretRotatedWhileCallsAreInFlight(t *testing.T) {
	ns := newNamespace(t)
	const (
		oldKey = "old-hmac-key-9f3a1c77e2"
		newKey = "new-hmac-key-4b8d0e11c5"
		token  = "bearer-token-7c2e95aa10"
		// The last key is raw, not whsec_: both forms are in use.
		lastKey = "last-hmac-key-0a9e6b3d58"
		// A rotation gone wrong: whsec_ with a rest that is not base64.
		badKey = "whsec_broken*rotation*6d1f"
	)
	run := newFaultRun(t, ns)
	verifier := &rotatingVerifier{}
	verifier.accept(t, whsec(oldKey))
	var tokenRefused atomic.Int32
	srv := newRecordedServer(t, run, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		if err := verifier.verify(r.Header, raw); err != nil {
			http.Error(w, "signature refused: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			tokenRefused.Add(1)
			http.Error(w, "wrong bearer token", http.StatusUnauthorized)
			return
		}
		// Slow enough that a rotation lands while calls are in flight.
		time.Sleep(150 * time.Millisecond)
		writeAnswer(w, req)
	}))
	writeSecret(t, ns, "hook-key", whsec(oldKey))
	if _, err := kube(t).CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "hook-token"}, Data: map[string][]byte{"token": []byte(token)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	stop, _ := startGatewayWithOptions(t, runner.Options{Logger: logs.logger()})
	defer stop()
	name := "rotate-" + ns[len(ns)-5:]
	createOperatorObject(t, fmt.Sprintf(`
apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata: {name: %s}
spec:
  watch: {apiVersion: test.opgate.dev/v1, kind: Widget, namespaces: [%s]}
  children: [{apiVersion: v1, kind: ConfigMap}]
  retry: {initialDelay: 100ms, multiplier: 2, jitter: 0, maxDelay: 2s}
  handler:
    url: %q
    auth:
      hmacSecretRef: {namespace: %s, name: hook-key, key: key}
      bearerTokenSecretRef: {namespace: %s, name: hook-token, key: token}
  callbacks:
    - {id: make, events: [create]}
    - {id: resize, events: [update]}
    - {id: clean, events: [delete]}
`, name, ns, srv.URL, ns, ns))
	run.expect(&spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec.OperatorSpec{Callbacks: faultCallbacks()}})
	waitReady(t, name, "True/Running")

	ctx := context.Background()
	const objects = 6
	changeAll := func(image string) {
		t.Helper()
		for i := range objects {
			var err error
			if image == "v1" {
				err = run.create(ctx, fmt.Sprintf("w%d", i), image)
			} else {
				err = run.setImage(ctx, fmt.Sprintf("w%d", i), image)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	// A graceful rotation: the handler accepts both keys before the
	// Secret changes, and drops the old one once the calls are done.
	changeAll("v1")
	verifier.accept(t, whsec(oldKey), whsec(newKey))
	writeSecret(t, ns, "hook-key", whsec(newKey))
	changeAll("v2")
	run.chk.AssertEventually(t, 60*time.Second)
	if n := verifier.refused.Load(); n != 0 {
		t.Errorf("%d calls refused during a rotation where the handler held both keys", n)
	}
	verifier.accept(t, whsec(newKey))

	// A broken rotation: the gateway keeps the last good key and says why
	// on the WebhookOperator, without the key.
	writeSecret(t, ns, "hook-key", badKey)
	eventually(t, 30*time.Second, func() error {
		if e := operatorLastError(t, name); !strings.Contains(e, "not standard base64") {
			return fmt.Errorf("WebhookOperator lastError = %q, want the invalid whsec_ key", e)
		}
		return nil
	})
	changeAll("v3")
	run.chk.AssertEventually(t, 60*time.Second)

	// An abrupt rotation: the handler switches first, the Secret follows
	// while calls are in flight; the refusals in between are retried.
	changeAll("v4")
	verifier.accept(t, lastKey)
	writeSecret(t, ns, "hook-key", lastKey)
	changeAll("v5")
	for i := range objects {
		if i%2 == 0 {
			if err := run.remove(ctx, fmt.Sprintf("w%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, took := run.chk.AssertEventually(t, 60*time.Second)
	t.Logf("abrupt rotation: %d calls refused and retried; invariants hold %s after the last change",
		verifier.refused.Load(), took.Round(100*time.Millisecond))
	if n := tokenRefused.Load(); n != 0 {
		t.Errorf("%d calls came with a wrong bearer token", n)
	}

	stop() // every log line written
	secrets := []string{oldKey, newKey, lastKey, token, badKey, whsec(oldKey), whsec(newKey)}
	assertNoSecretIn(t, secrets, "the gateway's log", logs.String())
	assertNoSecretIn(t, secrets, "Events", eventText(t, ns, metav1.NamespaceDefault))
	assertNoSecretIn(t, secrets, "statuses", statusText(t, ns, name))
}

// assertNoSecretIn fails when text holds any secret, as itself or in
// standard or URL-safe base64, with or without padding.
func assertNoSecretIn(t *testing.T, secrets []string, where, text string) {
	t.Helper()
	if text == "" {
		t.Errorf("%s: nothing captured to search", where)
	}
	for _, s := range secrets {
		forms := map[string]string{"plain": s}
		for name, enc := range map[string]*base64.Encoding{
			"base64": base64.StdEncoding, "raw base64": base64.RawStdEncoding,
			"url base64": base64.URLEncoding, "raw url base64": base64.RawURLEncoding,
		} {
			forms[name] = enc.EncodeToString([]byte(s))
		}
		if rest, ok := strings.CutPrefix(s, "whsec_"); ok {
			forms["whsec part"] = rest
		}
		for form, v := range forms {
			if strings.Contains(text, v) {
				t.Errorf("%s holds a secret (%s form %q)", where, form, v)
			}
		}
	}
}

// eventText is every Event in the namespaces, as text.
func eventText(t *testing.T, namespaces ...string) string {
	t.Helper()
	var b strings.Builder
	for _, ns := range namespaces {
		list, err := kube(t).CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list Events: %v", err)
		}
		for _, e := range list.Items {
			fmt.Fprintf(&b, "%s %s %s %s\n", e.InvolvedObject.Name, e.Type, e.Reason, e.Message)
		}
	}
	return b.String()
}

// statusText is the status of every Widget in ns and of the
// WebhookOperator, as JSON.
func statusText(t *testing.T, ns, operator string) string {
	t.Helper()
	var b strings.Builder
	list, err := dyn(t).Resource(widgets).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range list.Items {
		data, _ := json.Marshal(w.Object["status"])
		b.Write(data)
		b.WriteByte('\n')
	}
	op, err := dyn(t).Resource(engine.OperatorResource).Get(context.Background(), operator, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(op.Object["status"])
	b.Write(data)
	return b.String()
}
