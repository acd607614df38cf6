package invariant

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
)

func widget(uid string, size int64, status map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w-" + uid, "namespace": "ns", "uid": uid},
		"spec":     map[string]any{"size": size},
	}}
	if status != nil {
		u.Object["status"] = status
	}
	return u
}

func withMeta(u *unstructured.Unstructured, finalizers []string, annotations map[string]string) *unstructured.Unstructured {
	u.SetFinalizers(finalizers)
	u.SetAnnotations(annotations)
	return u
}

func child(name string, owner string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "ns", "labels": map[string]any{OperatorLabel: "op", OwnerUIDLabel: owner}},
	}}
}

func change(kind ChangeKind, uid string, size int64) Change {
	c := Change{UID: types.UID(uid), Namespace: "ns", Name: "w-" + uid, Kind: kind, At: time.Now()}
	if kind != Deleted && kind != Left {
		c.Essence = EssenceOf(widget(uid, size, nil))
	}
	return c
}

// call builds a recorded call; opts tweak it.
func call(ev callbacks.Event, cb, uid string, size int64, out Outcome, opts ...func(*Call)) Call {
	c := Call{ObjectUID: types.UID(uid), Namespace: "ns", Name: "w-" + uid, Event: ev, Callback: cb,
		Essence: EssenceOf(widget(uid, size, nil)), Outcome: out}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func withStatus(s map[string]any) func(*Call) { return func(c *Call) { c.Status = s } }

func withChildren(names ...string) func(*Call) {
	return func(c *Call) {
		c.HasChildren = true
		for _, n := range names {
			c.Children = append(c.Children, ChildRef{APIVersion: "v1", Kind: "ConfigMap", Name: n})
		}
	}
}

func seq(calls ...Call) []Call {
	for i := range calls {
		calls[i].Seq = i + 1
	}
	return calls
}

var exp = Expect{Operator: "op", Create: []string{"make"}, Update: []string{"resize"}, Delete: []string{"clean"}}

func TestCheckCounts(t *testing.T) {
	tests := []struct {
		name    string
		changes []Change
		calls   []Call
		snap    Snapshot
		want    Report // only the counts are compared
	}{
		{
			name:    "create and update delivered",
			changes: []Change{change(Created, "a", 1), change(Updated, "a", 2)},
			calls:   seq(call("create", "make", "a", 1, Succeeded), call("update", "resize", "a", 2, Succeeded)),
			snap:    Snapshot{Parents: []*unstructured.Unstructured{widget("a", 2, nil)}},
			want:    Report{Objects: 1, Changes: 2, Delivered: 2},
		},
		{
			name:    "an update whose call failed and never succeeded is lost",
			changes: []Change{change(Created, "a", 1), change(Updated, "a", 2)},
			calls:   seq(call("create", "make", "a", 1, Succeeded), call("update", "resize", "a", 2, Failed)),
			snap:    Snapshot{Parents: []*unstructured.Unstructured{widget("a", 2, nil)}},
			want:    Report{Objects: 1, Changes: 2, Delivered: 1, Lost: 1},
		},
		{
			name:    "an update overtaken by a later delivered one is not lost",
			changes: []Change{change(Created, "a", 1), change(Updated, "a", 2), change(Updated, "a", 3)},
			calls:   seq(call("create", "make", "a", 1, Succeeded), call("update", "resize", "a", 3, Succeeded)),
			snap:    Snapshot{Parents: []*unstructured.Unstructured{widget("a", 3, nil)}},
			want:    Report{Objects: 1, Changes: 3, Delivered: 3},
		},
		{
			name:    "an update folded into a create that saw it is not lost",
			changes: []Change{change(Created, "a", 1), change(Updated, "a", 2)},
			calls:   seq(call("create", "make", "a", 2, Succeeded)),
			snap:    Snapshot{Parents: []*unstructured.Unstructured{widget("a", 2, nil)}},
			want:    Report{Objects: 1, Changes: 2, Delivered: 2},
		},
		{
			name:    "an abandoned call does not deliver",
			changes: []Change{change(Created, "a", 1)},
			calls:   seq(call("create", "make", "a", 1, Abandoned)),
			snap:    Snapshot{Parents: []*unstructured.Unstructured{widget("a", 1, nil)}},
			want:    Report{Objects: 1, Changes: 1, Lost: 1},
		},
		{
			name:    "a repeat after success is a duplicate, a retry after failure is not",
			changes: []Change{change(Created, "a", 1)},
			calls: seq(call("create", "make", "a", 1, Failed), call("create", "make", "a", 1, Succeeded),
				call("create", "make", "a", 1, Succeeded), call("resume", "make", "a", 1, Succeeded)),
			snap: Snapshot{Parents: []*unstructured.Unstructured{widget("a", 1, nil)}},
			want: Report{Objects: 1, Changes: 1, Delivered: 1, Duplicates: 1},
		},
		{
			name:    "a deleted object still present is stuck, its delete lost",
			changes: []Change{change(Created, "a", 1), change(Deleted, "a", 0)},
			calls:   seq(call("create", "make", "a", 1, Succeeded), call("delete", "clean", "a", 1, Requeued)),
			snap:    Snapshot{Parents: []*unstructured.Unstructured{widget("a", 1, nil)}},
			want:    Report{Objects: 1, Changes: 1, Lost: 1, Stuck: 1},
		},
		{
			name:    "a deleted object nobody saw is unseen, not lost",
			changes: []Change{change(Created, "a", 1), change(Deleted, "a", 0)},
			want:    Report{Objects: 1, Changes: 1, Unseen: 1},
		},
		{
			name:    "status must hold the last answer's patch",
			changes: []Change{change(Created, "a", 1)},
			calls: seq(call("create", "make", "a", 1, Succeeded, withStatus(map[string]any{"size": 1, "phase": "New"})),
				call("sync", "sync", "a", 1, Failed, withStatus(map[string]any{"phase": "Ready", "gone": nil}))),
			snap: Snapshot{Parents: []*unstructured.Unstructured{widget("a", 1, map[string]any{"size": int64(1), "phase": "New"})}},
			want: Report{Objects: 1, Changes: 1, Delivered: 1, Unconverged: 1},
		},
		{
			name:    "children: missing, pruned by sync, and left by a deleted parent",
			changes: []Change{change(Created, "a", 1), change(Created, "b", 1), change(Deleted, "b", 0)},
			calls: seq(call("create", "make", "a", 1, Succeeded), call("sync", "sync", "a", 1, Succeeded, withChildren("a-1", "a-2")),
				call("create", "make", "b", 1, Succeeded), call("delete", "clean", "b", 1, Succeeded)),
			snap: Snapshot{
				Parents:  []*unstructured.Unstructured{widget("a", 1, nil)},
				Children: []*unstructured.Unstructured{child("a-1", "a"), child("a-old", "a"), child("b-1", "b"), child("x-1", "x")},
			},
			want: Report{Objects: 2, Changes: 2, Delivered: 2, Orphans: 3, Missing: 1},
		},
		{
			name:    "an object that left is owed nothing, a change pending when it left included",
			changes: []Change{change(Created, "a", 1), change(Updated, "a", 2), change(Left, "a", 0), change(Updated, "a", 3)},
			calls:   seq(call("create", "make", "a", 1, Succeeded), call("update", "resize", "a", 2, Abandoned)),
			snap:    Snapshot{Parents: []*unstructured.Unstructured{widget("a", 3, nil)}},
			want:    Report{Objects: 1},
		},
		{
			name:    "a call carrying a change made after the object left is a stray",
			changes: []Change{change(Created, "a", 1), change(Left, "a", 0), change(Updated, "a", 2), change(Deleted, "a", 0)},
			calls: seq(call("create", "make", "a", 1, Succeeded), call("update", "resize", "a", 2, Succeeded),
				call("sync", "sync", "a", 2, Failed), call("delete", "clean", "a", 2, Succeeded)),
			want: Report{Objects: 1, Strays: 3},
		},
		{
			name:    "an object that left but still holds the finalizer or state is stuck",
			changes: []Change{change(Created, "a", 1), change(Left, "a", 0), change(Created, "b", 1), change(Left, "b", 0)},
			calls:   seq(call("create", "make", "a", 1, Succeeded)),
			snap: Snapshot{Parents: []*unstructured.Unstructured{
				withMeta(widget("a", 1, nil), []string{"opgate.dev/op"}, nil),
				withMeta(widget("b", 1, nil), nil, map[string]string{"opgate.dev/state.op": "{}"}),
			}},
			want: Report{Objects: 2, Stuck: 2},
		},
		{
			name:    "an object deleted before it left needs no delete callback, but must be gone",
			changes: []Change{change(Created, "a", 1), change(Deleted, "a", 0), change(Left, "a", 0), change(Created, "b", 1), change(Deleted, "b", 0), change(Left, "b", 0)},
			calls:   seq(call("create", "make", "a", 1, Succeeded), call("delete", "clean", "a", 1, Abandoned), call("create", "make", "b", 1, Succeeded)),
			snap:    Snapshot{Parents: []*unstructured.Unstructured{widget("b", 1, nil)}},
			want:    Report{Objects: 2, Stuck: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(exp, tt.changes, tt.calls, tt.snap)
			counts := got
			counts.PerObject, counts.UnknownOrphans = nil, nil
			if counts.Summary() != tt.want.Summary() {
				t.Errorf("got  %s\nwant %s\n%s", counts.Summary(), tt.want.Summary(), got.Table(true))
			}
			if got.Clean() != tt.want.Clean() {
				t.Errorf("Clean() = %v, want %v", got.Clean(), tt.want.Clean())
			}
		})
	}
}

func TestTableNamesEachFailingObjectAndWhy(t *testing.T) {
	rep := Check(exp,
		[]Change{change(Created, "a", 1), change(Updated, "a", 2), change(Created, "b", 1)},
		seq(call("create", "make", "a", 1, Succeeded), call("create", "make", "b", 1, Succeeded)),
		Snapshot{Parents: []*unstructured.Unstructured{widget("a", 2, nil), widget("b", 1, nil)}})
	table := rep.Table(false)
	for _, want := range []string{"lost=1", "ns/w-a", `never reached update callback "resize"`} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "ns/w-b") {
		t.Errorf("table lists the healthy object w-b:\n%s", table)
	}
}
