package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/gateway/spec"
)

// createNamespaceNamed creates the namespace name for the test.
func createNamespaceNamed(t *testing.T, name string) {
	t.Helper()
	_, err := kube(t).CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// untouched is nil while the widget holds the operator's finalizer, its
// handled state, and create was called once for it.
func untouched(t *testing.T, h *handler, ns, name, operator string) error {
	if err := heldBy(t, ns, name, operator); err != nil {
		return err
	}
	if err := stateHandled(t, ns, name, operator); err != nil {
		return err
	}
	if n := len(callsFor(h, "create", name)); n != 1 {
		return fmt.Errorf("create called %d times for %s/%s, want 1", n, ns, name)
	}
	return nil
}

// watchingWithCleanup sets the operator's namespaces and its create and
// delete callbacks (the delete callback makes it hold a finalizer).
func watchingWithCleanup(namespaces ...string) func(*spec.OperatorSpec) {
	return func(s *spec.OperatorSpec) {
		s.Watch.Namespaces = namespaces
		s.Callbacks = []spec.Callback{
			{ID: "create", Events: []spec.Event{spec.EventCreate}},
			{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
		}
	}
}

func callsFor(h *handler, callback, name string) []string {
	var out []string
	for _, r := range h.calls(callback) {
		if r.Object != nil && r.Object.GetName() == name {
			out = append(out, r.Object.GetNamespace())
		}
	}
	return out
}

// Two file-mode gateways each run an operator of the same name on their
// own namespaces (one install per team). Restarting one of them narrowed,
// or without the operator, lets go of what it no longer watches and never
// of the other's objects.
func TestStartupSweepLeavesAnotherGatewaysOperatorOfTheSameName(t *testing.T) {
	for _, tc := range []struct {
		name string
		// restarted is what the first gateway runs after its restart.
		restarted func(t *testing.T, mine, url string) *spec.WebhookOperator
		// mineKept: the restarted gateway still holds its object in mine.
		mineKept bool
	}{
		{"narrowed", func(t *testing.T, mine, url string) *spec.WebhookOperator {
			return operatorFor(t, "memcached", mine, url, watchingWithCleanup(mine))
		}, true},
		{"dropped", func(t *testing.T, mine, url string) *spec.WebhookOperator {
			return operatorFor(t, "redis", mine, url, watchingWithCleanup(mine))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine, theirs := newNamespace(t), newNamespace(t)
			// In a list of every namespace, the dropped namespace comes
			// after theirs: once its object is released, a sweep of every
			// namespace has passed theirs.
			dropped := theirs + "z"
			createNamespaceNamed(t, dropped)
			hMine, hTheirs := newHandler(t, ok(nil)), newHandler(t, ok(nil))
			recMine := types.NamespacedName{Namespace: mine, Name: "opgate-gateway"}
			recTheirs := types.NamespacedName{Namespace: theirs, Name: "opgate-gateway"}
			stop := startRecordingGateway(t, recMine, operatorFor(t, "memcached", mine, hMine.URL, watchingWithCleanup(mine, dropped)))
			startRecordingGateway(t, recTheirs, operatorFor(t, "memcached", theirs, hTheirs.URL, watchingWithCleanup(theirs)))
			createWidget(t, mine, "mine", 1)
			createWidget(t, dropped, "dropped", 1)
			createWidget(t, theirs, "theirs", 1)
			for _, at := range [][2]string{{mine, "mine"}, {dropped, "dropped"}, {theirs, "theirs"}} {
				eventually(t, 30*time.Second, func() error { return heldBy(t, at[0], at[1], "memcached") })
				eventually(t, 30*time.Second, func() error { return stateHandled(t, at[0], at[1], "memcached") })
			}
			stop()

			startRecordingGateway(t, recMine, tc.restarted(t, mine, hMine.URL))
			eventually(t, 30*time.Second, func() error { return releasedBy(t, dropped, "dropped", "memcached") })
			// Nothing to wait for when the other gateway's object is left
			// alone: watch it long enough for its gateway to have reacted
			// to a release.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if err := untouched(t, hTheirs, theirs, "theirs", "memcached"); err != nil {
					t.Fatalf("the other gateway's object was let go: %v (create calls in %v)", err, callsFor(hTheirs, "create", "theirs"))
				}
				time.Sleep(200 * time.Millisecond)
			}
			want := "" // the dropped operator's entry goes once released
			if tc.mineKept {
				if err := heldBy(t, mine, "mine", "memcached"); err != nil {
					t.Errorf("an object still selected lost its finalizer: %v", err)
				}
				want = "Widget.test.opgate.dev;" + mine
			} else {
				eventually(t, 30*time.Second, func() error { return releasedBy(t, mine, "mine", "memcached") })
			}
			// After the sweep, the record keeps the namespaces watched now.
			eventually(t, 30*time.Second, func() error { return recordedEntry(t, recMine, "memcached", want) })
		})
	}
}

// recordedEntry is nil once the operator record holds want for operator
// ("": no entry).
func recordedEntry(t *testing.T, record types.NamespacedName, operator, want string) error {
	cm, err := kube(t).CoreV1().ConfigMaps(record.Namespace).Get(context.Background(), record.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if got := cm.Data[operator]; got != want {
		return fmt.Errorf("record %s holds %q for %s, want %q", record, got, operator, want)
	}
	return nil
}

// A record written before namespaces were recorded holds kinds alone: the
// first start sweeps every namespace, so what the operator dropped at the
// same time is still let go, and then records the namespaces it watches.
func TestStartupSweepWithRecordOfKindsAloneSweepsEveryNamespaceOnce(t *testing.T) {
	kept, dropped := newNamespace(t), newNamespace(t)
	h := newHandler(t, ok(nil))
	record := types.NamespacedName{Namespace: kept, Name: "opgate-gateway"}
	stop := startRecordingGateway(t, record, operatorFor(t, "legacy", kept, h.URL, watchingWithCleanup(kept, dropped)))
	createWidget(t, dropped, "outside", 1)
	eventually(t, 30*time.Second, func() error { return heldBy(t, dropped, "outside", "legacy") })
	stop()
	// Rewrite the entry as an older gateway wrote it.
	cm, err := kube(t).CoreV1().ConfigMaps(kept).Get(context.Background(), record.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("read the record: %v", err)
	}
	cm.Data["legacy"] = "Widget.test.opgate.dev"
	if _, err := kube(t).CoreV1().ConfigMaps(kept).Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("write the record: %v", err)
	}

	startRecordingGateway(t, record, operatorFor(t, "legacy", kept, h.URL, watchingWithCleanup(kept)))
	eventually(t, 30*time.Second, func() error { return releasedBy(t, dropped, "outside", "legacy") })
	eventually(t, 30*time.Second, func() error { return recordedEntry(t, record, "legacy", "Widget.test.opgate.dev;"+kept) })
}
