package invariant

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/opgate/opgate/gateway/spec"
)

// OperatorLabel is the label the gateway puts on every child it applies.
const OperatorLabel = "opgate.dev/operator"

// Scope is where a scenario's objects live.
type Scope struct {
	Parent    schema.GroupVersionResource
	Namespace string // "" for every namespace (or a cluster-scoped parent)
	// Children are the resources of the operator's child kinds; they are
	// listed in every namespace, by the operator's label.
	Children           []schema.GroupVersionResource
	NoGarbageCollector bool // envtest: see Snapshot.NoGarbageCollector
}

// Observe lists what Check needs from the cluster.
func Observe(ctx context.Context, client dynamic.Interface, scope Scope, operator string) (Snapshot, error) {
	snap := Snapshot{NoGarbageCollector: scope.NoGarbageCollector}
	parents, err := client.Resource(scope.Parent).Namespace(scope.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return snap, fmt.Errorf("list %s: %w", scope.Parent.Resource, err)
	}
	snap.Parents = items(parents)
	for _, gvr := range scope.Children {
		list, err := client.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: OperatorLabel + "=" + operator})
		if err != nil {
			return snap, fmt.Errorf("list %s: %w", gvr.Resource, err)
		}
		snap.Children = append(snap.Children, items(list)...)
	}
	return snap, nil
}

func items(list *unstructured.UnstructuredList) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out
}

// Checker ties a scenario together: record changes in History, wrap the
// handler with Recorder.Wrap, and end with AssertEventually.
type Checker struct {
	Expect   Expect
	Scope    Scope
	Client   dynamic.Interface
	History  *History
	Recorder *Recorder
	// MaxDuplicates fails the scenario when more successful repeats than
	// this were counted; negative means no bound.
	MaxDuplicates int
}

// New returns a checker of op's objects in scope, with an empty history
// and recorder and no bound on duplicates.
func New(op *spec.WebhookOperator, client dynamic.Interface, scope Scope) *Checker {
	return &Checker{Expect: ExpectFrom(op), Scope: scope, Client: client,
		History: NewHistory(), Recorder: NewRecorder(), MaxDuplicates: -1}
}

// Check observes the cluster and checks it against the history and calls.
func (c *Checker) Check(ctx context.Context) (Report, error) {
	snap, err := Observe(ctx, c.Client, c.Scope, c.Expect.Operator)
	if err != nil {
		return Report{}, err
	}
	return Check(c.Expect, c.History.Changes(), c.Recorder.Calls(), snap), nil
}

// Record notes a change and fails the test if it cannot (an object without
// uid). It returns obj, to wrap a client call's answer.
func (c *Checker) Record(t testing.TB, kind ChangeKind, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	if err := c.History.Record(kind, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// AssertEventually checks every 500ms until the report is clean, and fails
// the test with the table if it is not within timeout, or if duplicates
// exceed MaxDuplicates. It logs the final report (duplicates included)
// and returns it, with how long convergence took.
func (c *Checker) AssertEventually(t testing.TB, timeout time.Duration) (Report, time.Duration) {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	var rep, unmet Report
	var sawUnmet bool
	var lastErr error
	for {
		r, err := c.Check(ctx)
		if err == nil {
			rep, lastErr = r, nil
			if rep.Clean() {
				break
			}
			unmet, sawUnmet = rep, true
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("invariants still broken after %s (last error: %v):\n%s", timeout, lastErr, rep.Table(true))
		case <-ticker.C:
		}
	}
	took := time.Since(began)
	if sawUnmet {
		// What was left to wait for: in fault tests, whose recovery it was.
		t.Logf("the last check before they held: %s", unmet.Summary())
	}
	t.Logf("invariants hold after %s:\n%s", took.Round(100*time.Millisecond), rep.Table(true))
	if c.MaxDuplicates >= 0 && rep.Duplicates > c.MaxDuplicates {
		t.Errorf("%d duplicate deliveries, more than the %d allowed", rep.Duplicates, c.MaxDuplicates)
	}
	return rep, took
}
