package integration

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// startRecordingGateway runs a file-mode gateway that records the
// operators it runs in a ConfigMap, until the returned stop is called.
func startRecordingGateway(t *testing.T, record types.NamespacedName, ops ...*spec.WebhookOperator) (stop func()) {
	t.Helper()
	stop, _ = startGatewayWithOptions(t, runner.Options{OperatorRecord: record}, ops...)
	return stop
}

// withCleanup gives an operator a create and a delete callback: it holds
// its finalizer on the objects it handles.
func withCleanup(s *spec.OperatorSpec) {
	s.Callbacks = []spec.Callback{
		{ID: "create", Events: []spec.Event{spec.EventCreate}},
		{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
	}
}

func TestRestartWithoutAnOperatorReleasesWhatItRecorded(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	keep, drop := operatorFor(t, "keep", ns, h.URL, withCleanup), operatorFor(t, "drop", ns, h.URL, withCleanup)
	record := types.NamespacedName{Namespace: ns, Name: "opgate-gateway"}
	stop := startRecordingGateway(t, record, keep, drop)
	// Another gateway, with its own operator on the same objects, stays up.
	startGateway(t, operatorFor(t, "foreign", ns, h.URL, withCleanup))
	createWidget(t, ns, "example", 1)
	for _, op := range []string{"keep", "drop", "foreign"} {
		eventually(t, 20*time.Second, func() error { return heldBy(t, ns, "example", op) })
		eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", op) })
	}
	stop()

	startRecordingGateway(t, record, keep)
	eventually(t, 20*time.Second, func() error { return releasedBy(t, ns, "example", "drop") })
	for _, op := range []string{"keep", "foreign"} {
		if err := heldBy(t, ns, "example", op); err != nil {
			t.Errorf("a finalizer of a running operator was released: %v", err)
		}
	}
}

// --operator-record naming a namespace that does not exist (a typo, or one
// not created yet): the record cannot be written, so the operator must not
// hold (docs/architecture.md, "Recorded before held"), or dropped from the
// files later its objects would never be released. Ready names the missing
// namespace, and the operator starts by itself once it exists.
func TestAnOperatorRecordInAMissingNamespaceKeepsTheOperatorFromHoldingUntilItExists(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	op := operatorFor(t, "drop", ns, h.URL, withCleanup)
	record := types.NamespacedName{Namespace: ns + "-record", Name: "opgate-gateway"}
	gw, err := runner.New(cfg, runner.Options{Operators: []*spec.WebhookOperator{op}, OperatorRecord: record,
		Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	defer func() { cancel(); <-done }()
	createWidget(t, ns, "example", 1)

	want := "namespace " + record.Namespace + " does not exist"
	eventually(t, 20*time.Second, func() error {
		if err := gw.Ready(); err == nil || !strings.Contains(err.Error(), engine.ReasonRecordUnwritable) || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("Ready() = %v, want an error saying %s and %q", err, engine.ReasonRecordUnwritable, want)
		}
		return nil
	})
	if err := heldBy(t, ns, "example", "drop"); err == nil {
		t.Errorf("operator drop holds %s/example though its record %s could not be written", ns, record)
	}

	if _, err := kube(t).CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: record.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", record.Namespace, err)
	}
	eventually(t, 30*time.Second, func() error { return heldBy(t, ns, "example", "drop") })
	if err := recorded(t, record, "drop"); err != nil {
		t.Errorf("operator drop holds its finalizer on %s/example, but: %v", ns, err)
	}
}

// recorded is nil once the record lists every one of operators.
func recorded(t *testing.T, record types.NamespacedName, operators ...string) error {
	names, err := engine.ConfigMapRecord{Kube: kube(t), Ref: record}.Operators(context.Background())
	if err != nil {
		return err
	}
	for _, op := range operators {
		if !slices.Contains(names, op) {
			return fmt.Errorf("record %s lists %v, want %s among them", record, names, op)
		}
	}
	return nil
}

// An operator dropped from the files is released at a start with
// --operator-record only if the record lists it, that is if a gateway ran
// it with the record (docs/install-local.md, "Stuck Terminating"): one run
// without the record is not, until it has run once with it.
func TestDroppedOperatorIsReleasedOnlyOnceItRanWithTheRecord(t *testing.T) {
	ns := newNamespace(t)
	h := newHandler(t, ok(nil))
	keep, drop := operatorFor(t, "keep", ns, h.URL, withCleanup), operatorFor(t, "drop", ns, h.URL, withCleanup)
	record := types.NamespacedName{Namespace: ns, Name: "opgate-gateway"}
	stop := startGateway(t, keep, drop) // no --operator-record
	createWidget(t, ns, "example", 1)
	for _, op := range []string{"keep", "drop"} {
		eventually(t, 20*time.Second, func() error { return heldBy(t, ns, "example", op) })
		eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "example", op) })
	}
	stop()

	// Dropped, restarted with the record: drop was never recorded, so the
	// start's sweep of dropped operators (which reads the record once, as
	// it starts) has nothing to release.
	stop = startRecordingGateway(t, record, keep)
	eventually(t, 20*time.Second, func() error { return recorded(t, record, "keep") })
	if err := heldBy(t, ns, "example", "drop"); err != nil {
		t.Fatalf("an operator never recorded was released: %v", err)
	}
	stop()

	// Run once with the record, then dropped: released.
	stop = startRecordingGateway(t, record, keep, drop)
	eventually(t, 20*time.Second, func() error { return recorded(t, record, "keep", "drop") })
	stop()
	startRecordingGateway(t, record, keep)
	eventually(t, 20*time.Second, func() error { return releasedBy(t, ns, "example", "drop") })
	if err := heldBy(t, ns, "example", "keep"); err != nil {
		t.Errorf("the running operator's finalizer was released: %v", err)
	}
}
