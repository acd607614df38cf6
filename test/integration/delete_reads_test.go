package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// requestLog counts the requests a client makes, by method and path.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

// count is how many requests had method and a path with the prefix.
func (l *requestLog) count(method, prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seen {
		if strings.HasPrefix(s, method+" "+prefix) {
			n++
		}
	}
	return n
}

// matching lists the requests whose path starts with prefix.
func (l *requestLog) matching(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.seen {
		if _, p, _ := strings.Cut(s, " "); strings.HasPrefix(p, prefix) {
			out = append(out, s)
		}
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestDeletedObjectIsNotReadBackAfterItsFinalizerIsReleased: once the
// gateway has run an object's delete callback and released its finalizer,
// the object's disappearance from the watch is no reason to read it again
// (that read is for objects that left the selection still holding what
// the gateway put on them).
func TestDeletedObjectIsNotReadBackAfterItsFinalizerIsReleased(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	requests := &requestLog{}
	config := rest.CopyConfig(cfg)
	config.Wrap(requests.wrap)
	// One worker: keys are handled in the order the watch reported them,
	// so the sentinel's create callback comes after every earlier pass.
	startGatewayWithConfig(t, config, runner.Options{Workers: 1}, operatorFor(t, "readback", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Callbacks = []spec.Callback{
			{ID: "make", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}))
	const n = 5
	for i := range n {
		createWidget(t, ns, fmt.Sprintf("w-%d", i), 1)
	}
	eventually(t, 30*time.Second, func() error {
		if got := len(h.calls("make")); got < n {
			return fmt.Errorf("%d of %d create callbacks", got, n)
		}
		return nil
	})
	for i := range n {
		if err := dyn(t).Resource(widgets).Namespace(ns).Delete(context.Background(), fmt.Sprintf("w-%d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		waitWidgetGone(t, ns, fmt.Sprintf("w-%d", i))
	}
	createWidget(t, ns, "sentinel", 1)
	eventually(t, 30*time.Second, func() error {
		for _, r := range h.calls("make") {
			if r.Object.GetName() == "sentinel" {
				return nil
			}
		}
		return fmt.Errorf("no create callback for the sentinel yet")
	})
	if got := len(h.calls("cleanup")); got != n {
		t.Errorf("cleanup called %d times, want %d", got, n)
	}
	path := fmt.Sprintf("/apis/test.opgate.dev/v1/namespaces/%s/widgets/w-", ns)
	if got := requests.count(http.MethodGet, path); got != 0 {
		t.Errorf("the gateway read deleted widgets back %d times after releasing them, want 0; its requests for them:\n%s", got, strings.Join(requests.matching(path), "\n"))
	}
}
