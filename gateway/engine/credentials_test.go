package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/metrics"
	"github.com/opgate/opgate/gateway/spec"
)

const testNS = "handlers"

func secret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// credentialsFor builds the credentials of an operator whose handler has
// auth, against a fake API server holding objs, and keeps them watched
// until the test ends.
func credentialsFor(t *testing.T, kube *fake.Clientset, auth *spec.AuthSpec) (*credentials, *Controller) {
	t.Helper()
	c := credentialsController(t, kube, auth)
	cr, err := newCredentials(context.Background(), c)
	if err != nil {
		t.Fatalf("newCredentials: %v", err)
	}
	c.endpoints = cr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		cr.watch(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cr, c
}

// credentialsController is the controller of an operator whose handler has
// auth, its credentials not yet built.
func credentialsController(t *testing.T, kube *fake.Clientset, auth *spec.AuthSpec) *Controller {
	t.Helper()
	caller, err := call.New(call.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &Controller{
		Deps: Deps{Kube: kube, Caller: caller, Clock: time.Now, Recorder: record.NewFakeRecorder(100),
			SecretPollInterval: 20 * time.Millisecond},
		op: &spec.WebhookOperator{
			ObjectMeta: metav1.ObjectMeta{Name: "op", UID: "op-uid"},
			Spec: spec.OperatorSpec{
				Handler:   spec.HandlerSpec{URL: "https://handler.example", Auth: auth},
				Callbacks: []spec.Callback{{ID: "create", Events: []spec.Event{spec.EventCreate}}, {ID: "cleanup", Events: []spec.Event{spec.EventDelete}}},
			},
		},
		log: slog.New(slog.DiscardHandler),
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeSecret(t *testing.T, kube *fake.Clientset, s *corev1.Secret) {
	t.Helper()
	if _, err := kube.CoreV1().Secrets(testNS).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

var hmacAuth = &spec.AuthSpec{
	HMACSecretRef:        &spec.SecretKeyRef{Namespace: testNS, Name: "hmac", Key: "key"},
	BearerTokenSecretRef: &spec.SecretKeyRef{Namespace: testNS, Name: "token", Key: "token"},
}

func TestCredentialsFollowRotatedSecrets(t *testing.T) {
	for _, tt := range []struct {
		name      string
		forbidden bool // RBAC forbids list and watch: the Secrets are polled
	}{
		{"watched", false},
		{"polled when watching is forbidden", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kube := fake.NewClientset(secret("hmac", map[string]string{"key": "old-key"}), secret("token", map[string]string{"token": "old-token\n"}))
			if tt.forbidden {
				forbid := func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", fmt.Errorf("RBAC"))
				}
				kube.PrependReactor("list", "secrets", forbid)
				kube.PrependWatchReactor("secrets", func(a k8stesting.Action) (bool, watch.Interface, error) {
					_, _, err := forbid(a)
					return true, nil, err
				})
			}
			cr, _ := credentialsFor(t, kube, hmacAuth)
			if ep := cr.get("create"); string(ep.HMACSecret) != "old-key" || ep.BearerToken != "old-token" {
				t.Fatalf("initial endpoint = %q / %q, want the Secrets' contents", ep.HMACSecret, ep.BearerToken)
			}
			writeSecret(t, kube, secret("hmac", map[string]string{"key": "new-key"}))
			writeSecret(t, kube, secret("token", map[string]string{"token": "new-token"}))
			waitFor(t, "both callbacks use the rotated HMAC key and token", func() bool {
				for _, id := range []string{"create", "cleanup"} {
					if ep := cr.get(id); string(ep.HMACSecret) != "new-key" || ep.BearerToken != "new-token" {
						return false
					}
				}
				return true
			})
		})
	}
}

func TestCredentialsKeepLastGoodMaterialAndReportAMissingSecret(t *testing.T) {
	kube := fake.NewClientset(secret("hmac", map[string]string{"key": "good-key"}), secret("token", map[string]string{"token": "t"}))
	cr, c := credentialsFor(t, kube, hmacAuth)
	lastError := func() string { return c.lastProblem() }

	writeSecret(t, kube, secret("hmac", map[string]string{"other": "x"}))
	waitFor(t, "a Secret that lost its key is reported", func() bool {
		return strings.Contains(lastError(), `has no key "key"`)
	})
	if got := string(cr.get("create").HMACSecret); got != "good-key" {
		t.Errorf("HMAC key after the Secret lost it = %q, want the last good one", got)
	}
	if err := kube.CoreV1().Secrets(testNS).Delete(context.Background(), "hmac", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a deleted Secret is reported", func() bool { return strings.Contains(lastError(), "hmac not found") })
	if got := string(cr.get("cleanup").HMACSecret); got != "good-key" {
		t.Errorf("HMAC key after the Secret was deleted = %q, want the last good one", got)
	}
	events := c.Recorder.(*record.FakeRecorder).Events
	if e := <-events; !strings.Contains(e, "Warning SecretUnreadable") {
		t.Errorf("first event = %q, want a Warning SecretUnreadable on the WebhookOperator", e)
	}

	if _, err := kube.CoreV1().Secrets(testNS).Create(context.Background(), secret("hmac", map[string]string{"key": "recreated"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a recreated Secret is used and the problem cleared", func() bool {
		return string(cr.get("create").HMACSecret) == "recreated" && lastError() == ""
	})
}

func TestCredentialsRebuildTLSOnlyWhenItsMaterialChanges(t *testing.T) {
	certA, keyA := testClientCert(t)
	certB, keyB := testClientCert(t)
	tlsSecret := func(cert, key []byte, extra string) *corev1.Secret {
		return secret("client", map[string]string{corev1.TLSCertKey: string(cert), corev1.TLSPrivateKeyKey: string(key), "note": extra})
	}
	kube := fake.NewClientset(tlsSecret(certA, keyA, "a"))
	cr, _ := credentialsFor(t, kube, &spec.AuthSpec{ClientCertSecretRef: &spec.SecretRef{Namespace: testNS, Name: "client"}})
	first := cr.get("create").TLS
	if first == nil || cr.get("cleanup").TLS != first {
		t.Fatal("callbacks of one handler do not share one TLS configuration")
	}

	writeSecret(t, kube, tlsSecret(certA, keyA, "another note"))
	writeSecret(t, kube, tlsSecret(certB, keyB, "another note"))
	waitFor(t, "the rotated client certificate is used", func() bool { return cr.get("create").TLS != first })
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if len(cr.tlsConfigs) != 1 {
		t.Errorf("%d TLS configurations kept, want only the one in use (the old transport is let go)", len(cr.tlsConfigs))
	}
	if got := cr.get("create").TLS.Certificates[0].Certificate[0]; string(got) != string(pemDER(t, certB)) {
		t.Error("the new TLS configuration does not present the new certificate")
	}
}

func TestRelatedSelectorErrorIsReportedOncePerDistinctError(t *testing.T) {
	rec := record.NewFakeRecorder(10)
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c := &Controller{Deps: Deps{Clock: time.Now, Recorder: rec, Metrics: m}, op: &spec.WebhookOperator{}, log: slog.New(slog.DiscardHandler)}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "test.opgate.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"namespace": "ns", "name": "w"}}}
	errA, errB := errors.New(`no entry for key "image"`), errors.New(`no entry for key "app"`)
	for _, err := range []error{errA, errA, errB, errB} {
		c.noteRelatedError(obj, "ns/w", err)
	}
	if n := len(rec.Events); n != 2 {
		t.Errorf("%d Warning Events for 2 distinct errors over 4 passes, want 2", n)
	}
	if got := c.lastProblem(); !strings.Contains(got, `"app"`) || !strings.HasPrefix(got, "RelatedSelectorInvalid: ns/w: ") {
		t.Errorf("lastError = %q, want the newest selector error, its reason and object", got)
	}
	c.noteRelatedError(obj, "ns/w", nil)
	if got := c.lastProblem(); got != "" {
		t.Errorf("lastError = %q after the selector rendered again, want none", got)
	}
}

func testClientCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "opgate-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
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

func pemDER(t *testing.T, p []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil {
		t.Fatal("not PEM")
	}
	return b.Bytes
}

func TestCredentialsRefuseAWhsecSecretThatIsNotBase64(t *testing.T) {
	const good = "whsec_Z29vZC1rZXk="
	const bad = "whsec_not*base64!"
	kube := fake.NewClientset(secret("hmac", map[string]string{"key": good}), secret("token", map[string]string{"token": "t"}))
	cr, c := credentialsFor(t, kube, hmacAuth)

	writeSecret(t, kube, secret("hmac", map[string]string{"key": bad}))
	waitFor(t, "a whsec_ key that is not base64 is reported", func() bool {
		return strings.Contains(c.lastProblem(), "not standard base64")
	})
	if p := c.lastProblem(); strings.Contains(p, "not*base64") || !strings.Contains(p, "hmac") {
		t.Errorf("problem %q: want the Secret named and its content left out", p)
	}
	if got := string(cr.get("create").HMACSecret); got != good {
		t.Errorf("HMAC secret after the bad rotation = %q, want the last good one", got)
	}
}

// allAuth references every Secret-held credential kind: an HMAC key, a
// bearer token and a client certificate.
var allAuth = &spec.AuthSpec{
	HMACSecretRef:        &spec.SecretKeyRef{Namespace: testNS, Name: "hmac", Key: "key"},
	BearerTokenSecretRef: &spec.SecretKeyRef{Namespace: testNS, Name: "token", Key: "token"},
	ClientCertSecretRef:  &spec.SecretRef{Namespace: testNS, Name: "client"},
}

// goodSecrets returns the Secrets of allAuth, each holding its material.
func goodSecrets(cert, key []byte) map[string]*corev1.Secret {
	return map[string]*corev1.Secret{
		"hmac":   secret("hmac", map[string]string{"key": "good-key"}),
		"token":  secret("token", map[string]string{"token": "good-token"}),
		"client": secret("client", map[string]string{corev1.TLSCertKey: string(cert), corev1.TLSPrivateKeyKey: string(key)}),
	}
}

// secretsWithoutMaterial are Secrets of allAuth that lost their material:
// each would otherwise send calls without the credential, or with a blank
// one. want is the problem, naming the Secret and its key.
func secretsWithoutMaterial(cert, key []byte) []struct {
	name string
	bad  *corev1.Secret
	want string
} {
	return []struct {
		name string
		bad  *corev1.Secret
		want string
	}{
		{"client certificate and key under other keys",
			secret("client", map[string]string{"cert.pem": string(cert), "key.pem": string(key)}),
			`Secret handlers/client has no key "tls.crt"`},
		{"client certificate without its key",
			secret("client", map[string]string{corev1.TLSCertKey: string(cert)}),
			`Secret handlers/client has no key "tls.key"`},
		{"client key without its certificate",
			secret("client", map[string]string{corev1.TLSPrivateKeyKey: string(key)}),
			`Secret handlers/client has no key "tls.crt"`},
		{"empty client certificate",
			secret("client", map[string]string{corev1.TLSCertKey: "", corev1.TLSPrivateKeyKey: string(key)}),
			`Secret handlers/client key "tls.crt" is empty`},
		{"empty bearer token",
			secret("token", map[string]string{"token": ""}),
			`Secret handlers/token key "token" is empty`},
		{"bearer token of whitespace",
			secret("token", map[string]string{"token": " \n"}),
			`Secret handlers/token key "token" is empty`},
		{"bearer token of two lines",
			secret("token", map[string]string{"token": "first-half\nsecond-half\n"}),
			`Secret handlers/token key "token" holds a line break or another control character inside the token`},
		{"bearer token with a carriage return inside",
			secret("token", map[string]string{"token": "first-half\r\nsecond-half"}),
			`Secret handlers/token key "token" holds a line break or another control character inside the token`},
		{"empty HMAC key",
			secret("hmac", map[string]string{"key": ""}),
			`Secret handlers/hmac key "key" is empty`},
		{"HMAC key of whitespace",
			secret("hmac", map[string]string{"key": "\n"}),
			`Secret handlers/hmac key "key" is empty`},
	}
}

func TestCredentialsKeepLastGoodMaterialWhenARotationLeavesItMissingOrEmpty(t *testing.T) {
	cert, key := testClientCert(t)
	for _, tt := range secretsWithoutMaterial(cert, key) {
		t.Run(tt.name, func(t *testing.T) {
			kube := fake.NewClientset()
			for _, s := range goodSecrets(cert, key) {
				if _, err := kube.CoreV1().Secrets(testNS).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			cr, c := credentialsFor(t, kube, allAuth)
			before := cr.get("create")

			writeSecret(t, kube, tt.bad)
			waitFor(t, "the rotation is reported or changes the endpoint", func() bool {
				return c.lastProblem() != "" || !sameEndpoint(cr.get("create"), before)
			})
			if ep := cr.get("create"); !sameEndpoint(ep, before) {
				t.Errorf("endpoint changed: HMAC key %q, bearer token %q, %d client certificates; want the last good material kept",
					ep.HMACSecret, ep.BearerToken, len(ep.TLS.Certificates))
			}
			if p := c.lastProblem(); !strings.Contains(p, tt.want) {
				t.Errorf("problem = %q, want %q", p, tt.want)
			}
		})
	}
}

func TestCredentialsRefuseAtStartASecretWithoutItsMaterial(t *testing.T) {
	cert, key := testClientCert(t)
	for _, tt := range secretsWithoutMaterial(cert, key) {
		t.Run(tt.name, func(t *testing.T) {
			secrets := goodSecrets(cert, key)
			secrets[tt.bad.Name] = tt.bad
			kube := fake.NewClientset(secrets["hmac"], secrets["token"], secrets["client"])
			cr, err := newCredentials(context.Background(), credentialsController(t, kube, allAuth))
			if err == nil {
				ep := cr.get("create")
				t.Fatalf("started with HMAC key %q, bearer token %q, %d client certificates; want %s",
					ep.HMACSecret, ep.BearerToken, len(ep.TLS.Certificates), tt.want)
			}
			if f := failure.As(err); f.Reason != reasonSecretUnreadable || f.Class != failure.Temporary {
				t.Errorf("failure %s %s, want temporary %s (the operator waits for a fixed Secret)", f.Class, f.Reason, reasonSecretUnreadable)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
		})
	}
}
