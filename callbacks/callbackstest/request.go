package callbackstest

import (
	"strings"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks/essence"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/callbacks"
)

// DefaultOperator is the operator name of a request built by NewRequest.
const DefaultOperator = "test"

// DefaultTimeout is how far in the future a request's deadline lies; a Mux
// gives its handler a context that ends then.
const DefaultTimeout = 30 * time.Second

// Option changes the request NewRequest builds.
type Option func(t testing.TB, req *callbacks.Request)

// NewRequest builds the request the gateway would send for event about the
// object written in objectYAML (YAML or JSON). By default the callback id
// is the event's name, the attempt 1, the operator DefaultOperator, the uid
// fixed for the event and object, and the deadline DefaultTimeout from now.
// The test fails if an object cannot be decoded.
func NewRequest(t testing.TB, event callbacks.Event, objectYAML string, opts ...Option) *callbacks.Request {
	t.Helper()
	obj := Object(t, objectYAML)
	req := &callbacks.Request{
		APIVersion: callbacks.APIVersion,
		Kind:       callbacks.RequestKind,
		UID:        "callbackstest-" + string(event) + "-" + obj.GetNamespace() + "-" + obj.GetName(),
		Event:      event,
		Operator:   DefaultOperator,
		Callback:   string(event),
		Attempt:    1,
		Deadline:   time.Now().Add(DefaultTimeout).UTC(),
		Object:     obj,
	}
	for _, o := range opts {
		o(t, req)
	}
	return req
}

// WithCallback sets the callback id, which a Mux routes on when no
// handler is registered for the path (see AtPath), before the event.
func WithCallback(id string) Option {
	return func(_ testing.TB, req *callbacks.Request) { req.Callback = id }
}

// WithAttempt sets the attempt number (1 for the first delivery).
func WithAttempt(n int) Option {
	return func(_ testing.TB, req *callbacks.Request) { req.Attempt = n }
}

// WithUID sets the delivery id.
func WithUID(uid string) Option {
	return func(_ testing.TB, req *callbacks.Request) { req.UID = uid }
}

// WithOperator sets the operator name.
func WithOperator(name string) Option {
	return func(_ testing.TB, req *callbacks.Request) { req.Operator = name }
}

// WithDeadline sets when the gateway would stop waiting for the answer.
func WithDeadline(d time.Time) Option {
	return func(_ testing.TB, req *callbacks.Request) { req.Deadline = d.UTC() }
}

// WithOld sets the last handled object and the diff from it to the current
// one, as the gateway sends them with update: "old" keeps only what the
// gateway remembers (spec and other top-level fields, labels, annotations;
// no status), and "diff" is the gateway's own field diff.
func WithOld(objectYAML string) Option {
	return func(t testing.TB, req *callbacks.Request) {
		t.Helper()
		before := essence.Of(Object(t, objectYAML))
		req.Diff = essence.Diff(before, essence.Of(req.Object))
		req.Old = essence.OldObject(req.Object, runtime.DeepCopyJSON(before))
	}
}

// WithChildren adds observed children, keyed as the gateway keys them
// ("apps/v1/Deployment", then the name, or namespace/name when the child is
// in another namespace than the parent). The gateway sends children with
// sync and delete only.
func WithChildren(objectsYAML ...string) Option {
	return func(t testing.TB, req *callbacks.Request) {
		t.Helper()
		req.Children = addObjects(t, req.Children, req.Object, objectsYAML)
	}
}

// WithRelated adds related objects, keyed like WithChildren's. The gateway
// sends related objects with sync and delete only.
func WithRelated(objectsYAML ...string) Option {
	return func(t testing.TB, req *callbacks.Request) {
		t.Helper()
		req.Related = addObjects(t, req.Related, req.Object, objectsYAML)
	}
}

func addObjects(t testing.TB, into map[string]map[string]*unstructured.Unstructured, parent *unstructured.Unstructured, docs []string) map[string]map[string]*unstructured.Unstructured {
	t.Helper()
	if into == nil {
		into = map[string]map[string]*unstructured.Unstructured{}
	}
	for _, doc := range docs {
		o := Object(t, doc)
		key := callbacks.KindKey(o.GetAPIVersion(), o.GetKind())
		if into[key] == nil {
			into[key] = map[string]*unstructured.Unstructured{}
		}
		name := o.GetName()
		if ns := o.GetNamespace(); ns != "" && ns != parent.GetNamespace() {
			name = ns + "/" + name
		}
		if _, dup := into[key][name]; dup {
			t.Fatalf("callbackstest: two %s objects named %q", key, name)
		}
		into[key][name] = o
	}
	return into
}

// Object decodes an object written in YAML or JSON, failing the test when
// it cannot. Integers become int64, as in objects read from the API.
func Object(t testing.TB, objectYAML string) *unstructured.Unstructured {
	t.Helper()
	data, err := yaml.YAMLToJSON([]byte(dedent(objectYAML)))
	if err != nil {
		t.Fatalf("callbackstest: object is not YAML or JSON: %v\n%s", err, objectYAML)
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatalf("callbackstest: not a Kubernetes object (apiVersion, kind, metadata): %v\n%s", err, objectYAML)
	}
	return &u
}

// dedent removes the whitespace prefix that all non-blank lines share, so
// that YAML in an indented Go raw string (where tabs are likely, and YAML
// forbids them) reads as written.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	prefix, first := "", true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = indent, false
			continue
		}
		for !strings.HasPrefix(indent, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
	}
	return strings.Join(lines, "\n")
}
