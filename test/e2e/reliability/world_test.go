package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/test/invariant"
)

var (
	probes     = schema.GroupVersionResource{Group: "reliability.opgate.dev", Version: "v1", Resource: "probes"}
	configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// world is one scenario's namespace, handler, operator and checker.
type world struct {
	t    *testing.T
	rng  *lockedRand
	ns   string
	kube kubernetes.Interface
	res  dynamic.ResourceInterface
	op   *spec.WebhookOperator
	chk  *invariant.Checker
	// slow is the range of the handler's delay per call.
	slowMin, slowMax time.Duration

	inFlight atomic.Int32 // calls the handler is answering now

	mu      sync.Mutex
	objects map[string]*unstructured.Unstructured // by name, as last written
	n       int                                   // the spec.n counter: every update a new essence
}

// newWorld sets up a scenario: the Probe CRD, a namespace, a recording
// handler that answers after a random delay in [slowMin, slowMax], and the
// operator calling it.
func newWorld(t *testing.T, slowMin, slowMax time.Duration) *world {
	t.Helper()
	installCRD(t)
	cfg := cluster.RESTConfig()
	kube := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ns := newNamespace(t, kube)
	w := &world{t: t, rng: newRand(t), ns: ns, kube: kube, res: dyn.Resource(probes).Namespace(ns),
		slowMin: slowMin, slowMax: slowMax, objects: map[string]*unstructured.Unstructured{}}
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	w.op = probeOperator(ns, srv.URL)
	w.chk = invariant.New(w.op, dyn, invariant.Scope{Parent: probes, Namespace: ns, Children: []schema.GroupVersionResource{configMaps}})
	srv.Config.Handler = w.chk.Recorder.Wrap(http.HandlerFunc(w.answer))
	return w
}

// probeOperator calls every event but timer, retries fast (faults should
// not wait on backoff) and declares ConfigMap children.
func probeOperator(ns, url string) *spec.WebhookOperator {
	op := &spec.WebhookOperator{
		TypeMeta:   metav1.TypeMeta{APIVersion: spec.APIVersion, Kind: spec.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: "probes-" + ns},
		Spec: spec.OperatorSpec{
			Watch:    spec.WatchSpec{APIVersion: "reliability.opgate.dev/v1", Kind: "Probe", Namespaces: []string{ns}},
			Children: []spec.ChildSpec{{APIVersion: "v1", Kind: "ConfigMap"}},
			Handler:  spec.HandlerSpec{URL: url, Timeout: &spec.Duration{Duration: 5 * time.Second}},
			Callbacks: []spec.Callback{
				{ID: "make", Events: []spec.Event{spec.EventCreate}},
				{ID: "change", Events: []spec.Event{spec.EventUpdate}},
				{ID: "clean", Events: []spec.Event{spec.EventDelete}},
				{ID: "sync", Events: []spec.Event{spec.EventSync}},
				{ID: "resume", Events: []spec.Event{spec.EventResume}},
			},
			Retry: &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: 200 * time.Millisecond}, MaxDelay: &spec.Duration{Duration: 2 * time.Second}},
		},
	}
	spec.Default(op)
	return op
}

// answer is the handler: after its delay, the status says which spec.n it
// saw and by which event, and the object's one child carries n too.
func (w *world) answer(rw http.ResponseWriter, r *http.Request) {
	var req callbacks.Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.inFlight.Add(1)
	defer w.inFlight.Add(-1)
	select {
	case <-time.After(w.rng.duration(w.slowMin, w.slowMax)):
	case <-r.Context().Done():
		return
	}
	resp := &callbacks.Response{} // a delete's answer: finalized
	if req.Event != callbacks.EventDelete {
		n, _, _ := unstructured.NestedFieldNoCopy(req.Object.Object, "spec", "n")
		resp = callbacks.Status(map[string]any{"n": n, "by": string(req.Event)})
		cm := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": req.Object.GetName() + "-cm"},
			"data":     map[string]any{"n": fmt.Sprint(n)},
		}}
		resp.WithChildren(cm)
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(resp)
}

// create creates Probe name, retrying through API outages until it exists,
// and records it.
func (w *world) create(ctx context.Context, name string) error {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "reliability.opgate.dev/v1", "kind": "Probe",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"n": int64(w.next())},
	}}
	got, err := retry(ctx, "create "+name, func(ctx context.Context) (*unstructured.Unstructured, error) {
		created, err := w.res.Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) { // an earlier attempt went through
			return w.res.Get(ctx, name, metav1.GetOptions{})
		}
		return created, err
	})
	if err != nil {
		return err
	}
	return w.remember(invariant.Created, got)
}

