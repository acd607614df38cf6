package spec

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func dur(d time.Duration) *Duration { return &Duration{d} }

// validOperator is a minimal operator that passes Validate.
func validOperator() *WebhookOperator {
	return &WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: OperatorSpec{
			Watch:    WatchSpec{APIVersion: "cache.example.com/v1alpha1", Kind: "Memcached"},
			Children: []ChildSpec{{APIVersion: "apps/v1", Kind: "Deployment"}},
			Related:  []RelatedSpec{{APIVersion: "v1", Kind: "Pod"}},
			Handler:  HandlerSpec{URL: "http://127.0.0.1:8081"},
			Callbacks: []Callback{
				{ID: "create", Events: []Event{EventCreate}, Path: "/create"},
				{ID: "resize", Events: []Event{EventUpdate}, When: &When{Fields: []string{"spec.size"}}},
				{ID: "backup", Events: []Event{EventTimer}, Interval: dur(time.Hour)},
			},
		},
	}
}

// testCABundle returns a base64 PEM bundle with one self-signed certificate.
func testCABundle(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestValidate(t *testing.T) {
	caBundle := testCABundle(t)
	tests := []struct {
		name   string
		change func(op *WebhookOperator)
		want   []string // "path: message substring", one per expected error
	}{
		{"a valid operator passes", func(*WebhookOperator) {}, nil},
		{"callback ids must be unique", func(op *WebhookOperator) {
			op.Spec.Callbacks[2].ID = "create"
		}, []string{`/spec/callbacks/2/id: duplicate callback id "create" (also callbacks[0])`}},
		{"a timer needs an interval", func(op *WebhookOperator) {
			op.Spec.Callbacks[2].Interval = nil
		}, []string{"/spec/callbacks/2: a timer callback needs interval"}},
		{"the interval of a timer must be positive", func(op *WebhookOperator) {
			op.Spec.Callbacks[2].Interval = dur(0)
		}, []string{"/spec/callbacks/2/interval: must be greater than 0"}},
		{"only timers take interval, initialDelay and idle", func(op *WebhookOperator) {
			c := &op.Spec.Callbacks[0]
			c.Interval, c.InitialDelay, c.Idle = dur(time.Minute), dur(time.Second), dur(time.Second)
		}, []string{
			"/spec/callbacks/0/interval: only timer callbacks take interval",
			"/spec/callbacks/0/initialDelay: only timer callbacks take initialDelay",
			"/spec/callbacks/0/idle: only timer callbacks take idle",
		}},
		{"when.fields only on a callback on update alone", func(op *WebhookOperator) {
			op.Spec.Callbacks[1].Events = []Event{EventCreate, EventUpdate}
		}, []string{"/spec/callbacks/1/when/fields: only a callback on update alone may filter by fields"}},
		{"when.fields must be paths that can fire update", func(op *WebhookOperator) {
			op.Spec.Callbacks[1].When.Fields = []string{"spec..size", "status.nodes", "metadata.name", "metadata.labels.tier", "spec"}
		}, []string{
			`/spec/callbacks/1/when/fields/0: "spec..size": must be a dotted path`,
			`/spec/callbacks/1/when/fields/1: "status.nodes": status changes never fire update`,
			`/spec/callbacks/1/when/fields/2: "metadata.name": of metadata only labels and annotations fire update`,
		}},
		{"when.labels values are label values or present/absent", func(op *WebhookOperator) {
			op.Spec.Callbacks[1].When.Labels = map[string]string{"tier": "cache", "app": FilterPresent, "bad key!": "x", "zone": "a b"}
		}, []string{
			`/spec/callbacks/1/when/labels/bad key!: label key "bad key!"`,
			`/spec/callbacks/1/when/labels/zone: label value "a b"`,
		}},
		{"some endpoint for every callback", func(op *WebhookOperator) {
			op.Spec.Handler.URL = ""
			op.Spec.Callbacks[0].Handler = &HandlerSpec{Service: &ServiceRef{Namespace: "demo", Name: "h"}}
		}, []string{"/spec/handler: set url or service, here or on every callback; callbacks[1] (resize), callbacks[2] (backup) have none"}},
		{"an endpoint on every callback is enough", func(op *WebhookOperator) {
			op.Spec.Handler.URL = ""
			for i := range op.Spec.Callbacks {
				op.Spec.Callbacks[i].Handler = &HandlerSpec{URL: "http://h"}
			}
		}, nil},
		{"url and service are exclusive, also on a callback", func(op *WebhookOperator) {
			op.Spec.Callbacks[0].Handler = &HandlerSpec{URL: "http://h", Service: &ServiceRef{Namespace: "a", Name: "b"}}
		}, []string{"/spec/callbacks/0/handler: set only one of url, service"}},
		{"a timeout must be positive", func(op *WebhookOperator) {
			op.Spec.Handler.Timeout = dur(0)
		}, []string{"/spec/handler/timeout: must be greater than 0"}},
		{"a CA bundle must hold PEM certificates", func(op *WebhookOperator) {
			op.Spec.Handler.Auth = &AuthSpec{CABundle: base64.StdEncoding.EncodeToString([]byte("hello"))}
		}, []string{"/spec/handler/auth/caBundle: holds no PEM CERTIFICATE block"}},
		{"a CA bundle with a certificate passes", func(op *WebhookOperator) {
			op.Spec.Handler.Auth = &AuthSpec{CABundle: caBundle}
		}, nil},
		{"a kind is declared once among children, whatever its version", func(op *WebhookOperator) {
			op.Spec.Children = append(op.Spec.Children, ChildSpec{APIVersion: "apps/v1beta2", Kind: "Deployment"})
		}, []string{"/spec/children/1: Deployment.apps is already declared in children[0]"}},
		{"a kind is declared once among related objects", func(op *WebhookOperator) {
			op.Spec.Related = append(op.Spec.Related, RelatedSpec{APIVersion: "v1", Kind: "Pod"})
		}, []string{"/spec/related/1: Pod is already declared in related[0]"}},
		{"apiVersions must be group/version", func(op *WebhookOperator) {
			op.Spec.Watch.APIVersion = "cache.example.com/v1/extra"
			op.Spec.Children[0].APIVersion = "Apps/v1"
			op.Spec.Related[0].APIVersion = "apps/"
		}, []string{
			`/spec/watch/apiVersion: "cache.example.com/v1/extra" is not group/version`,
			`/spec/children/0/apiVersion: group "Apps"`,
			`/spec/related/0/apiVersion: "apps/" has no version`,
		}},
		{"the watch selector must be a valid label selector", func(op *WebhookOperator) {
			op.Spec.Watch.LabelSelector = &metav1.LabelSelector{
				MatchLabels: map[string]string{"app": "{{ .x }}"},
				MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn},
					{Key: "zone", Operator: metav1.LabelSelectorOpExists, Values: []string{"a"}},
				},
			}
		}, []string{
			`/spec/watch/labelSelector/matchLabels/app: label value "{{ .x }}"`,
			"/spec/watch/labelSelector/matchExpressions/0/values: must not be empty with operator In",
			"/spec/watch/labelSelector/matchExpressions/1/values: must be empty with operator Exists",
		}},
		{"related selector values may be templates over the parent", func(op *WebhookOperator) {
			op.Spec.Related[0].LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"memcached_cr": "{{ .metadata.name }}"}}
		}, nil},
		{"related selector templates must parse and use only what applies to JSON data", func(op *WebhookOperator) {
			op.Spec.Related[0].LabelSelector = &metav1.LabelSelector{
				MatchLabels: map[string]string{"a": "{{ call .f }}", "b": "{{ .x ", "c": "x-{{ .metadata.name | printf \"%s\" }}"},
				MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "d", Operator: metav1.LabelSelectorOpIn, Values: []string{"plain", `{{ template "t" . }}`}},
				},
			}
		}, []string{
			`/spec/related/0/labelSelector/matchLabels/a: template "{{ call .f }}": template: selector:1:3: the call function is not supported`,
			`/spec/related/0/labelSelector/matchLabels/b: template "{{ .x ": template: selector:1: unclosed action`,
			`/spec/related/0/labelSelector/matchExpressions/0/values/1: template "{{ template \"t\" . }}": template: selector:1:12: {{template "t"}}: named templates (define, block, template) are not supported`,
		}},
		{"backoff cannot start above its maximum", func(op *WebhookOperator) {
			op.Spec.Retry = &RetrySpec{MaxDelay: dur(time.Minute)}
			op.Spec.Callbacks[0].Retry = &RetrySpec{InitialDelay: dur(2 * time.Minute)}
		}, []string{"/spec/callbacks/0/retry/maxDelay: must not be less than initialDelay (1m0s < 2m0s)"}},
		{"the name must leave room for the state annotation", func(op *WebhookOperator) {
			op.Name = strings.Repeat("a", MaxNameLength+1)
		}, []string{"/metadata/name: must be at most 57 characters"}},
		{"the resync period must be positive", func(op *WebhookOperator) {
			op.Spec.ResyncPeriod = dur(0)
		}, []string{"/spec/resyncPeriod: must be greater than 0"}},
		{"unknown events are refused", func(op *WebhookOperator) {
			op.Spec.Callbacks[0].Events = []Event{"created"}
		}, []string{`/spec/callbacks/0/events/0: unknown event "created"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := validOperator()
			tt.change(op)
			err := Validate(op)
			var list ErrorList
			if err != nil && !errors.As(err, &list) {
				t.Fatalf("Validate() error is %T, want an ErrorList", err)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("Validate() = %d errors, want %d:\n%v", len(list), len(tt.want), err)
			}
			for _, want := range tt.want {
				if !hasError(list, want) {
					t.Errorf("Validate() errors lack %q; got:\n%v", want, err)
				}
			}
		})
	}
}

// hasError reports whether one error has the path and starts its message
// with the text of want ("path: message").
func hasError(list ErrorList, want string) bool {
	path, msg, _ := strings.Cut(want, ": ")
	for _, e := range list {
		if e.Path == path && strings.HasPrefix(e.Message, msg) {
			return true
		}
	}
	return false
}

func TestValidateNamesTheOperatorInEveryError(t *testing.T) {
	op := validOperator()
	op.Spec.Callbacks[2].Interval = nil
	err := Validate(op)
	if got, want := errorLines(err), "memcached: /spec/callbacks/2: a timer callback needs interval"; len(got) != 1 || got[0] != want {
		t.Errorf("Validate() = %q, want %q", got, want)
	}
}
