package engine

import (
	"testing"
	"time"

	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// A call a gateway shutdown cut off is no failure, so the first real
// failure after it is the delivery's first: reported as a Warning Event,
// as contract.md says of every first failure.
func TestTheFirstFailureAfterACallCutOffIsReported(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	noJitter := 0.0
	main := spec.Callback{ID: "main", Events: []spec.Event{spec.EventCreate}}
	c, rec := retryController(t, now, main, &spec.RetrySpec{InitialDelay: &spec.Duration{Duration: time.Second}, Jitter: &noJitter})
	p := widgetPass(now, &state.State{Round: &state.Round{Event: "create"}}, "e1")
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

// The rolling update that installs the count of cut-off calls is one: the
// gateway it replaces recorded its cut-off call as {"a":1,"c":"Interrupted"}
// without "i". One real failure after it must not fail permanently under
// maxAttempts 2.
func TestAnOlderGatewaysCutOffCallIsNoFailure(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	two, noJitter := 2, 0.0
	main := spec.Callback{ID: "main", Events: []spec.Event{spec.EventCreate}}
	c, _ := retryController(t, now, main, &spec.RetrySpec{MaxAttempts: &two, InitialDelay: &spec.Duration{Duration: time.Second}, Jitter: &noJitter})
	// What c0c7823's recordInterrupted wrote, as read back from the annotation.
	st, err := state.Decode(`{"r":{"ev":"create"},"p":{"main":{"a":1,"f":"2026-11-25T09:59:00Z","d":"e1","m":"interrupted by shutdown","c":"Interrupted","v":"create"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	p := widgetPass(now, st, "e1")
	w := decide.Work{Callback: main, Event: spec.EventCreate}
	c.recordFailure(p, w, attemptOf(p, w), failure.Temporaryf("HandlerError", "503"), c.log)
	if pr := p.st.ProgressFor("main", "create"); pr.Failed {
		t.Fatalf("one real failure after the older gateway's cut-off call failed permanently under maxAttempts 2: %+v", pr)
	}
}
