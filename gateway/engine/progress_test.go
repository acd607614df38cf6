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

// One callback on update and sync, maxAttempts 3: each event counts its own
// attempts. A sync's failure neither continues the update's count nor
// overwrites it, a sync's success does not reset it, and the update's third
// failure is the one that makes it permanent and counts it done in its
// round (before, they shared one record: the sync went on from the
// update's attempts, and a flaky sync sent the update back to attempt 1).
// The sync's success after it ends the sync's record, not the update's
// permanent failure: the object stays failing until its spec changes.
func TestEachEventOfACallbackCountsItsOwnAttempts(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	three := 3
	main := spec.Callback{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventSync}}
	c, _ := retryController(t, now, main, &spec.RetrySpec{MaxAttempts: &three})
	p := widgetPass(now, &state.State{Handled: "old", Round: &state.Round{Event: "update", Digest: "new"}}, "new")
	for i, step := range []struct {
		event       spec.Event
		fails       bool
		wantAttempt int
	}{
		{spec.EventUpdate, true, 1},
		{spec.EventSync, true, 1},
		{spec.EventSync, false, 2},
		{spec.EventUpdate, true, 2},
		{spec.EventSync, true, 1},
		{spec.EventUpdate, true, 3},
		{spec.EventSync, false, 2},
	} {
		w := decide.Work{Callback: main, Event: step.event}
		d := attemptOf(p, w)
		if d.attempt != step.wantAttempt {
			t.Fatalf("step %d: %s call is attempt %d, want %d", i+1, step.event, d.attempt, step.wantAttempt)
		}
		if step.fails {
			c.recordFailure(p, w, d, failure.Temporaryf("HandlerError", "503"), c.log)
		} else {
			c.recordSuccess(p, w, nil)
		}
	}
	if pr := p.st.ProgressFor("main", "update"); pr == nil || !pr.Failed || pr.Attempts != 3 || pr.Event != "update" {
		t.Errorf("update record = %+v, want failed permanently at its attempt 3", pr)
	}
	if !p.st.Round.IsDone("main") {
		t.Error("the update that failed permanently is not counted done: its round stays open")
	}
	if pr := p.st.ProgressFor("main", "sync"); pr != nil {
		t.Errorf("sync record = %+v, want it ended by the sync's success", pr)
	}
}

// A reconcile request gives one more attempt to each event's permanent
// failure that is still owed: the sync's, not the update's whose round
// ended (it would only count the object failing, with no call to end it).
func TestARequestRetriesOnlyTheEventsStillOwed(t *testing.T) {
	main := spec.Callback{ID: "main", Events: []spec.Event{spec.EventUpdate, spec.EventSync}}
	c := &Controller{op: &spec.WebhookOperator{Spec: spec.OperatorSpec{Callbacks: []spec.Callback{main}}}}
	st := &state.State{Handled: "d"}
	for _, event := range []string{"update", "sync"} {
		pr := st.ProgressOf("main", event)
		pr.Attempts, pr.Failed, pr.Digest = 3, true, "d"
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"namespace": "ns", "name": "w"}}}
	c.honourRequest(&pass{obj: obj, st: st, mem: &objectMemory{}}, "2026-11-25T10:00:00Z")
	if pr := st.ProgressFor("main", "sync"); pr == nil || pr.Failed || pr.Attempts != 3 {
		t.Errorf("sync record = %+v, want one more attempt after its 3", pr)
	}
	if pr := st.ProgressFor("main", "update"); pr == nil || !pr.Failed {
		t.Errorf("update record = %+v, want it still failed: its round is over", pr)
	}
}

// Calls a shutdown cut off are attempts of the delivery (the handler is
// told their number) but no failures: with maxAttempts 2, a cut-off call,
// a failure, another cut-off call and a second failure make it permanent
// only at that second failure, and the backoff grows with the failures
// alone. A new essence starts a delivery that counts nothing of the old.
func TestACallCutOffByShutdownIsNoFailure(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	two, noJitter := 2, 0.0
	main := spec.Callback{ID: "main", Events: []spec.Event{spec.EventCreate}}
	c, _ := retryController(t, now, main, &spec.RetrySpec{MaxAttempts: &two, InitialDelay: &spec.Duration{Duration: time.Second}, Jitter: &noJitter})
	p := widgetPass(now, &state.State{Round: &state.Round{Event: "create"}}, "e1")
	w := decide.Work{Callback: main, Event: spec.EventCreate}
	for i, step := range []struct {
		essence     string
		interrupted bool // else a temporary failure
		wantAttempt int
		wantFailed  bool
		wantNext    time.Duration // after now; 0: none
	}{
		{"e1", true, 1, false, 0},
		{"e1", false, 2, false, time.Second},
		{"e1", true, 3, false, 0},
		{"e1", false, 4, true, 0},
		{"e2", false, 1, false, time.Second},
	} {
		p.plan.EssenceDigest = step.essence
		d := attemptOf(p, w)
		if d.attempt != step.wantAttempt {
			t.Fatalf("step %d: the call is attempt %d, want %d", i+1, d.attempt, step.wantAttempt)
		}
		if step.interrupted {
			c.recordInterrupted(p, w, d)
		} else {
			c.recordFailure(p, w, d, failure.Temporaryf("HandlerError", "503"), c.log)
		}
		pr := p.st.ProgressFor("main", "create")
		var next time.Duration
		if !pr.Next.IsZero() {
			next = pr.Next.Sub(now)
		}
		if pr.Attempts != step.wantAttempt || pr.Failed != step.wantFailed || next != step.wantNext {
			t.Errorf("step %d: record %+v, want attempt %d, failed %v, next retry in %s", i+1, pr, step.wantAttempt, step.wantFailed, step.wantNext)
		}
	}
}

// retryController is a Controller of operator widgets with one callback
// and retry, its clock stopped at now, its Events recorded in rec.
func retryController(t *testing.T, now time.Time, cb spec.Callback, retry *spec.RetrySpec) (c *Controller, rec *record.FakeRecorder) {
	t.Helper()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec = record.NewFakeRecorder(100)
	return &Controller{
		Deps: Deps{Clock: func() time.Time { return now }, Recorder: rec, Metrics: m},
		op: &spec.WebhookOperator{ObjectMeta: metav1.ObjectMeta{Name: "widgets"}, Spec: spec.OperatorSpec{
			Callbacks: []spec.Callback{cb}, Retry: retry,
		}},
		log: slog.New(slog.DiscardHandler),
	}, rec
}

// widgetPass is a pass over widget ns/w in state st at essence digest.
func widgetPass(now time.Time, st *state.State, digest string) *pass {
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "test.opgate.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"namespace": "ns", "name": "w"}}}
	return &pass{key: "ns/w", obj: obj, mem: &objectMemory{}, now: now, st: st, plan: decide.Plan{EssenceDigest: digest}}
}
