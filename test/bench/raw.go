package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

// The raw program's finalizer and state annotation, its field manager.
const (
	rawFinalizer = "bench.opgate.dev/raw"
	rawState     = "bench.opgate.dev/state"
	rawManager   = "bench-raw"
)

var (
	parentGVR = schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// rawMain runs the physical-limit baseline: a client-go controller making,
// per object, only the writes the gateway's guarantees need (see
// docs/performance.md), with no callbacks.
func rawMain(args []string) int {
	fs := flag.NewFlagSet("raw", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig")
	ns := fs.String("namespace", "", "namespace to watch")
	workers := fs.Int("workers", 32, "objects handled in parallel")
	qps := fs.Float64("qps", 500, "client QPS")
	burst := fs.Int("burst", 1000, "client burst")
	sleep := fs.Duration("sleep", 0, "simulated work per object")
	addr := fs.String("addr", "127.0.0.1:0", "address of /stats and /healthz")
	watchChildren := fs.String("watch-children", "", "also keep a watch and cache of the Deployments in the namespace, as the gateway does: json or protobuf")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := runRaw(ctx, *kubeconfig, *ns, *workers, float32(*qps), *burst, *sleep, *addr, *watchChildren); err != nil {
		fmt.Fprintln(os.Stderr, "raw:", err)
		return 1
	}
	return 0
}

type rawController struct {
	client dynamic.Interface
	lister cache.GenericNamespaceLister
	queue  workqueue.TypedRateLimitingInterface[string]
	rec    *recorder
	sleep  time.Duration
	// done is what this process handled last per object uid, so that a
	// pass over a cache that has not seen its own writes yet does not
	// write again (the expectations of controller-runtime controllers).
	done sync.Map
}

func runRaw(ctx context.Context, kubeconfig, ns string, workers int, qps float32, burst int, sleep time.Duration, addr string, watchChildren string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = qps, burst, "bench-raw"
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, ns, nil)
	inf := factory.ForResource(parentGVR)
	c := &rawController{
		client: client, lister: inf.Lister().ByNamespace(ns), rec: newRecorder(), sleep: sleep,
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	if watchChildren != "" {
		// What the gateway's child informer costs the API server and
		// itself, without what it does with the children.
		stopChildren, err := watchDeployments(cfg, ns, watchChildren, factory)
		if err != nil {
			return err
		}
		defer stopChildren()
	}
	srv, err := serveStats(addr, c.rec, nil)
	if err != nil {
		return err
	}
	defer srv.Close()
	factory.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// serveStats serves the recorder, /healthz and the profiles on addr, and
// every other path with other (the handler's callbacks) if not nil.
func serveStats(addr string, rec *recorder, other http.Handler) (*http.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/stats", rec)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	// The harness's -profile records the raw program as it does the
	// gateway, so the two profiles can be compared.
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.Handle("/debug/pprof/heap", pprof.Handler("heap"))
	if other != nil {
		mux.Handle("/", other)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return srv, nil
}

func (c *rawController) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.reconcile(ctx, key); err != nil {
		fmt.Fprintf(os.Stderr, "raw: %s: %v\n", key, err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *rawController) reconcile(ctx context.Context, key string) error {
	_, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	obj, err := c.lister.Get(name)
	if err != nil {
		return nil // gone
	}
	u := obj.(*unstructured.Unstructured)
	ns := u.GetNamespace()
	parents := c.client.Resource(parentGVR).Namespace(ns)
	if u.GetDeletionTimestamp() != nil {
		i := slices.Index(u.GetFinalizers(), rawFinalizer)
		if i < 0 {
			return nil
		}
		if last, ok := c.done.Load(u.GetUID()); ok && last == evDelete {
			return nil
		}
		c.rec.record(evDelete, name)
		if err := pause(ctx, c.sleep); err != nil {
			return err
		}
		// Write: the finalizer goes, after the delete work is done.
		if err := patchJSON(ctx, parents, name, map[string]any{"metadata": map[string]any{
			"resourceVersion": u.GetResourceVersion(),
			"finalizers":      slices.Delete(slices.Clone(u.GetFinalizers()), i, i+1),
		}}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		c.done.Store(u.GetUID(), evDelete)
		return nil
	}
	size, _, err := unstructured.NestedInt64(u.Object, "spec", "size")
	if err != nil {
		return err
	}
	want := strconv.FormatInt(size, 10)
	handled, known := u.GetAnnotations()[rawState]
	if known && handled == want {
		return nil
	}
	if last, ok := c.done.Load(u.GetUID()); ok && last == want {
		return nil
	}
	event := evCreate
	if known {
		event = evUpdate
	}
	c.rec.record(event, name)
	if err := pause(ctx, c.sleep); err != nil {
		return err
	}
	if event == evCreate && !slices.Contains(u.GetFinalizers(), rawFinalizer) {
		// Write: the finalizer, before anything exists that the delete
		// work must clean up. The state cannot come with it: written
		// before the child and status, it would mark the create handled
		// when a crash right after still owes them (docs/performance.md).
		if err := patchJSON(ctx, parents, name, map[string]any{"metadata": map[string]any{
			"resourceVersion": u.GetResourceVersion(),
			"finalizers":      append(slices.Clone(u.GetFinalizers()), rawFinalizer),
		}}); err != nil {
			return err
		}
	}
	// Write: the child, by server-side apply.
	child := deployment(name, size)
	child.SetNamespace(ns)
	child.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: group + "/" + version, Kind: kind,
		Name: name, UID: u.GetUID(), Controller: ptr(true), BlockOwnerDeletion: ptr(true)}})
	if _, err := c.client.Resource(deployGVR).Namespace(ns).Apply(ctx, name, child,
		metav1.ApplyOptions{FieldManager: rawManager, Force: true}); err != nil {
		return fmt.Errorf("apply child: %w", err)
	}
	// Write: the status.
	status, _ := json.Marshal(map[string]any{"status": statusOf(name, size)})
	if _, err := parents.Patch(ctx, name, types.MergePatchType, status, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	// Write: the state, once the change's writes are done: a crash before
	// it handles the change again (at least once), never loses it.
	if err := patchJSON(ctx, parents, name, map[string]any{"metadata": map[string]any{
		"annotations": map[string]any{rawState: want},
	}}); err != nil {
		return err
	}
	c.done.Store(u.GetUID(), want)
	return nil
}

func patchJSON(ctx context.Context, r dynamic.ResourceInterface, name string, patch map[string]any) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := r.Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch %s: %w", name, err)
	}
	return nil
}

// The encodings the raw program may watch its children in.
const (
	rawWatchJSON     = "json"
	rawWatchProtobuf = "protobuf"
	// rawWatchMetadata: metadata alone (PartialObjectMetadata, in
	// protobuf), what a gateway that fetched children only when a request
	// carries them would keep.
	rawWatchMetadata = "metadata"
)

// rawWatchEncodings lists every encoding -raw-watches-children takes.
var rawWatchEncodings = []string{rawWatchJSON, rawWatchProtobuf, rawWatchMetadata}

// watchDeployments starts an informer caching the namespace's Deployments:
// in JSON through the dynamic client (factory, started with the parents'),
// as the gateway's child informer receives them, or in protobuf through the
// typed client, as the kind's own controllers do.
func watchDeployments(cfg *rest.Config, ns, encoding string, factory dynamicinformer.DynamicSharedInformerFactory) (stop func(), err error) {
	switch encoding {
	case rawWatchJSON:
		_, err := factory.ForResource(deployGVR).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{})
		return func() {}, err
	case rawWatchProtobuf:
		proto := rest.CopyConfig(cfg)
		proto.ContentType = "application/vnd.kubernetes.protobuf"
		typed, err := kubernetes.NewForConfig(proto)
		if err != nil {
			return nil, err
		}
		f := informers.NewSharedInformerFactoryWithOptions(typed, 0, informers.WithNamespace(ns))
		if _, err := f.Apps().V1().Deployments().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{}); err != nil {
			return nil, err
		}
		done := make(chan struct{})
		f.Start(done)
		return func() { close(done); f.Shutdown() }, nil
	case rawWatchMetadata:
		meta, err := metadata.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		f := metadatainformer.NewFilteredSharedInformerFactory(meta, 0, ns, nil)
		if _, err := f.ForResource(deployGVR).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{}); err != nil {
			return nil, err
		}
		done := make(chan struct{})
		f.Start(done)
		return func() { close(done); f.Shutdown() }, nil
	}
	return nil, fmt.Errorf("watch children in %q: want one of %s", encoding, strings.Join(rawWatchEncodings, ", "))
}
