package engine

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

func TestUnreachableTellsOutagesFromRefusals(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refusedByClientGo(t), true},
		{"connection cut mid-answer", errors.New("unexpected EOF"), true},
		{"503 while the API server starts", apierrors.NewServiceUnavailable("starting"), true},
		{"500", apierrors.NewInternalError(errors.New("etcd leader changed")), true},
		{"429 from priority and fairness", apierrors.NewTooManyRequests("busy", 1), true},
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
		wantCalls int
		wantErr   error
	}{
		{"outage then answer", []error{refused, refused, apierrors.NewServiceUnavailable("starting")}, 4, nil},
		{"refusal goes back at once", []error{forbidden}, 1, forbidden},
		{"refusal after an outage", []error{refused, forbidden}, 2, forbidden},
		{"answer at once", nil, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			var seen []error
			out, err := untilAnswered(context.Background(), backoff.NewConstantBackOff(time.Millisecond),
				func(err error) { seen = append(seen, err) },
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
			if len(seen) != calls || seen[len(seen)-1] != err {
				t.Errorf("health saw %v, want every outcome ending in %v", seen, err)
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
		_, err := untilAnswered(ctx, backoff.NewConstantBackOff(time.Millisecond), func(error) {},
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
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retry went on after the informer stopped")
	}
}
