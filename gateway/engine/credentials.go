package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// DefaultSecretPollInterval is how often a referenced Secret is re-read
// when RBAC forbids listing and watching it (docs/operations.md).
const DefaultSecretPollInterval = 10 * time.Second

// problemCredentials keys the problem of material that cannot be rebuilt.
const problemCredentials = "credentials"

// credentials holds the endpoints of one operator's callbacks and keeps the
// material they take from Secrets current: it watches every referenced
// Secret and, when one changes, rebuilds the endpoints and swaps them in at
// once. A call reads its endpoint once, so calls in flight finish with the
// old material and the next ones use the new. A Secret that disappears or
// loses its key leaves the last good material in use and is reported.
type credentials struct {
	ids       []string                    // callback ids, in spec order
	handlers  map[string]spec.HandlerSpec // effective handler by callback id
	kube      kubernetes.Interface
	caller    *call.Client
	log       *slog.Logger
	pollEvery time.Duration
	// report is told a problem under a key, or "" once it is gone.
	report func(key, msg string)

	current atomic.Pointer[map[string]endpoint]

	mu         sync.Mutex                              // serializes rebuilds
	secrets    map[types.NamespacedName]*corev1.Secret // last seen; nil: deleted
	tlsConfigs map[string]*tls.Config                  // by tlsDigest of their material
}

// newCredentials reads every referenced Secret and builds the endpoints.
// It fails while one cannot be built, as the operator cannot start yet.
func newCredentials(ctx context.Context, c *Controller) (*credentials, error) {
	cr := &credentials{
		handlers:   map[string]spec.HandlerSpec{},
		kube:       c.Kube,
		caller:     c.Caller,
		log:        c.log,
		pollEvery:  c.SecretPollInterval,
		report:     func(key, msg string) { c.reportProblem(key, reasonSecretUnreadable, msg) },
		secrets:    map[types.NamespacedName]*corev1.Secret{},
		tlsConfigs: map[string]*tls.Config{},
	}
	get := func(ctx context.Context, ref types.NamespacedName) (*corev1.Secret, error) {
		if s, ok := cr.secrets[ref]; ok {
			return s, nil // one read per Secret, however many handlers use it
		}
		s, err := cr.readSecret(ctx, ref)
		if err != nil {
			return nil, err
		}
		cr.secrets[ref] = s
		return s, nil
	}
	eps := map[string]endpoint{}
	for _, cb := range c.op.Spec.Callbacks {
		h := cb.EffectiveHandler(c.op.Spec.Handler)
		ep, err := buildEndpoint(ctx, h, get, cr.tlsConfigs)
		if err != nil {
			return nil, fmt.Errorf("callback %s: %w", cb.ID, err)
		}
		cr.ids = append(cr.ids, cb.ID)
		cr.handlers[cb.ID] = h
		eps[cb.ID] = ep
	}
	cr.current.Store(&eps)
	return cr, nil
}

// get returns the current endpoint of a callback.
func (cr *credentials) get(id string) endpoint { return (*cr.current.Load())[id] }

func (cr *credentials) readSecret(ctx context.Context, ref types.NamespacedName) (*corev1.Secret, error) {
	s, err := cr.kube.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, secretNotFound(ref)
	}
	if err != nil {
		return nil, failure.Temporaryf(reasonSecretUnreadable, "read Secret %s: %w", ref, err)
	}
	return s, nil
}

// observe records what was seen of one Secret (nil: deleted) and rebuilds
// the endpoints when its data changed.
func (cr *credentials) observe(ref types.NamespacedName, s *corev1.Secret) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if old, known := cr.secrets[ref]; known && sameData(old, s) {
		return
	}
	cr.secrets[ref] = s
	cr.rebuild()
}

func sameData(a, b *corev1.Secret) bool {
	if a == nil || b == nil {
		return a == b
	}
	return maps.EqualFunc(a.Data, b.Data, bytes.Equal)
}

// rebuild builds every endpoint from the Secrets last seen and swaps them
// in. A callback whose material cannot be built keeps its last good
// endpoint. Called with mu held.
func (cr *credentials) rebuild() {
	prev := *cr.current.Load()
	get := func(_ context.Context, ref types.NamespacedName) (*corev1.Secret, error) {
		if s := cr.secrets[ref]; s != nil {
			return s, nil
		}
		return nil, secretNotFound(ref)
	}
	next := make(map[string]endpoint, len(prev))
	failing := map[string][]string{} // message → callback ids
	for _, id := range cr.ids {
		ep, err := buildEndpoint(context.Background(), cr.handlers[id], get, cr.tlsConfigs)
		if err != nil {
			failing[err.Error()] = append(failing[err.Error()], id)
			ep = prev[id]
		}
		next[id] = ep
	}
	cr.forgetUnusedTLS(next)
	cr.current.Store(&next)
	if !maps.EqualFunc(prev, next, sameEndpoint) {
		cr.log.Info("handler credentials reloaded from their Secrets")
	}
	var msgs []string
	for _, msg := range slices.Sorted(maps.Keys(failing)) {
		msgs = append(msgs, fmt.Sprintf("%s (callbacks %s)", msg, strings.Join(failing[msg], ", ")))
	}
	if len(msgs) == 0 {
		cr.report(problemCredentials, "")
		return
	}
	cr.report(problemCredentials, "handler credentials cannot be reloaded, calls keep the last good ones: "+strings.Join(msgs, "; "))
}

