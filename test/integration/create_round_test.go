package integration

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

// Two create callbacks: create-deployment succeeds at size 1, register
// fails (temporarily) until the spec reaches its last size. The create
// round ends there, but create-deployment acted on size 1: the change from
// it must still reach the update callbacks whose when.fields match it
// (resize, with size 1 as old), or the Deployment keeps 1 replica for good.
// A change taken back before the round ends is no change: nothing owed.
func TestAChangeWhileASiblingCreateRetriesReachesTheUpdateCallbacks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int64 // the widget's spec.size, one after the other
		// resized: the old spec.size resize is called with, 0: not called.
		resized int64
	}{
		{name: "changed", sizes: []int64{1, 2}, resized: 1},
		{name: "taken back", sizes: []int64{1, 2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			last := tc.sizes[len(tc.sizes)-1]
			var final atomic.Bool // the last size is written (or about to be)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				switch req.Callback {
				case "create-deployment", "resize":
					return 200, map[string]any{"children": []any{deployment("example", sizeOf(req))}}
				case "register":
					if !final.Load() || sizeOf(req) != last {
						return 200, map[string]any{"error": map[string]any{"message": "registry unavailable"}}
					}
				}
				return 200, nil
			})
			startGateway(t, operatorFor(t, "createround", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(200 * time.Millisecond)
				s.Callbacks = []spec.Callback{
					{ID: "create-deployment", Events: []spec.Event{spec.EventCreate}},
					{ID: "register", Events: []spec.Event{spec.EventCreate}},
					{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
					{ID: "relabel", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"metadata.labels"}}},
				}
			}))
			createWidget(t, ns, "example", tc.sizes[0])
			for i, size := range tc.sizes[1:] {
				// register failed at the size before (create-deployment,
				// called first in that pass, succeeded at the first).
				before := tc.sizes[i]
				eventually(t, 10*time.Second, func() error { return calledAtSize(h, "register", before) })
				final.Store(i == len(tc.sizes)-2)
				updateWidget(t, ns, "example", setSize(size))
			}
			eventually(t, 10*time.Second, func() error { return deploymentReplicas(t, ns, "example", int32(last)) })
			if tc.resized != 0 {
				eventually(t, 10*time.Second, func() error { return called(h, "resize", 1) })
			}
			// Then a label change makes an update round whose relabel call
			// says every update round before it is over.
			eventually(t, 10*time.Second, func() error { return handledNow(t, ns, "example", "createround") })
			updateWidget(t, ns, "example", func(w *unstructured.Unstructured) { w.SetLabels(map[string]string{"tier": "gold"}) })
			eventually(t, 10*time.Second, func() error { return called(h, "relabel", 1) })

			if got := sizes(h, "create-deployment"); len(got) != 1 || got[0] != tc.sizes[0] {
				t.Errorf("create-deployment called with sizes %v, want once with %d", got, tc.sizes[0])
			}
			resize := h.calls("resize")
			switch {
			case tc.resized == 0 && len(resize) != 0:
				t.Errorf("resize called %d times for a change taken back, want none", len(resize))
			case tc.resized != 0 && len(resize) != 1:
				t.Errorf("resize called %d times, want once", len(resize))
			case tc.resized != 0:
				if err := resizedFrom(resize[0], tc.resized, last); err != nil {
					t.Error(err)
				}
			}
			if err := deploymentReplicas(t, ns, "example", int32(last)); err != nil {
				t.Error(err)
			}
			// Its old is the essence the size round (if any) ended at.
			relabel := h.calls("relabel")
			if len(relabel) != 1 || len(relabel[0].Diff) != 1 || relabel[0].Diff[0].Path == "spec.size" {
				t.Errorf("relabel calls %+v, want one whose diff is the label alone", relabel)
			}
		})
	}
}

// handledNow reports whether the widget's state records its essence now
// as handled, with no round open and no callback owed a change.
func handledNow(t *testing.T, ns, name, operator string) error {
	w, err := getWidget(t, ns, name)
	if err != nil {
		return err
	}
	raw := w.GetAnnotations()["opgate.dev/state."+operator]
	st, err := state.Decode(raw)
	if err != nil {
		return err
	}
	if st.Round != nil || len(st.Behind) != 0 || st.Handled != essence.Digest(essence.Of(w)) {
		return fmt.Errorf("state %s: the essence now is not handled yet", raw)
	}
	return nil
}

