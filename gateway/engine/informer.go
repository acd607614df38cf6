package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/spec"
)

// watchHealth remembers, per informer, the last error the API server gave
// to its list or watch, until a later list or watch of it succeeds.
// client-go's reflectors retry with backoff by themselves; this is what
// lets the gateway say why a cache does not sync (or went stale) instead
// of waiting in silence.
type watchHealth struct {
	onChange func() // called after every change; may be nil

	mu   sync.Mutex
	errs map[string]error // by informer description
}

// observeCall records the outcome of one list or watch call of informer
// what. Unlike a watch that ends, a call that fails with EOF did not
// reach the API server (a load balancer in front of a dead one answers
// so): it is a failure to report.
func (h *watchHealth) observeCall(what string, err error) {
	if rereads(err) {
		return
	}
	h.record(what, steady(err))
}

// observeFailure records a failure the reflector reports, unless a list
// or watch call of what already did: the reflector reports a call's
// failure again, wrapped ("failed to list …"), and two messages for one
// failure would count as a change each time.
func (h *watchHealth) observeFailure(what string, err error) {
	if resumable(err) {
		return
	}
	h.mu.Lock()
	_, had := h.errs[what]
	h.mu.Unlock()
	if !had {
		h.record(what, steady(err))
	}
}

// steady is err with what changes from try to try cut from its message,
// so that one failure reads the same on every try (record counts a new
// message as a new failure): the query of the URL it names (the reflector
// asks each watch for another random timeoutSeconds) and the local
// address of a connection (each try dials from another port).
func steady(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.RawQuery != "" {
			u.RawQuery = ""
			msg = strings.Replace(msg, ue.URL, u.String(), 1)
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Source != nil && op.Addr != nil {
		msg = strings.Replace(msg, op.Source.String()+"->", "", 1)
	}
	if msg == err.Error() {
		return err
	}
	return steadyError{msg: msg, err: err}
}

// steadyError is an error with its message made steady.
type steadyError struct {
	msg string
	err error
}

func (q steadyError) Error() string { return q.msg }
func (q steadyError) Unwrap() error { return q.err }

func (h *watchHealth) record(what string, err error) {
	h.mu.Lock()
	prev, had := h.errs[what]
	switch {
	case err == nil:
		delete(h.errs, what)
	default:
		if h.errs == nil {
			h.errs = map[string]error{}
		}
		h.errs[what] = err
	}
	changed := had != (err != nil) || had && prev.Error() != err.Error()
	h.mu.Unlock()
	if changed && h.onChange != nil {
		h.onChange()
	}
}

// failing returns one failing informer (the first by name, so messages
// are stable) and its error; ok is false when none fails.
func (h *watchHealth) failing() (what string, err error, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) == 0 {
		return "", nil, false
	}
	names := make([]string, 0, len(h.errs))
	for n := range h.errs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names[0], h.errs[names[0]], true
}

// anyUnreachable: an informer's last call could not reach the API server,
// or was answered that it cannot serve now (unreachable).
func (h *watchHealth) anyUnreachable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range h.errs {
		if unreachable(err) {
			return true
		}
	}
	return false
}

// resumable errors end a watch that the reflector resumes or relists
// straight away: they say nothing about whether the cache can be filled.
func resumable(err error) bool {
	return rereads(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// rereads: the reflector reads again at once (from another revision), or
// stops.
func rereads(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, context.Canceled) ||
		apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge)
}

// watchFailure turns a failing informer into a Ready reason and message
// that carries the API server's own words. A resource the API server does
// not serve (its CRD deleted) is KindNotFound, as when the operator starts
// so: the registration's fault, not the gateway's (gatewaySide).
func watchFailure(what string, err error) (reason, message string) {
	switch {
	case apierrors.IsForbidden(err):
		reason = spec.ReasonForbidden
	case apierrors.IsNotFound(err):
		reason = spec.ReasonKindNotFound
	default:
		reason = spec.ReasonWatchFailed
	}
	return reason, fmt.Sprintf("cannot list and watch %s (retrying with backoff): %v", what, err)
}

// selection is what an informer asks the API server for besides a
// resource and namespace.
type selection struct{ labels, fields string }

func (s selection) apply(o *metav1.ListOptions) {
	o.LabelSelector, o.FieldSelector = s.labels, s.fields
}

