package inspect

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/gateway/state"
)

func withVersion(rv string) func(*unstructured.Unstructured) {
	return func(o *unstructured.Unstructured) { o.SetResourceVersion(rv) }
}

func TestClassifierFollowsEachChangeOfAnObject(t *testing.T) {
	failing := &state.State{Progress: map[string]*state.Progress{"create": {Attempts: 1, Failed: true, Digest: "current"}}}
	steps := []struct {
		name string
		objs []*unstructured.Unstructured
	}{
		{"first look", []*unstructured.Unstructured{
			object("a", failing, false, withVersion("1")), object("b", &state.State{}, true, withVersion("1"))}},
		{"nothing changed", []*unstructured.Unstructured{
			object("a", failing, false, withVersion("1")), object("b", &state.State{}, true, withVersion("1"))}},
		{"a handled, b deleting", []*unstructured.Unstructured{
			object("a", &state.State{}, true, withVersion("2")),
			object("b", &state.State{}, true, func(o *unstructured.Unstructured) { deleting(o); o.SetResourceVersion("3") })}},
		{"a gone, b re-created under its name", []*unstructured.Unstructured{
			object("b", failing, false, func(o *unstructured.Unstructured) { o.SetUID("uid-b2"); o.SetResourceVersion("4") })}},
		{"no resourceVersion", []*unstructured.Unstructured{object("c", failing, false, nil)}},
	}
	var c Classifier
	op := testOperator()
	for _, s := range steps {
		want := Summarize(op, Readiness{Ready: true}, s.objs, now)
		if got := c.Summarize(op, Readiness{Ready: true}, s.objs, now); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: remembered summary %+v, want %+v", s.name, got, want)
		}
		// The lines a page lists are each object's own classification.
		got, lines := c.SummarizeObjects(op, Readiness{Ready: true}, s.objs, now)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: summary with lines %+v, want %+v", s.name, got, want)
		}
		var wantLines []Object
		for _, o := range s.objs {
			wantLines = append(wantLines, ClassifyObject(op, o, now))
		}
		if !reflect.DeepEqual(lines, wantLines) {
			t.Errorf("%s: lines %+v, want %+v", s.name, lines, wantLines)
		}
		if remembered := len(c.byOp[op.Name]); remembered > len(s.objs) {
			t.Errorf("%s: remembers %d objects, %d watched", s.name, remembered, len(s.objs))
		}
	}
	c.Forget(func(string) bool { return false })
	if len(c.byOp) != 0 {
		t.Errorf("after Forget it remembers %v", c.byOp)
	}
}

// converged is n handled objects and one failing, as after convergence.
func converged(n int) []*unstructured.Unstructured {
	objs := make([]*unstructured.Unstructured, n)
	for i := range objs {
		st := &state.State{}
		if i == 0 {
			st.Progress = map[string]*state.Progress{"resize": {Attempts: 2, Next: now.Add(time.Minute), Digest: "current"}}
		}
		objs[i] = object(fmt.Sprintf("m-%d", i), st, true, withVersion(fmt.Sprint(i+1)))
	}
	return objs
}

// BenchmarkSummarize is one /metrics scrape's classification of 10 000
// converged objects: decoded afresh, and remembered from the scrape before.
func BenchmarkSummarize(b *testing.B) {
	objs, op := converged(10000), testOperator()
	b.Run("afresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Summarize(op, Readiness{}, objs, now)
		}
	})
	b.Run("remembered", func(b *testing.B) {
		var c Classifier
		c.Summarize(op, Readiness{}, objs, now)
		b.ReportAllocs()
		for b.Loop() {
			c.Summarize(op, Readiness{}, objs, now)
		}
	})
}