// actedOnRecorded reports whether the widget's state records the essence
// callback acted on in the open round.
func actedOnRecorded(t *testing.T, ns, name, operator, callback string) error {
	w, err := getWidget(t, ns, name)
	if err != nil {
		return err
	}
	raw := w.GetAnnotations()["opgate.dev/state."+operator]
	st, err := state.Decode(raw)
	if err != nil {
		return err
	}
	if st.Round == nil || state.SeenBy(st.Behind, callback) == nil {
		return fmt.Errorf("state %s: not yet recorded what %s acted on", raw, callback)
	}
	return nil
}

// calledAtSize reports whether callback was called with spec.size size.
func calledAtSize(h *handler, callback string, size int64) error {
	if got := sizes(h, callback); !containsSize(got, size) {
		return fmt.Errorf("%s called with sizes %v, not yet %d", callback, got, size)
	}
	return nil
}

func containsSize(sizes []int64, size int64) bool {
	for _, s := range sizes {
		if s == size {
			return true
		}
	}
	return false
}

// resizedFrom checks an update request carries old spec.size from and a
// diff of spec.size alone, to to.
func resizedFrom(req callbacks.Request, from, to int64) error {
	if req.Old == nil {
		return fmt.Errorf("resize called without old (oldUnavailable %v)", req.OldUnavailable)
	}
	if old, _, _ := unstructured.NestedInt64(req.Old.Object, "spec", "size"); old != from {
		return fmt.Errorf("resize called with old spec.size %d, want %d", old, from)
	}
	if len(req.Diff) != 1 || req.Diff[0].Path != "spec.size" || string(req.Diff[0].Old) != fmt.Sprint(from) || string(req.Diff[0].New) != fmt.Sprint(to) {
		return fmt.Errorf("resize called with diff %+v, want spec.size %d → %d", req.Diff, from, to)
	}
	if got := sizeOf(req); got != to {
		return fmt.Errorf("resize called at spec.size %d, want %d", got, to)
	}
	return nil
}