// describeInformer names what an informer watches: "deployments.apps in
// namespace shop labelled opgate.dev/operator=m", "widgets.test.opgate.dev".
// The name is the informer's key in watchHealth, so two informers of one
// kind need two names (see watched.describe): one's success must not
// clear the other's error.
func describeInformer(gvr schema.GroupVersionResource, namespace string, sel selection) string {
	what := gvr.GroupResource().String()
	if namespace != metav1.NamespaceAll {
		what += " in namespace " + namespace
	}
	if sel.labels != "" {
		what += " labelled " + sel.labels
	}
	if sel.fields != "" {
		what += " with " + sel.fields
	}
	return what
}

// newTrackedInformer is dynamicinformer.NewFilteredDynamicInformer whose
// every list and watch outcome is told to health, under the name what.
func newTrackedInformer(d Deps, gvr schema.GroupVersionResource, namespace string,
	sel selection, what string, indexers cache.Indexers, health *watchHealth) cache.SharedIndexInformer {
	dyn := d.Dynamic
	lw := trackedListWatch(what, sel, health,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return d.list(ctx, gvr, namespace, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return d.watch(ctx, gvr, namespace, o)
		})
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, dyn),
		&unstructured.Unstructured{}, cache.SharedIndexInformerOptions{Indexers: indexers, ObjectDescription: gvr.String()})
	// managedFields is often the largest part of an object and nothing the
	// gateway reads; dropping it before the cache keeps it out of memory.
	_ = inf.SetTransform(dropManagedFields)
	trackWatchErrors(inf, what, health)
	return inf
}

// trackedListWatch is a ListWatch of list and watch that applies sel to
// their options, tells health every outcome and, while the API server
// cannot answer, retries on its own schedule (reachBackoff).
func trackedListWatch(what string, sel selection, health *watchHealth,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) *cache.ListWatch {
	observe := func(err error) { health.observeCall(what, err) }
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			sel.apply(&o)
			return untilAnswered(ctx, reachBackoff(nil), unreachable, observe, func() (runtime.Object, error) { return list(ctx, o) })
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			sel.apply(&o)
			retry := unreachable
			if o.SendInitialEvents != nil && *o.SendInitialEvents {
				retry = watchListUnreachable
			}
			return untilAnswered(ctx, reachBackoff(nil), retry, observe, func() (watch.Interface, error) {
				w, err := watchFn(ctx, o)
				return opened(ctx, w, err)
			})
		},
	}
}

// trackWatchErrors tells health the failures the reflector reports that
// no list or watch call did (see observeFailure). They are logged once per
// change by whoever reads health, rather than on every retry as
// client-go's default handler does.
func trackWatchErrors(inf cache.SharedIndexInformer, what string, health *watchHealth) {
	_ = inf.SetWatchErrorHandlerWithContext(watchErrorHandler(what, health))
}

func watchErrorHandler(what string, health *watchHealth) cache.WatchErrorHandlerWithContext {
	return func(ctx context.Context, r *cache.Reflector, err error) {
		if resumable(err) && !errors.Is(err, context.Canceled) {
			cache.DefaultWatchErrorHandler(ctx, r, err) // at debug levels
		}
		if ctx.Err() != nil {
			return // stopping: the failure of a call it cut short is none
		}
		health.observeFailure(what, err)
	}
}

// list makes an informer's list: through Watcher when set (as many tries
// of a lost connection as it is told to make), else through the dynamic
// client.
func (d Deps) list(ctx context.Context, gvr schema.GroupVersionResource, namespace string, o metav1.ListOptions) (runtime.Object, error) {
	if d.Watcher == nil {
		return d.Dynamic.Resource(gvr).Namespace(namespace).List(ctx, o)
	}
	return d.Watcher.List(ctx, gvr, namespace, o)
}

// watch opens an informer's watch: through Watcher when set (events
// decoded in one pass; their decoding was a fifth of the gateway's CPU),
// else through the dynamic client.
func (d Deps) watch(ctx context.Context, gvr schema.GroupVersionResource, namespace string, o metav1.ListOptions) (watch.Interface, error) {
	if d.Watcher == nil {
		return d.Dynamic.Resource(gvr).Namespace(namespace).Watch(ctx, o)
	}
	return d.Watcher.Watch(ctx, gvr, namespace, o)
}

// dropManagedFields is the informers' transform: it strips
// metadata.managedFields from every object before it is cached.
func dropManagedFields(obj any) (any, error) {
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
	case cache.DeletedFinalStateUnknown:
		if u, ok := o.Obj.(*unstructured.Unstructured); ok {
			unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
		}
	}
	return obj, nil
}
