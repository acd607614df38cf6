package engine

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/record"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/metrics"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// contract.md: a call a gateway shutdown cut off is "no failure"; "The first
// failure, every InvalidResponse and every permanent failure are reported as
// a Warning Event on the object." The first real failure after an
// interrupted attempt must be reported.
func TestTheFirstFailureAfterACallCutOffIsReported(t *testing.T) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	noJitter := 0.0
	main := spec.Callback{ID: "main", Events: []spec.Event{spec.EventCreate}}
	rec := record.NewFakeRecorder(100)
	c := &Controller{
		Deps: Deps{Clock: func() time.Time { return now }, Recorder: rec, Metrics: m},
		op: &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: "widgets"}, Spec: spec.OperatorSpec{
			Callbacks: []spec.Callback{main},
			Retry:     &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: time.Second}, Jitter: &noJitter},
		}},
		log: slog.New(slog.DiscardHandler),
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "test.opgate.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"namespace": "ns", "name": "w"}}}
	p := &pass{key: "ns/w", obj: obj, mem: &objectMemory{}, now: now,
		st:   &state.State{Round: &state.Round{Event: "create"}},
		plan: decide.Plan{EssenceDigest: "e1"}}
	w := decide.Work{Callback: main, Event: spec.EventCreate}

	c.recordInterrupted(p, w, attemptOf(p, w)) // a rolling update cut the first call off
	c.recordFailure(p, w, attemptOf(p, w), failure.Temporaryf("HandlerError", "503"), c.log)
	select {
	case e := <-rec.Events:
		t.Logf("event: %s", e)
	default:
		t.Fatal("the first failure of the delivery (after a call a shutdown cut off) was not reported as a Warning Event")
	}
}

// contract.md: "A call a gateway shutdown cut off is an attempt ... but no
// failure: it counts towards neither, so a rolling update of the gateway
// cannot make a failure permanent." The rolling update that installs this
// version is one: the gateway it replaces recorded its cut-off call as
// {"a":1,"c":"Interrupted"} without "i". One real failure after it then
// fails permanently under maxAttempts 2.
func TestAnOlderGatewaysCutOffCallIsNoFailure(t *testing.T) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	two, noJitter := 2, 0.0
	main := spec.Callback{ID: "main", Events: []spec.Event{spec.EventCreate}}
	c := &Controller{
		Deps: Deps{Clock: func() time.Time { return now }, Recorder: record.NewFakeRecorder(100), Metrics: m},
		op: &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: "widgets"}, Spec: spec.OperatorSpec{
			Callbacks: []spec.Callback{main},
			Retry:     &spec.RetrySpec{MaxAttempts: &two, InitialDelay: &spec.Duration{Duration: time.Second}, Jitter: &noJitter},
		}},
		log: slog.New(slog.DiscardHandler),
	}
	// What c0c7823's recordInterrupted wrote, as read back from the annotation.
	st, err := state.Decode(`{"r":{"ev":"create"},"p":{"main":{"a":1,"f":"2026-11-25T09:59:00Z","d":"e1","m":"interrupted by shutdown","c":"Interrupted","v":"create"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "test.opgate.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"namespace": "ns", "name": "w"}}}
	p := &pass{key: "ns/w", obj: obj, mem: &objectMemory{}, now: now, st: st, plan: decide.Plan{EssenceDigest: "e1"}}
	w := decide.Work{Callback: main, Event: spec.EventCreate}
	c.recordFailure(p, w, attemptOf(p, w), failure.Temporaryf("HandlerError", "503"), c.log)
	if pr := p.st.ProgressFor("main", "create"); pr.Failed {
		t.Fatalf("one real failure after the older gateway's cut-off call failed permanently under maxAttempts 2: %+v", pr)
	}
}