// update sets a new spec.n on Probe name, retrying through outages.
func (w *world) update(ctx context.Context, name string) error {
	patch := fmt.Appendf(nil, `{"spec":{"n":%d}}`, w.next())
	got, err := retry(ctx, "update "+name, func(ctx context.Context) (*unstructured.Unstructured, error) {
		return w.res.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	})
	if err != nil {
		return err
	}
	return w.remember(invariant.Updated, got)
}

// remove deletes Probe name, retrying through outages (gone counts as done).
func (w *world) remove(ctx context.Context, name string) error {
	w.mu.Lock()
	obj := w.objects[name]
	w.mu.Unlock()
	uid := obj.GetUID()
	_, err := retry(ctx, "delete "+name, func(ctx context.Context) (*unstructured.Unstructured, error) {
		err := w.res.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			err = nil // already gone (or a new object of that name: ours is gone)
		}
		return obj, err
	})
	if err != nil {
		return err
	}
	return w.remember(invariant.Deleted, obj)
}

// retry calls write every 250ms until it succeeds, for at most 2 minutes:
// the API server may be down for a while.
func retry(ctx context.Context, what string, write func(context.Context) (*unstructured.Unstructured, error)) (*unstructured.Unstructured, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		obj, err := write(callCtx)
		callCancel()
		if err == nil {
			return obj, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: still failing after 2m: %w", what, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (w *world) remember(kind invariant.ChangeKind, obj *unstructured.Unstructured) error {
	if err := w.chk.History.Record(kind, obj); err != nil {
		return err
	}
	w.mu.Lock()
	w.objects[obj.GetName()] = obj
	w.mu.Unlock()
	return nil
}

func (w *world) next() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return w.n
}

// workload is a seeded plan of writes over count objects: each is created,
// updated a few times, and some are deleted; runWorkload performs it.
type step struct {
	kind invariant.ChangeKind
	name string
}

func (w *world) workload(prefix string, count, updates int, deleteShare float64) []step {
	var plan []step
	live := []string{}
	for i := range count {
		name := fmt.Sprintf("%s-%02d", prefix, i)
		plan = append(plan, step{invariant.Created, name})
		live = append(live, name)
	}
	for range updates {
		plan = append(plan, step{invariant.Updated, live[w.rng.intN(len(live))]})
	}
	w.rng.shuffle(len(plan)-count, func(i, j int) { plan[count+i], plan[count+j] = plan[count+j], plan[count+i] })
	for _, name := range live {
		if w.rng.float() < deleteShare {
			plan = append(plan, step{invariant.Deleted, name})
		}
	}
	return plan
}

// runWorkload performs plan, one write every pace, and stops at the first
// write that fails for good.
func (w *world) runWorkload(ctx context.Context, plan []step, pace time.Duration) error {
	for _, s := range plan {
		var err error
		switch s.kind {
		case invariant.Created:
			err = w.create(ctx, s.name)
		case invariant.Updated:
			err = w.update(ctx, s.name)
		case invariant.Deleted:
			err = w.remove(ctx, s.name)
		}
		if err != nil {
			return err
		}
		time.Sleep(pace) // pacing the load, not waiting for a condition
	}
	return nil
}

// startWorkload runs plan in the background; the returned wait fails the
// test if a write failed for good.
func (w *world) startWorkload(plan []step, pace time.Duration) (wait func()) {
	errc := make(chan error, 1)
	go func() { errc <- w.runWorkload(context.Background(), plan, pace) }()
	return func() {
		w.t.Helper()
		if err := <-errc; err != nil {
			w.t.Fatal(err)
		}
	}
}

// lockedRand is a seeded source shared by the handler's goroutines.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

// newRand seeds from OPGATE_SEED, else the clock, and logs the seed.
func newRand(t *testing.T) *lockedRand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("OPGATE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("OPGATE_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (OPGATE_SEED=%d reruns with it)", seed, seed)
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed>>1))}
}

func (l *lockedRand) duration(lo, hi time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(l.r.Int64N(int64(hi-lo)))
}

func (l *lockedRand) intN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) float() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func (l *lockedRand) shuffle(n int, swap func(i, j int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.r.Shuffle(n, swap)
}

// newNamespace creates a namespace for the test and deletes it at the end.
func newNamespace(t *testing.T, kube kubernetes.Interface) string {
	t.Helper()
	prefix := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	ns, err := kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(prefix, "-") + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}
