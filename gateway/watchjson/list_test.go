package watchjson

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// TestListAnswersWhatTheDynamicClientsListAnswers: the list, its query and
// its errors as client-go's dynamic client has them.
func TestListAnswersWhatTheDynamicClientsListAnswers(t *testing.T) {
	list := `{"apiVersion":"test.opgate.dev/v1","kind":"WidgetList","metadata":{"resourceVersion":"9","continue":"c"},"items":[` + object + `]}`
	for _, tt := range []struct {
		name string
		code int
		body string
	}{
		{"a list", http.StatusOK, list},
		{"an empty list", http.StatusOK, `{"apiVersion":"test.opgate.dev/v1","kind":"WidgetList","metadata":{"resourceVersion":"9"},"items":[]}`},
		{"a refusal", http.StatusForbidden, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"widgets is forbidden","reason":"Forbidden","code":403}`},
		{"not JSON", http.StatusOK, `<html>`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &stream{code: tt.code, body: tt.body}
			srv := httptest.NewServer(s)
			defer srv.Close()
			dyn, w := clients(t, srv, Attempts(1))
			opts := metav1.ListOptions{LabelSelector: "a=b", ResourceVersion: "0", Limit: 500}
			want, wantErr := dyn.Resource(widgets).Namespace("ns").List(context.Background(), opts)
			wantQuery := s.query
			got, err := w.List(context.Background(), widgets, "ns", opts)
			if s.query != wantQuery {
				t.Errorf("query %q, client-go's %q", s.query, wantQuery)
			}
			if (err == nil) != (wantErr == nil) || err != nil && (err.Error() != wantErr.Error() || apierrors.ReasonForError(err) != apierrors.ReasonForError(wantErr)) {
				t.Fatalf("error %v, client-go's %v", err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("list %#v\nclient-go's %#v", got, want)
			}
		})
	}
}

// TestListTriesALostConnectionAsOftenAsAsked: client-go's dynamic list
// retries a lost connection 10 times, 1 s apart; with Attempts(1) a list
// is one request, for a caller that retries on its own schedule.
func TestListTriesALostConnectionAsOftenAsAsked(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		(&stream{code: dropConnection}).ServeHTTP(w, r)
	}))
	defer srv.Close()
	_, w := clients(t, srv, Attempts(1))
	_, err := w.List(context.Background(), widgets, "ns", metav1.ListOptions{})
	if !utilnet.IsProbableEOF(err) {
		t.Errorf("List: %v, want the lost connection's error", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestCallsWithAttemptsLeaveRetryAfterToTheCaller: client-go would try a
// request answered with Retry-After again up to 10 times, waiting the
// delay uncapped; a caller with its own schedule gets the 429 at once.
func TestCallsWithAttemptsLeaveRetryAfterToTheCaller(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too many requests","reason":"TooManyRequests","code":429,"details":{"retryAfterSeconds":1}}`))
	}))
	defer srv.Close()
	_, w := clients(t, srv, Attempts(1))
	for name, call := range map[string]func() error{
		"list": func() error {
			_, err := w.List(context.Background(), widgets, "ns", metav1.ListOptions{})
			return err
		},
		"watch": func() error {
			_, err := w.Watch(context.Background(), widgets, "ns", metav1.ListOptions{})
			return err
		},
	} {
		requests.Store(0)
		if err := call(); !apierrors.IsTooManyRequests(err) || requests.Load() != 1 {
			t.Errorf("%s: %v after %d requests, want the 429 after 1", name, err, requests.Load())
		}
	}
}

func TestNamespaceThatIsNoPathSegmentIsRefused(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer srv.Close()
	_, w := clients(t, srv, Attempts(1))
	if _, err := w.List(context.Background(), widgets, "..", metav1.ListOptions{}); err == nil {
		t.Error(`List in namespace "..": no error`)
	}
	if _, err := w.Watch(context.Background(), widgets, "a/b", metav1.ListOptions{}); err == nil {
		t.Error(`Watch in namespace "a/b": no error`)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}
