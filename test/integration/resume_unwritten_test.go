package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
)

// After a restart, the first pass of a handled object calls resume (it
// succeeds) and sync (it fails). The state write that would record the
// sync's failure is refused by the API server (500) for a while. While the
// state cannot be written the process goes on from the state it meant to
// write, and callbacks that succeeded are not called again
// (architecture.md, "State kept in the cluster"): resume is called once by
// the process, not once per retried pass. Until 2026-12-03 every retried
// pass called it again (found by review rv47).
func TestResumeIsCalledOncePerProcessWhileTheStateCannotBeWritten(t *testing.T) {
	ns := newNamespace(t)
	var syncFails atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "sync" && syncFails.Load() {
			return 200, map[string]any{"error": map[string]any{"message": "backend busy"}}
		}
		return 200, map[string]any{}
	})
	op := operatorFor(t, "resumeonce", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "resume", Events: []spec.Event{spec.EventResume}},
			{ID: "sync", Events: []spec.Event{spec.EventSync}},
		}
	})
	stop := startGateway(t, op)
	createWidget(t, ns, "w", 1)
	eventually(t, 20*time.Second, func() error { return stateHandled(t, ns, "w", "resumeonce") })
	eventually(t, 20*time.Second, func() error { return called(h, "sync", 1) })
	stop()

	syncFails.Store(true)
	var refuse atomic.Bool
	refuse.Store(true)
	var refused, landed atomic.Int32
	c := rest.CopyConfig(cfg)
	c.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			// The state is written by JSON patch; statuses and finalizers otherwise.
			stateWrite := r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/widgets/") &&
				strings.Contains(r.Header.Get("Content-Type"), "json-patch")
			if stateWrite && refuse.Load() {
				refused.Add(1)
				body := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500}`
				return &http.Response{StatusCode: 500, Status: "500 Internal Server Error", Request: r,
					Header: http.Header{"Content-Type": []string{"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}, nil
			}
			resp, err := next.RoundTrip(r)
			if stateWrite && err == nil && resp.StatusCode == http.StatusOK {
				landed.Add(1)
			}
			return resp, err
		})
	})
	startGatewayWithConfig(t, c, runner.Options{}, op)
	eventually(t, 20*time.Second, func() error {
		if n := refused.Load(); n < 3 {
			return fmt.Errorf("%d state writes refused so far", n)
		}
		return nil
	})
	refuse.Store(false)
	// Once a state write landed the process counts the object as seen
	// however it marks it: any resume call owed or not is made by then.
	eventually(t, 20*time.Second, func() error {
		if landed.Load() == 0 {
			return fmt.Errorf("no state write landed since the refusals ended")
		}
		return nil
	})
	if n := len(h.calls("resume")); n != 1 {
		t.Errorf("resume called %d times by one gateway process (%d state writes refused meanwhile), want once", n, refused.Load())
	}
}