// Callbacks that handle create and update each act, during a create round
// the user changed the spec in, on the essence of their own create call;
// once the round ends, each is owed the change from that one, not from
// the first essence a sibling acted on. deploy creates at size 1, dns
// fails until the spec is 2 and creates at 2: deploy gets one update 1 →
// 2, dns none (its create carried 2). audit (create only) fails until the
// spec is back at the size it needs: with the change taken back to 1, dns,
// which acted on 2, gets an update 2 → 1, deploy none.
func TestAChangeDuringACreateRoundIsOwedFromTheEssenceEachCallbackActedOn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int64 // the widget's spec.size, one after the other
		// updates: per callback, the old → new spec.size of its update
		// calls, in order.
		updates map[string][][2]int64
		// restart: the gateway is stopped once the state records what
		// deploy acted on, and started again after the first change.
		restart bool
	}{
		{name: "changed", sizes: []int64{1, 2}, updates: map[string][][2]int64{"deploy": {{1, 2}}}},
		{name: "taken back", sizes: []int64{1, 2, 1}, updates: map[string][][2]int64{"dns": {{2, 1}}}},
		{name: "changed across a restart", sizes: []int64{1, 2}, updates: map[string][][2]int64{"deploy": {{1, 2}}}, restart: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			last := tc.sizes[len(tc.sizes)-1]
			var final atomic.Bool // the last size is written (or about to be)
			h := newHandler(t, func(req callbacks.Request) (int, any) {
				switch {
				case req.Event != "create":
				case req.Callback == "dns" && sizeOf(req) != 2,
					req.Callback == "audit" && (!final.Load() || sizeOf(req) != last):
					return 200, map[string]any{"error": map[string]any{"message": "registry unavailable"}}
				}
				return 200, nil
			})
			op := operatorFor(t, "createowed", ns, h.URL, func(s *spec.OperatorSpec) {
				s.Retry = fastRetry(200 * time.Millisecond)
				s.Callbacks = []spec.Callback{
					{ID: "deploy", Events: []spec.Event{spec.EventCreate, spec.EventUpdate}},
					{ID: "dns", Events: []spec.Event{spec.EventCreate, spec.EventUpdate}},
					{ID: "audit", Events: []spec.Event{spec.EventCreate}},
				}
			})
			stop := startGateway(t, op)
			createWidget(t, ns, "example", tc.sizes[0])
			for i, size := range tc.sizes[1:] {
				// audit failed at the size before (deploy and dns, called
				// before it in that pass, did what they could at it).
				before := tc.sizes[i]
				eventually(t, 10*time.Second, func() error { return calledAtSize(h, "audit", before) })
				final.Store(i == len(tc.sizes)-2)
				if tc.restart && i == 0 {
					eventually(t, 10*time.Second, func() error { return actedOnRecorded(t, ns, "example", "createowed", "deploy") })
					stop()
				}
				updateWidget(t, ns, "example", setSize(size))
				if tc.restart && i == 0 {
					startGateway(t, op)
				}
			}
			eventually(t, 10*time.Second, func() error { return handledNow(t, ns, "example", "createowed") })

			for _, id := range []string{"deploy", "dns"} {
				var got [][2]int64
				for _, r := range h.calls(id) {
					if r.Event != "update" {
						continue
					}
					if r.Old == nil {
						t.Fatalf("%s: update without old (oldUnavailable %v)", id, r.OldUnavailable)
					}
					old, _, _ := unstructured.NestedInt64(r.Old.Object, "spec", "size")
					got = append(got, [2]int64{old, sizeOf(r)})
				}
				if want := tc.updates[id]; !slices.Equal(got, want) {
					t.Errorf("%s: update calls (old → new spec.size) %v, want %v", id, got, want)
				}
			}
			if got := sizes(h, "deploy"); got[0] != tc.sizes[0] || len(got) != 1+len(tc.updates["deploy"]) {
				t.Errorf("deploy called with sizes %v: want create once at %d", got, tc.sizes[0])
			}
		})
	}
}

// An update callback the operator's next version adds while a create round
// is open hears of the change since a create callback acted:
// create-deployment creates the Deployment at size 1 while register keeps
// the round open, the user changes the size to 2, and the gateway is
// restarted with resize added. resize is called with 1 as old, and the
// Deployment gets 2 replicas.
func TestAnUpdateCallbackAddedDuringACreateRoundHearsOfTheChangeAcrossARestart(t *testing.T) {
	ns := newNamespace(t)
	var final atomic.Bool
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch req.Callback {
		case "create-deployment", "resize":
			return 200, map[string]any{"children": []any{deployment("example", sizeOf(req))}}
		case "register":
			if !final.Load() || sizeOf(req) != 2 {
				return 200, map[string]any{"error": map[string]any{"message": "registry unavailable"}}
			}
		}
		return 200, nil
	})
	v1 := operatorFor(t, "addedupdate", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Callbacks = []spec.Callback{
			{ID: "create-deployment", Events: []spec.Event{spec.EventCreate}},
			{ID: "register", Events: []spec.Event{spec.EventCreate}},
		}
	})
	v2 := operatorFor(t, "addedupdate", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Callbacks = []spec.Callback{
			{ID: "create-deployment", Events: []spec.Event{spec.EventCreate}},
			{ID: "register", Events: []spec.Event{spec.EventCreate}},
			{ID: "resize", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.size"}}},
		}
	})
	stop := startGateway(t, v1)
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return calledAtSize(h, "register", 1) })
	eventually(t, 10*time.Second, func() error {
		w, err := getWidget(t, ns, "example")
		if err != nil {
			return err
		}
		st, err := state.Decode(w.GetAnnotations()["opgate.dev/state.addedupdate"])
		if err != nil || st.Round == nil || !slices.Contains(st.Round.Done, "create-deployment") {
			return fmt.Errorf("create-deployment not recorded done yet: %v %+v", err, st)
		}
		return nil
	})
	stop()
	final.Store(true)
	updateWidget(t, ns, "example", setSize(2))
	startGateway(t, v2)
	eventually(t, 10*time.Second, func() error { return handledNow(t, ns, "example", "addedupdate") })
	eventually(t, 10*time.Second, func() error {
		if err := deploymentReplicas(t, ns, "example", 2); err != nil {
			return fmt.Errorf("the Deployment create-deployment made at size 1 not resized: %w (resize calls: %d)", err, len(h.calls("resize")))
		}
		return nil
	})
	calls := h.calls("resize")
	if len(calls) != 1 {
		t.Fatalf("resize called %d times, want once", len(calls))
	}
	if err := resizedFrom(calls[0], 1, 2); err != nil {
		t.Error(err)
	}
}

