package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/gateway/engine"
)

// removeOptions are the flags of remove-operators; interval is how often
// it looks again (a second; tests shorten it).
type removeOptions struct {
	kubeconfig, context, selector string
	timeout, interval             time.Duration
}

func newRemoveOperatorsCommand() *cobra.Command {
	o := &removeOptions{interval: time.Second}
	cmd := &cobra.Command{
		Use:   "remove-operators [NAME...] [-l SELECTOR]",
		Short: "Delete WebhookOperators and wait until the gateway has released their objects",
		Long: `remove-operators deletes the WebhookOperators named and matching -l (both
when both are given) and waits until they are gone: the running gateway
releases the finalizers and state annotations it holds on their objects,
then removes its own finalizer ` + engine.RegistryFinalizer + ` and the
WebhookOperator goes. The chart's pre-delete hook runs it, so that
helm uninstall deletes the gateway only after that.

Nothing matching is success. At --timeout it fails naming each
WebhookOperator still there, its finalizers and its Ready condition.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.selector == "" && len(args) == 0 {
				return errors.New("give the WebhookOperators' NAMEs or -l SELECTOR (kubectl delete webhookoperators --all deletes every one)")
			}
			if _, err := labels.Parse(o.selector); err != nil {
				return fmt.Errorf("-l %q: %w", o.selector, err)
			}
			if o.timeout <= 0 {
				return fmt.Errorf("--timeout %s: want a positive duration", o.timeout)
			}
			cfg, _, err := (&runOptions{kubeconfig: o.kubeconfig, context: o.context, qps: 20, burst: 40}).restConfig()
			if err != nil {
				return err
			}
			dyn, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			disco, err := discovery.NewDiscoveryClientForConfig(cfg)
			if err != nil {
				return fmt.Errorf("discovery client: %w", err)
			}
			return o.run(cmd.Context(), dyn.Resource(engine.OperatorResource), disco, args, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the files in $KUBECONFIG, else ~/.kube/config, else the pod's ServiceAccount)")
	cmd.Flags().StringVar(&o.context, "context", "", "kubeconfig context to use (default: its current-context)")
	cmd.Flags().StringVarP(&o.selector, "selector", "l", "", "label selector of the WebhookOperators, as kubectl -l")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "how long to wait for them to go")
	return cmd
}

// run deletes the matching operators and waits for them to go.
func (o *removeOptions) run(ctx context.Context, res dynamic.ResourceInterface, disco discovery.DiscoveryInterfaceWithContext, names []string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	ops, err := o.matching(ctx, res, names)
	if crdMissing(err) {
		if missing, whyNot := crdNotInstalled(ctx, disco, err, "list WebhookOperators "+o.what(names)); !missing {
			return whyNot
		}
		// Deleted before helm uninstall, say: nothing to remove or wait for.
		_, err := fmt.Fprintln(w, "no WebhookOperator: the WebhookOperator CRD is not installed in this cluster")
		return err
	}
	if err != nil {
		return explainOperators(err, "list WebhookOperators "+o.what(names))
	}
	if len(ops) == 0 {
		_, err := fmt.Fprintf(w, "no WebhookOperator %s\n", o.what(names))
		return err
	}
	waiting := map[types.UID]bool{}
	for _, op := range ops {
		if err := deleteOperator(ctx, res, op); err != nil {
			return err
		}
		waiting[op.GetUID()] = true
		if _, err := fmt.Fprintf(w, "waiting for WebhookOperator %s to go (finalizers %s)\n", op.GetName(), finalizersOf(op)); err != nil {
			return err
		}
	}
	left, err := o.waitGone(ctx, res, names, waiting)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return stillThere(left, o.timeout)
	}
	_, err = fmt.Fprintf(w, "%d WebhookOperator(s) removed\n", len(waiting))
	return err
}

// crdNotInstalled tells the meanings of a 404 to a request for
// WebhookOperators (crdMissing) apart: true when discovery says the CRD is
// not installed, else an error saying what the 404 is (a server that is not
// Kubernetes, discovery failing, or discovery listing them all the same);
// what is the request, e.g. "list WebhookOperators".
func crdNotInstalled(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext, err error, what string) (bool, error) {
	served, discoErr := operatorsServed(ctx, disco)
	switch {
	case discoErr != nil:
		return false, fmt.Errorf("%s answered 404, and %w", what, discoErr)
	case served:
		return false, fmt.Errorf("%s: the API server's discovery lists them, yet the request answered 404: %w", what, err)
	}
	return true, nil
}

// operatorsServed asks discovery whether the API server serves the
// WebhookOperator resource. A 404 alone does not tell: any HTTP server
// answers one (a kubeconfig pointing at the wrong port, say), and taking
// it for "the CRD is not installed" would let the chart's uninstall hook
// pass with every finalizer still held. A Kubernetes API server always
// lists the core group v1.
func operatorsServed(ctx context.Context, disco discovery.DiscoveryInterfaceWithContext) (bool, error) {
	u := disco.RESTClient().Get().URL()
	host := u.Scheme + "://" + u.Host
	groups, err := disco.ServerGroupsWithContext(ctx)
	if apierrors.IsNotFound(err) {
		return false, fmt.Errorf("%s is not a Kubernetes API server: its discovery (/api, /apis) answers 404 (is the kubeconfig's server right?): %w", host, err)
	}
	if err != nil {
		return false, fmt.Errorf("ask the discovery of %s whether it serves WebhookOperators: %w", host, err)
	}
	gv := engine.OperatorResource.GroupVersion()
	var core, group bool
	for _, g := range groups.Groups {
		for _, v := range g.Versions {
			core = core || g.Name == "" && v.Version == "v1"
			group = group || v.GroupVersion == gv.String()
		}
	}
	switch {
	case !core:
		return false, fmt.Errorf("%s is not a Kubernetes API server: its discovery lists no core API group v1 (is the kubeconfig's server right?)", host)
	case !group:
		return false, nil
	}
	list, err := disco.ServerResourcesForGroupVersionWithContext(ctx, gv.String())
	if err != nil {
		return false, fmt.Errorf("ask the discovery of %s whether it serves WebhookOperators: %w", host, err)
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == engine.OperatorResource.Resource }), nil
}

// matching lists the operators of the selector, kept to names when given.
func (o *removeOptions) matching(ctx context.Context, res dynamic.ResourceInterface, names []string) ([]unstructured.Unstructured, error) {
	list, err := res.List(ctx, metav1.ListOptions{LabelSelector: o.selector})
	if err != nil {
		return nil, err // explained by the callers: a 404 needs asking discovery first
	}
	if len(names) == 0 {
		return list.Items, nil
	}
	return slices.DeleteFunc(list.Items, func(u unstructured.Unstructured) bool { return !slices.Contains(names, u.GetName()) }), nil
}

// what names the selection in messages.
func (o *removeOptions) what(names []string) string {
	var parts []string
	if len(names) > 0 {
		parts = append(parts, "named "+strings.Join(names, ", "))
	}
	if o.selector != "" {
		parts = append(parts, "matching "+o.selector)
	}
	return strings.Join(parts, " and ")
}

// deleteOperator deletes op itself, not a WebhookOperator created since
// under its name (the UID precondition); one gone already is fine.
func deleteOperator(ctx context.Context, res dynamic.ResourceInterface, op unstructured.Unstructured) error {
	if op.GetDeletionTimestamp() != nil {
		return nil
	}
	uid := op.GetUID()
	err := res.Delete(ctx, op.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return explainOperators(err, "delete WebhookOperator "+op.GetName())
}

// waitGone polls until none of the waited-for operators is left and
// returns those left when ctx ends. A failed listing is retried: the API
// server may be busy, and the deadline bounds the wait anyway.
func (o *removeOptions) waitGone(ctx context.Context, res dynamic.ResourceInterface, names []string, waiting map[types.UID]bool) ([]unstructured.Unstructured, error) {
	var left []unstructured.Unstructured
	var listErr error
	err := wait.PollUntilContextCancel(ctx, o.interval, true, func(ctx context.Context) (bool, error) {
		ops, err := o.matching(ctx, res, names)
		if err != nil {
			listErr = explainOperators(err, "list WebhookOperators "+o.what(names))
			return false, nil
		}
		left, listErr = slices.DeleteFunc(ops, func(u unstructured.Unstructured) bool { return !waiting[u.GetUID()] }), nil
		return len(left) == 0, nil
	})
	switch {
	case err == nil:
		return nil, nil
	case listErr != nil:
		return nil, fmt.Errorf("after %s, still not seen gone: %w", o.timeout, listErr)
	}
	return left, nil
}

// stillThere says which operators outlived the timeout and why they may
// have: the gateway's finalizer waits for the gateway.
func stillThere(left []unstructured.Unstructured, timeout time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d WebhookOperator(s) still there after %s:", len(left), timeout)
	for i := range left {
		r := toRegistered(&left[i])
		status := "False"
		if r.ready.Ready {
			status = "True"
		}
		fmt.Fprintf(&b, "\n  %s: finalizers %s; Ready %s/%s: %s", r.Name, finalizersOf(left[i]), status, r.ready.Reason, r.ready.Message)
		if last, _, _ := unstructured.NestedString(left[i].Object, "status", "lastError"); last != "" {
			fmt.Fprintf(&b, "; lastError: %s", last)
		}
	}
	fmt.Fprintf(&b, "\nthe gateway removes its finalizer %s once it has released the operator's objects: is it running, and what do its logs say?", engine.RegistryFinalizer)
	return errors.New(b.String())
}

func finalizersOf(u unstructured.Unstructured) string {
	return "[" + strings.Join(u.GetFinalizers(), ", ") + "]"
}
