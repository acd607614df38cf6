package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/inspect"
	"github.com/opgate/opgate/gateway/spec"
)

// kubeFlags are the cluster flags of the read-and-poke commands, loaded
// as `gateway run` loads them.
// With files, the operators come from them (a gateway run -f), not from
// the WebhookOperator objects.
type kubeFlags struct {
	kubeconfig, context, namespace string
	files                          []string
	requestTimeout                 time.Duration
}

// defaultRequestTimeout bounds each request to the API server, so that one
// that accepts connections but never answers is an error, not a hang.
const defaultRequestTimeout = 30 * time.Second

func (k *kubeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the files in $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().StringVar(&k.context, "context", "", "kubeconfig context to use (default: its current-context)")
	cmd.Flags().StringVarP(&k.namespace, "namespace", "n", "", "namespace of an object given as a bare NAME (default: the kubeconfig context's, else default)")
	cmd.Flags().StringArrayVarP(&k.files, "file", "f", nil, "operator file or directory, as given to gateway run -f (default: the WebhookOperator objects)")
	cmd.Flags().DurationVar(&k.requestTimeout, "request-timeout", defaultRequestTimeout, "how long each request to the API server may take (0: no limit)")
}

// cluster is what status and reconcile read and write through.
type cluster struct {
	dyn    dynamic.Interface
	kube   kubernetes.Interface
	mapper meta.RESTMapper
	files  []*spec.WebhookOperator // operators of -f, when given
	leases map[string]leaseRead    // read by status, by "namespace/name"
	// namespace is where a bare NAME of a namespaced kind is: -n, else
	// the kubeconfig context's; namespaceFlag is -n alone.
	namespace, namespaceFlag string
}

func connect(k *kubeFlags) (*cluster, error) {
	o := runOptions{kubeconfig: k.kubeconfig, context: k.context, qps: 20, burst: 40}
	cfg, contextNamespace, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = k.requestTimeout
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return serverDate{next: rt} })
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery()))
	c := &cluster{dyn: dyn, kube: kube, mapper: mapper, namespace: cmp.Or(k.namespace, contextNamespace), namespaceFlag: k.namespace}
	if len(k.files) > 0 {
		if c.files, err = spec.LoadFiles(k.files...); err != nil {
			return nil, err
		}
	}
	return c, nil
}

type statusOptions struct {
	kube   kubeFlags
	output string
}