func sameEndpoint(a, b endpoint) bool {
	return a.URL == b.URL && a.Timeout == b.Timeout && bytes.Equal(a.HMACSecret, b.HMACSecret) &&
		a.BearerToken == b.BearerToken && a.TLS == b.TLS
}

// forgetUnusedTLS drops the TLS configurations no endpoint uses any more,
// closing their idle connections: a rotated client certificate must not
// keep being presented on pooled connections. Called with mu held.
func (cr *credentials) forgetUnusedTLS(in map[string]endpoint) {
	used := map[*tls.Config]bool{}
	for _, ep := range in {
		used[ep.TLS] = true
	}
	for digest, cfg := range cr.tlsConfigs {
		if !used[cfg] {
			delete(cr.tlsConfigs, digest)
			cr.caller.ForgetTLS(cfg)
		}
	}
}

// refs lists every referenced Secret once, sorted.
func (cr *credentials) refs() []types.NamespacedName {
	seen := map[types.NamespacedName]bool{}
	for _, h := range cr.handlers {
		for _, ref := range secretRefs(h) {
			seen[ref] = true
		}
	}
	return slices.SortedFunc(maps.Keys(seen), func(a, b types.NamespacedName) int {
		return strings.Compare(a.String(), b.String())
	})
}

// watch keeps the material current until ctx ends, then lets the pooled
// transports of its TLS configurations go.
func (cr *credentials) watch(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ref := range cr.refs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr.watchSecret(ctx, ref)
		}()
	}
	wg.Wait()
	<-ctx.Done() // without Secrets to watch, the TLS configurations are still in use
	cr.mu.Lock()
	defer cr.mu.Unlock()
	cr.forgetUnusedTLS(nil)
}

// watchSecret follows one Secret with an informer limited to its name.
// When RBAC forbids listing or watching it, it falls back to reading it
// every pollEvery, and says so once.
func (cr *credentials) watchSecret(ctx context.Context, ref types.NamespacedName) {
	ictx, stop := context.WithCancel(ctx)
	defer stop()
	inf := coreinformers.NewFilteredSecretInformer(cr.kube, ref.Namespace, 0, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ref.Name).String()
	})
	// The field selector already limits the watch to this Secret; the
	// name check keeps that true whatever the client.
	seen := func(o any, deleted bool) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		s, ok := o.(*corev1.Secret)
		switch {
		case !ok || s.Name != ref.Name:
		case deleted:
			cr.observe(ref, nil)
		default:
			cr.observe(ref, s)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { seen(o, false) },
		UpdateFunc: func(_, o any) { seen(o, false) },
		DeleteFunc: func(o any) { seen(o, true) },
	}); err != nil {
		cr.log.Error("watch Secret", "secret", ref.String(), "error", err)
		return
	}
	forbidden := make(chan struct{})
	var once sync.Once
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if apierrors.IsForbidden(err) {
			once.Do(func() { close(forbidden) })
			return
		}
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	go inf.RunWithContext(ictx)
	select {
	case <-ctx.Done():
	case <-forbidden:
		stop()
		cr.log.Warn("listing and watching a handler's Secret is forbidden; re-reading it periodically instead",
			"secret", ref.String(), "every", cr.pollEvery)
		cr.pollSecret(ctx, ref)
	}
}

// pollSecret re-reads one Secret every pollEvery until ctx ends.
func (cr *credentials) pollSecret(ctx context.Context, ref types.NamespacedName) {
	key := "secret/" + ref.String()
	t := time.NewTicker(cr.pollEvery)
	defer t.Stop()
	for {
		s, err := cr.kube.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case err == nil:
			cr.report(key, "")
			cr.observe(ref, s)
		case apierrors.IsNotFound(err):
			cr.report(key, "")
			cr.observe(ref, nil)
		case ctx.Err() == nil:
			cr.report(key, fmt.Sprintf("re-read handler Secret %s: %v; calls keep the last good credentials", ref, err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
