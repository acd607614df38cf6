package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// refusedByClientGo is the error client-go gives a list sent to a port
// nobody listens on: the shape an API server outage has.
func refusedByClientGo(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	dyn, err := dynamic.NewForConfig(&rest.Config{Host: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).
		List(context.Background(), metav1.ListOptions{})
	if err == nil {
		t.Fatalf("list from %s answered", addr)
	}
	return err
}

// dialTimeout is the error of a connection that could not be made in time
// (packets dropped: the API server's host down, a partition).
func dialTimeout(t *testing.T) error {
	t.Helper()
	_, err := (&net.Dialer{Timeout: time.Nanosecond}).Dial("tcp", "10.255.255.1:443")
	if err == nil {
		t.Fatal("dial answered")
	}
	return err
}

func statusError(code int32, cause metav1.CauseType) error {
	st := metav1.Status{Status: metav1.StatusFailure, Code: code, Message: "failed"}
	if cause != "" {
		st.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: cause}}}
	}
	return &apierrors.StatusError{ErrStatus: st}
}

// TestAnAnswerIsNoLostConnection: an API server's answer carrying a
// lost connection's words (an aggregated API it could not reach) is an
// answer: it says nothing of the gateway's own connection.
func TestAnAnswerIsNoLostConnection(t *testing.T) {
	err := apierrors.NewServiceUnavailable("error trying to reach service: read tcp 10.0.0.1:443: connection reset by peer")
	if connectionFailed(err) {
		t.Errorf("connectionFailed(%v) = true, want false", err)
	}
	if !unreachable(err) {
		t.Errorf("unreachable(%v) = false: a 503 is still a server that cannot serve now", err)
	}
}

func TestUnreachableTellsOutagesFromRefusals(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refusedByClientGo(t), true},
		{"no connection in time", dialTimeout(t), true},
		{"connection cut mid-answer", io.ErrUnexpectedEOF, true},
		{"body cut mid-read, as client-go wraps it", fmt.Errorf("unexpected error when reading response body. Please retry. Original error: %w", io.ErrUnexpectedEOF), true},
		{"a watch that could not be opened", errNoWatch, true},
		{"503 while the API server starts", apierrors.NewServiceUnavailable("starting"), true},
		{"504 from a proxy", statusError(http.StatusGatewayTimeout, ""), true},
		{"502 from a proxy", statusError(http.StatusBadGateway, ""), true},
		{"429 from priority and fairness", apierrors.NewTooManyRequests("busy", 1), true},
		{"504 resource version too large: the reflector reads without it", statusError(http.StatusGatewayTimeout, metav1.CauseTypeResourceVersionTooLarge), false},
		{"500, a conversion webhook failing", apierrors.NewInternalError(errors.New("conversion webhook failed")), false},
		{"an answer the client cannot read", errors.New("list item 3: invalid character 'x'"), false},
		{"403 forbidden", apierrors.NewForbidden(gr, "", errors.New("rbac")), false},
		{"404 kind gone", apierrors.NewNotFound(gr, ""), false},
		{"410 revision compacted", apierrors.NewResourceExpired("too old resource version"), false},
		{"informer stopped", context.Canceled, false},
		{"success", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unreachable(tt.err); got != tt.want {
				t.Errorf("unreachable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestListAndWatchRetryWhileTheAPIServerCannotAnswer(t *testing.T) {
	refused := refusedByClientGo(t)
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "widgets"}, "", errors.New("rbac"))
	tests := []struct {
		name      string
		answers   []error // one per call; the call after the last succeeds
		retries   int     // the backoff's, after the first call; 0 means 5
		wantCalls int
		wantErr   error
	}{
		{"outage then answer", []error{refused, refused, apierrors.NewServiceUnavailable("starting")}, 0, 4, nil},
		{"refusal goes back at once", []error{forbidden}, 0, 1, forbidden},
		{"refusal after an outage", []error{refused, forbidden}, 0, 2, forbidden},
		{"answer at once", nil, 0, 1, nil},
		{"a connection lost once is not reported", []error{refused}, 0, 2, nil},
		{"a request throttled once is not reported", []error{apierrors.NewTooManyRequests("busy", 0)}, 0, 2, nil},
		{"an unavailable server is reported at once", []error{apierrors.NewServiceUnavailable("starting")}, 0, 2, nil},
		{"gives up to the reflector in the end", []error{refused, refused, refused, refused, refused, refused, refused}, 0, 6, refused},
		{"a first failure given up on is reported", []error{refused}, -1, 1, refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			var seen []error
			retries := uint64(5)
			switch {
			case tt.retries < 0:
				retries = 0
			case tt.retries > 0:
				retries = uint64(tt.retries)
			}
			out, err := untilAnswered(context.Background(), backoff.WithMaxRetries(backoff.NewConstantBackOff(time.Millisecond), retries),
				unreachable, func(err error) { seen = append(seen, err) },
				func() (string, error) {
					calls++
					if calls <= len(tt.answers) {
						return "", tt.answers[calls-1]
					}
					return "list", nil
				})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && out != "list" {
				t.Errorf("out = %q, want the answer", out)
			}
			want := calls
			if len(tt.answers) > 0 && (connectionFailed(tt.answers[0]) || apierrors.IsTooManyRequests(tt.answers[0])) && calls > 1 {
				want-- // a first lost connection or 429 that was tried again is not reported
			}
			if len(seen) != want || seen[len(seen)-1] != err {
				t.Errorf("health saw %v, want %d outcomes ending in %v", seen, want, err)
			}
		})
	}
}

func TestListStopsRetryingWhenTheInformerStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	refused := refusedByClientGo(t)
	done := make(chan error, 1)
	calls := make(chan struct{}, 100)
	go func() {
		_, err := untilAnswered(ctx, backoff.NewConstantBackOff(time.Millisecond), unreachable, func(error) {},
			func() (int, error) {
				select {
				case calls <- struct{}{}:
				default:
				}
				return 0, refused
			})
		done <- err
	}()
	<-calls
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, refused) {
			t.Errorf("err = %v, want the last failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retry went on after the informer stopped")
	}
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestReachBackoffDoublesToFourSecondsAndGivesUpAfterTwoMinutes(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	b := reachBackoff(clock)
	base := reachFirstRetry
	for i := range 8 {
		wait := b.NextBackOff()
		if lo, hi := base/2, base*3/2; wait < lo || wait > hi {
			t.Fatalf("wait %d = %s, want within [%s, %s]", i, wait, lo, hi)
		}
		base = min(base*2, reachMaxRetry)
	}
	clock.now = clock.now.Add(2 * time.Minute)
	if wait := b.NextBackOff(); wait == backoff.Stop {
		t.Fatal("gave up after 2 minutes, want 2 min 10 s")
	}
	clock.now = clock.now.Add(11 * time.Second)
	if wait := b.NextBackOff(); wait != backoff.Stop {
		t.Fatalf("wait %s after 2 min 11 s, want the failure back to the reflector", wait)
	}
}

func TestRetryWaitsTheDelayTheServerAsksForUpToThirtySeconds(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want time.Duration
	}{
		{"no delay asked", refusedByClientGo(t), time.Millisecond},
		{"Retry-After 5", apierrors.NewTooManyRequests("busy", 5), 5 * time.Second},
		{"Retry-After an hour", apierrors.NewTooManyRequests("busy", 3600), reachMaxServerDelay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextWait(backoff.NewConstantBackOff(time.Millisecond), tt.err); got != tt.want {
				t.Errorf("wait %s, want %s", got, tt.want)
			}
		})
	}
	if got := nextWait(&backoff.StopBackOff{}, apierrors.NewTooManyRequests("busy", 5)); got != backoff.Stop {
		t.Errorf("wait %s after the backoff gave up, want Stop", got)
	}
}

// The informers' list and watch go through the retry; a watch streaming
// the initial list (sendInitialEvents) retries only a lost connection, so
// that the reflector can fall back to a list on any other error.
func TestInformerListAndWatchRetryWhileTheAPIServerIsAway(t *testing.T) {
	refused := refusedByClientGo(t)
	unavailable := apierrors.NewServiceUnavailable("starting")
	var h watchHealth
	calls := map[string]int{}
	answers := map[string][]error{"list": {refused, unavailable}, "watch": {refused, unavailable}}
	next := func(verb string) error {
		calls[verb]++
		if n := calls[verb]; n <= len(answers[verb]) {
			return answers[verb][n-1]
		}
		return nil
	}
	lw := trackedListWatch("widgets", selection{}, &h,
		func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			return &unstructured.UnstructuredList{}, next("list")
		},
		func(context.Context, metav1.ListOptions) (watch.Interface, error) {
			return watch.NewFake(), next("watch")
		})
	if _, err := lw.ListWithContext(context.Background(), metav1.ListOptions{}); err != nil || calls["list"] != 3 {
		t.Errorf("list: err %v after %d calls, want an answer on the third", err, calls["list"])
	}
	if _, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{}); err != nil || calls["watch"] != 3 {
		t.Errorf("watch: err %v after %d calls, want an answer on the third", err, calls["watch"])
	}
	calls["watch"] = 0
	initial := true
	_, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{SendInitialEvents: &initial})
	if !errors.Is(err, unavailable) || calls["watch"] != 2 {
		t.Errorf("watch-list: err %v after %d calls, want the 503 on the second (the refused connection retried)", err, calls["watch"])
	}
	// API Priority and Fairness throttles most when informers (re)list:
	// the watch-list waits its turn rather than falling back to a list,
	// which would be throttled as well, and says nothing of it.
	calls["watch"] = 0
	h.observeCall("widgets", nil)
	answers["watch"] = []error{apierrors.NewTooManyRequests("busy", 0)}
	if _, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{SendInitialEvents: &initial}); err != nil || calls["watch"] != 2 {
		t.Errorf("watch-list: err %v after %d calls, want an answer on the second (the 429 retried)", err, calls["watch"])
	}
	if what, err, failing := h.failing(); failing {
		t.Errorf("%s reported failing with %v", what, err)
	}
}

// client-go's Request.Watch and watchjson answer an empty watch when the
// connection was lost on each of their own tries: a failure to retry and
// report, not an opened watch, unless the informer is stopping.
func TestEmptyWatchIsAWatchNotOpened(t *testing.T) {
	if w, err := opened(context.Background(), watch.NewEmptyWatch(), nil); w != nil || !errors.Is(err, errNoWatch) {
		t.Errorf("opened(empty watch) = %v, %v; want errNoWatch", w, err)
	}
	fake := watch.NewFake()
	if w, err := opened(context.Background(), fake, nil); w != fake || err != nil {
		t.Errorf("opened(a watch) = %v, %v; want it", w, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w, err := opened(ctx, watch.NewEmptyWatch(), nil); w == nil || err != nil {
		t.Errorf("opened(empty watch) while stopping = %v, %v; want the empty watch", w, err)
	}
}