func newStatusCommand() *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [OPERATOR [[NAMESPACE/]NAME]]",
		Short: "Show what the gateway did with each operator and object, and why an object is not reconciled",
		Long: `status reads the cluster (no gateway process needed) and decodes each
object's state annotation with the gateway's own code:

  gateway status                            every WebhookOperator: Ready, objects, failing, waiting on a finalizer
  gateway status OPERATOR                   its objects that are not settled, with callback, attempts, last error, next retry
  gateway status OPERATOR [NAMESPACE/]NAME  one object's whole state and its last Events

A bare NAME is in the namespace of -n, else the kubeconfig context's, as
kubectl reads it.

A Ready=True whose gateway no longer holds the leader election Lease it
wrote it under (status.gateway) is shown as "True (stale)", with why.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.output != "" && o.output != "json" && o.output != "yaml" {
				return fmt.Errorf("-o %q: want json or yaml (or nothing, for text)", o.output)
			}
			if o.kube.namespace != "" && len(args) < 2 {
				return errors.New("-n applies to an object: give OPERATOR NAME")
			}
			c, err := connect(&o.kube)
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), c, cmd.OutOrStdout(), args)
		},
	}
	o.kube.add(cmd)
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "json or yaml (default: text)")
	return cmd
}

func (o *statusOptions) run(ctx context.Context, c *cluster, w io.Writer, args []string) error {
	now := time.Now()
	switch len(args) {
	case 0:
		ops, err := c.operators(ctx)
		if err != nil {
			return err
		}
		out := make([]report, 0, len(ops))
		var errs []error
		for _, op := range ops {
			r, err := c.report(ctx, op, now)
			out = append(out, r)
			errs = append(errs, err)
		}
		if err := o.print(w, out, func() error { return printOperators(w, out) }); err != nil {
			return err
		}
		return errors.Join(errs...)
	case 1:
		op, err := c.operator(ctx, args[0])
		if err != nil {
			return err
		}
		out, listErr := c.report(ctx, op, now)
		if err := o.print(w, out, func() error { return printUnsettled(w, out) }); err != nil {
			return err
		}
		return listErr
	}
	op, err := c.operator(ctx, args[0])
	if err != nil {
		return err
	}
	if err := op.usable(); err != nil {
		return err
	}
	d, err := c.describe(ctx, op, args[1], now)
	if err != nil {
		return err
	}
	return o.print(w, d, func() error {
		if d.SpecError != "" {
			printRefused(w, "  ", d.SpecError)
		}
		return printDetail(w, d.Detail, now)
	})
}

func (o *statusOptions) print(w io.Writer, v any, text func() error) error {
	switch o.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return text()
}

// registered is a WebhookOperator as the cluster holds it: its decoded
// spec, Ready and the gateway that wrote it. err is why its latest spec is
// refused; op is then watchOnly's, and unwatchable why it is nil.
type registered struct {
	Name        string
	op          *spec.WebhookOperator
	err         error
	unwatchable string
	ready       inspect.Readiness
	gateway     *spec.GatewayRef
}

// usable says why r's objects cannot be told: its latest spec is refused
// and its spec.watch does not say which objects.
func (r registered) usable() error {
	if r.op == nil {
		return fmt.Errorf("WebhookOperator %s: its latest spec is refused and %s: %w", r.Name, r.unwatchable, r.err)
	}
	return nil
}

func toRegistered(obj *unstructured.Unstructured) registered {
	r := registered{Name: obj.GetName()}
	var st struct {
		Status spec.OperatorStatus `json:"status"`
	}
	_ = runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &st)
	r.ready = inspect.ReadinessOf(st.Status)
	r.gateway = gatewayOf(st.Status)
	r.op, r.err = spec.DecodeObject(obj.Object)
	if r.err != nil {
		r.op, r.unwatchable = watchOnly(obj)
	}
	return r
}

// watchOnly is what status and reconcile need of a refused spec: the
// operator's name (its state annotation and finalizer) and spec.watch (its
// objects). The gateway keeps running the last valid spec, which the
// cluster does not keep; the refused one's spec.watch is the best guess at
// its objects. nil, and why, when it names no kind or its label selector
// does not parse: spec.WatchSpec.Selects takes such a selector as
// selecting everything, as an informer built from it would, but no
// informer is built from a refused spec, and the running one's selector is
// not in the cluster.
func watchOnly(obj *unstructured.Unstructured) (*spec.WebhookOperator, string) {
	const noKind = "names no kind to watch"
	raw, found, err := unstructured.NestedMap(obj.Object, "spec", "watch")
	if !found || err != nil {
		return nil, noKind
	}
	var w spec.WatchSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &w); err != nil || w.APIVersion == "" || w.Kind == "" {
		return nil, noKind
	}
	if _, err := schema.ParseGroupVersion(w.APIVersion); err != nil {
		return nil, noKind
	}
	if w.LabelSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(w.LabelSelector); err != nil {
			return nil, "its spec.watch.labelSelector does not parse"
		}
	}
	return &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName()}, Spec: spec.OperatorSpec{Watch: w}}, ""
}

// fromFile is an operator of -f: no gateway reports on it in the cluster.
func fromFile(op *spec.WebhookOperator) registered {
	return registered{Name: op.Name, op: op, ready: inspect.Readiness{Reason: "Unknown", Message: "read from a file: the /readyz of the gateway running it says whether it runs"}}
}

func (c *cluster) operators(ctx context.Context) ([]registered, error) {
	if c.files != nil {
		var out []registered
		for _, op := range c.files {
			out = append(out, fromFile(op))
		}
		return out, nil
	}
	list, err := c.dyn.Resource(engine.OperatorResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, c.explainOperators(ctx, err, "list WebhookOperators")
	}
	var out []registered
	for i := range list.Items {
		out = append(out, toRegistered(&list.Items[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (c *cluster) operator(ctx context.Context, name string) (registered, error) {
	if c.files != nil {
		for _, op := range c.files {
			if op.Name == name {
				return fromFile(op), nil
			}
		}
		return registered{}, fmt.Errorf("operator %q is not in the files given with -f", name)
	}
	obj, err := c.dyn.Resource(engine.OperatorResource).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && !crdMissing(err) {
		return registered{}, fmt.Errorf("WebhookOperator %q not found (gateway status lists them)", name)
	}
	if err != nil {
		return registered{}, c.explainOperators(ctx, err, "get WebhookOperator "+name)
	}
	return toRegistered(obj), nil
}

// explain turns the API server's refusals into what to do about them;
// what is the request, e.g. "list Memcached cache.example.com/v1alpha1".
func explain(err error, what string) error {
	switch {
	case crdMissing(err):
		return fmt.Errorf("%s: not served by this cluster (is its CRD installed?): %w", what, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: forbidden; your kubeconfig's user needs that permission: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// explainOperators is explain for the WebhookOperators, whose CRD is ours.
func explainOperators(err error, what string) error {
	if crdMissing(err) {
		return fmt.Errorf("%s: the WebhookOperator CRD is not installed in this cluster (kubectl apply -f crds/opgate.dev_webhookoperators.yaml): %w", what, err)
	}
	return explain(err, what)
}

// explainOperators is explainOperators after asking discovery what a 404
// means: any HTTP server answers one, and a kubeconfig pointing at the wrong
// port is not cured by installing the CRD.
func (c *cluster) explainOperators(ctx context.Context, err error, what string) error {
	if crdMissing(err) {
		if missing, whyNot := crdNotInstalled(ctx, c.kube.Discovery(), err, what); !missing {
			return whyNot
		}
	}
	return explainOperators(err, what)
}

// crdMissing: a 404 without details is the API server not serving the
// resource at all, unlike a 404 naming the object.
func crdMissing(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || !apierrors.IsNotFound(err) {
		return false
	}
	d := se.Status().Details
	return d == nil || d.Name == ""
}

// watchedResource resolves the operator's watched kind. Only a kind
// discovery does not list is "not served": discovery itself can fail (the
// API server unreachable).
func (c *cluster) watchedResource(op *spec.WebhookOperator) (*meta.RESTMapping, error) {
	gv, err := schema.ParseGroupVersion(op.Spec.Watch.APIVersion)
	if err != nil {
		return nil, err
	}
	m, err := c.mapper.RESTMapping(gv.WithKind(op.Spec.Watch.Kind).GroupKind(), gv.Version)
	switch {
	case meta.IsNoMatchError(err):
		return nil, fmt.Errorf("kind %s is not served by this cluster (is its CRD installed?): %w", watchedKind(op), err)
	case err != nil:
		return nil, fmt.Errorf("look up kind %s in the API server's discovery: %w", watchedKind(op), err)
	}
	return m, nil
}

// watchedKind names the operator's kind in messages: "Memcached cache.example.com/v1alpha1".
func watchedKind(op *spec.WebhookOperator) string {
	return op.Spec.Watch.Kind + " " + op.Spec.Watch.APIVersion
}

// watchedObjects lists the objects of the operator's kind in its namespaces.
func (c *cluster) watchedObjects(ctx context.Context, op *spec.WebhookOperator) ([]*unstructured.Unstructured, error) {
	m, err := c.watchedResource(op)
	if err != nil {
		return nil, err
	}
	namespaces := op.Spec.Watch.Namespaces
	if len(namespaces) == 0 || m.Scope.Name() != meta.RESTScopeNameNamespace {
		namespaces = []string{metav1.NamespaceAll}
	}
	var out []*unstructured.Unstructured
	for _, ns := range namespaces {
		list, err := c.dyn.Resource(m.Resource).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			what := "list " + watchedKind(op)
			if ns != metav1.NamespaceAll {
				what += " in namespace " + ns
			}
			return nil, explain(err, what)
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// report is what status prints of one operator. Gateway is the gateway
// that wrote Ready, and whether that Ready is stale. Error is why its
// objects could not be listed: its counts are then unknown, not zero.
// SpecError is why its latest spec is refused (SpecAccepted False).
type report struct {
	inspect.Operator
	Gateway   *writerCheck `json:"gateway,omitempty"`
	Error     string       `json:"error,omitempty"`
	SpecError string       `json:"specError,omitempty"`
}

// report summarizes one operator. A failed listing is its Error (also
// returned, for the exit status), so that one broken operator does not
// hide the others. A refused spec keeps the stored Ready: the gateway
// runs the last valid spec meanwhile.
func (c *cluster) report(ctx context.Context, r registered, now time.Time) (report, error) {
	out := report{Gateway: c.checkWriter(ctx, r)}
	if r.err != nil {
		out.SpecError = r.err.Error()
	}
	if err := r.usable(); err != nil {
		out.Operator = inspect.Operator{Name: r.Name, Ready: r.ready}
		out.Error = err.Error()
		return out, err
	}
	objs, err := c.watchedObjects(ctx, r.op)
	if err != nil {
		err = fmt.Errorf("operator %s: %w", r.Name, err)
		out.Operator = inspect.Summarize(r.op, r.ready, nil, now)
		out.States = nil // unknown, not zero
		out.Error = err.Error()
		return out, err
	}
	out.Operator = inspect.Summarize(r.op, r.ready, objs, now)
	return out, nil
}

// detail is what status prints of one object.
type detail struct {
	inspect.Detail
	SpecError string `json:"specError,omitempty"`
}

func (c *cluster) describe(ctx context.Context, r registered, key string, now time.Time) (detail, error) {
	_, obj, err := c.watchedObject(ctx, r, key)
	if err != nil {
		return detail{}, err
	}
	d := detail{Detail: inspect.Describe(r.op, obj, nil, now)}
	if r.err != nil {
		// The round and callbacks are the running spec's, which the
		// cluster does not keep: unknown rather than told from none.
		// Callbacks is empty, not nil: scripts iterate it (jq
		// '.callbacks[]' fails on null), and specError says why.
		d.SpecError, d.Round, d.Callbacks = r.err.Error(), nil, []inspect.Callback{}
	}
	evs, err := c.kube.CoreV1().Events(obj.GetNamespace()).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(obj.GetUID())})
	if err == nil {
		d.Events = inspect.EventsOf(evs.Items, 10)
	} else if !apierrors.IsForbidden(err) {
		return d, explain(err, "list Events")
	}
	return d, nil
}