// A create round whose change was taken back ends recording the essence
// now as handled while dns, which acted on the change, is still owed it
// (b): the object is not reconciled until dns heard of the taking back. A
// client waiting for Reconciled=True at the object's generation must not
// go on while dns's owed update call is being made.
func TestReconciledIsNotTrueWhileACreateRoundStillOwesAnUpdate(t *testing.T) {
	ns := newNamespace(t)
	var final atomic.Bool
	var mu sync.Mutex
	var seenDuringUpdate []string
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		switch {
		case req.Event == "update" && req.Callback == "dns":
			w, err := getWidget(t, ns, "example")
			if err == nil {
				og, _, _ := unstructured.NestedInt64(w.Object, "status", "observedGeneration")
				conds, _, _ := unstructured.NestedSlice(w.Object, "status", "conditions")
				status := "none"
				for _, c := range conds {
					if m, _ := c.(map[string]any); m["type"] == "Reconciled" {
						status = fmt.Sprint(m["status"])
					}
				}
				mu.Lock()
				seenDuringUpdate = append(seenDuringUpdate, fmt.Sprintf("Reconciled=%s observedGeneration=%d generation=%d", status, og, w.GetGeneration()))
				mu.Unlock()
			}
		case req.Event != "create":
		case req.Callback == "dns" && sizeOf(req) != 2,
			req.Callback == "audit" && (!final.Load() || sizeOf(req) != 1):
			return 200, map[string]any{"error": map[string]any{"message": "registry unavailable"}}
		}
		return 200, nil
	})
	op := operatorFor(t, "createowed", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Retry = fastRetry(200 * time.Millisecond)
		s.Status = &spec.StatusSpec{Conditions: true}
		s.Callbacks = []spec.Callback{
			{ID: "deploy", Events: []spec.Event{spec.EventCreate, spec.EventUpdate}},
			{ID: "dns", Events: []spec.Event{spec.EventCreate, spec.EventUpdate}},
			{ID: "audit", Events: []spec.Event{spec.EventCreate}},
		}
	})
	startGateway(t, op)
	createWidget(t, ns, "example", 1)
	eventually(t, 10*time.Second, func() error { return calledAtSize(h, "audit", 1) })
	updateWidget(t, ns, "example", setSize(2))
	eventually(t, 10*time.Second, func() error { return calledAtSize(h, "audit", 2) })
	final.Store(true)
	updateWidget(t, ns, "example", setSize(1))
	eventually(t, 15*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seenDuringUpdate) == 0 {
			return fmt.Errorf("dns has had no update call")
		}
		return nil
	})
	eventually(t, 10*time.Second, func() error { return handledNow(t, ns, "example", "createowed") })
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seenDuringUpdate {
		t.Logf("while dns's owed update 2 -> 1 was being called: %s", s)
	}
	if len(seenDuringUpdate) == 0 {
		t.Fatal("dns got no update call")
	}
	for _, seen := range seenDuringUpdate {
		var og, gen int64
		var st string
		if _, err := fmt.Sscanf(seen, "Reconciled=%s observedGeneration=%d generation=%d", &st, &og, &gen); err != nil {
			t.Fatalf("%q: %v", seen, err)
		}
		if st == "True" && og == gen {
			t.Errorf("the object said Reconciled=True at its generation (%s) before dns heard of the change taken back", seen)
		}
	}
}
