package inspect

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/gateway/decide"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/state"
)

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func testOperator() *spec.WebhookOperator {
	return &spec.WebhookOperator{
		ObjectMeta: metav1.ObjectMeta{Name: "memcached"},
		Spec: spec.OperatorSpec{
			Watch: spec.WatchSpec{APIVersion: "cache.example.com/v1alpha1", Kind: "Memcached", Namespaces: []string{"shop", "demo"}},
			Callbacks: []spec.Callback{
				{ID: "create", Events: []spec.Event{spec.EventCreate}},
				{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
				{ID: "cleanup", Events: []spec.Event{spec.EventDelete}},
				{ID: "backup", Events: []spec.Event{spec.EventTimer}, Interval: &spec.Duration{Duration: 30 * time.Second}},
			},
		},
	}
}

// object builds a Memcached with the state st (nil: none); handled
// records its own essence as handled.
func object(name string, st *state.State, handled bool, edit func(*unstructured.Unstructured)) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
		"metadata": map[string]any{"name": name, "namespace": "shop", "uid": "uid-" + name, "generation": int64(2)},
		"spec":     map[string]any{"size": int64(3)},
	}}
	if edit != nil {
		edit(obj)
	}
	if st == nil {
		return obj
	}
	if handled {
		if err := st.SetHandled(essence.Of(obj), state.DefaultEssenceCap); err != nil {
			panic(err)
		}
	}
	for _, first := range st.Progress {
		for _, p := range first.Records() {
			if p.Digest == "current" {
				p.Digest = essence.Digest(essence.Of(obj))
			}
		}
	}
	st.UID = string(obj.GetUID())
	v, err := st.Encode()
	if err != nil {
		panic(err)
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann["opgate.dev/state.memcached"] = v
	obj.SetAnnotations(ann)
	return obj
}

func deleting(obj *unstructured.Unstructured) {
	ts := metav1.NewTime(now.Add(-time.Minute))
	obj.SetDeletionTimestamp(&ts)
	obj.SetFinalizers([]string{"opgate.dev/memcached"})
}

func TestClassifyObjectReadsTheStateAsTheEngineDoes(t *testing.T) {
	later, earlier := now.Add(5*time.Minute), now.Add(-time.Second)
	cases := []struct {
		name      string
		obj       *unstructured.Unstructured
		want      State
		callback  string
		class     string
		nextRetry bool
	}{
		{name: "never handled", obj: object("a", nil, false, nil), want: Pending},
		{name: "handled, nothing open", obj: object("a", &state.State{}, true, nil), want: Settled},
		{name: "handled an older essence", obj: object("a", &state.State{Handled: "old"}, false, nil), want: Pending},
		{name: "open round", obj: object("a", &state.State{Round: &state.Round{Event: "update"}}, true, nil), want: Pending},
		// A create round ended at the essence now, or a change taken back:
		// the update round owing it the essence now comes next pass.
		{name: "handled, a callback still owed the essence now", obj: object("a", &state.State{Behind: []*state.Seen{{IDs: []string{"resize"}, Digest: "older"}}}, true, nil), want: Pending},
		{name: "waits for its retry", obj: object("a", &state.State{Round: &state.Round{Event: "create"}, Progress: map[string]*state.Progress{
			"create": {Attempts: 3, First: now.Add(-time.Hour), Next: later, Digest: "current", Message: "boom", Reason: "HandlerError"}}}, false, nil),
			want: BackingOff, callback: "create", class: "temporary", nextRetry: true},
		{name: "retry due", obj: object("a", &state.State{Progress: map[string]*state.Progress{
			"create": {Attempts: 1, Next: earlier, Digest: "current"}}}, false, nil),
			want: Failing, callback: "create", class: "temporary"},
		{name: "essence changed since the failure ends the wait", obj: object("a", &state.State{Progress: map[string]*state.Progress{
			"create": {Attempts: 1, Next: later, Digest: "older"}}}, false, nil),
			want: Failing, callback: "create", class: "temporary"},
		{name: "failed permanently at this essence", obj: object("a", &state.State{Progress: map[string]*state.Progress{
			"create": {Attempts: 1, Failed: true, Digest: "current"}}}, false, nil),
			want: PermanentlyFailed, callback: "create", class: "permanent"},
		{name: "a timer's tick failed for good: it fires again, failing till one succeeds", obj: object("a", &state.State{Progress: map[string]*state.Progress{
			"backup": {Event: "timer", Attempts: 2, Failed: true, Digest: "current"}}}, true, nil),
			want: Failing, callback: "backup", class: "permanent"},
		{name: "the most serious failure wins", obj: object("a", &state.State{Progress: map[string]*state.Progress{
			"backup": {Attempts: 2, Next: later, Digest: "current"},
			"resize": {Attempts: 1, Failed: true, Digest: "current"}}}, true, nil),
			want: PermanentlyFailed, callback: "resize", class: "permanent"},
		{name: "deleting with a failing delete callback", obj: object("a", &state.State{Round: &state.Round{Event: "delete"}, Progress: map[string]*state.Progress{
			"cleanup": {Attempts: 4, Next: later, Digest: "current"}}}, true, deleting),
			want: Deleting, callback: "cleanup", class: "temporary", nextRetry: true},
		{name: "deleting, finalizer held", obj: object("a", &state.State{}, true, deleting), want: Deleting},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ClassifyObject(testOperator(), tc.obj, now)
			if got.State != tc.want {
				t.Fatalf("state = %s, want %s", got.State, tc.want)
			}
			if tc.callback == "" {
				if got.Failure != nil {
					t.Fatalf("failure = %+v, want none", got.Failure)
				}
				return
			}
			if got.Failure == nil || got.Failure.Callback != tc.callback || got.Failure.Class != tc.class {
				t.Fatalf("failure = %+v, want callback %s class %s", got.Failure, tc.callback, tc.class)
			}
			if (got.Failure.NextRetry != nil) != tc.nextRetry {
				t.Fatalf("next retry = %v, want set: %v", got.Failure.NextRetry, tc.nextRetry)
			}
		})
	}
}

// A callback keeps a record per event whose call failed: the most serious
// one is reported, with its event; a call that is due waits while another
// event's backoff holds the callback back, as decide has it.
func TestClassifyObjectReadsEachEventsRecord(t *testing.T) {
	later, earlier := now.Add(5*time.Minute), now.Add(-time.Second)
	waiting := func(event string, next time.Time) *state.Progress {
		return &state.Progress{Event: event, Attempts: 2, First: now.Add(-time.Minute), Next: next, Digest: "current"}
	}
	failed := func(event string) *state.Progress {
		return &state.Progress{Event: event, Attempts: 4, First: now.Add(-time.Minute), Failed: true, Digest: "current"}
	}
	with := func(first *state.Progress, others ...*state.Progress) *state.State {
		first.Others = others
		return &state.State{Progress: map[string]*state.Progress{"resize": first}}
	}
	for _, tc := range []struct {
		name      string
		st        *state.State
		want      State
		wantName  string
		nextRetry *time.Time
	}{
		{"a due update held by the sync's backoff", with(waiting("update", earlier), waiting("sync", later)), BackingOff, "resize (update)", &later},
		{"the update's permanent failure over the sync's backoff", with(waiting("sync", later), failed("update")), PermanentlyFailed, "resize (update)", nil},
		{"the sync's permanent failure over the update's retry", with(waiting("update", earlier), failed("sync")), PermanentlyFailed, "resize (sync)", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClassifyObject(testOperator(), object("a", tc.st, true, nil), now)
			if got.State != tc.want || got.Failure == nil || got.Failure.Name() != tc.wantName {
				t.Fatalf("state %s, failure %+v; want %s of %s", got.State, got.Failure, tc.want, tc.wantName)
			}
			if f := got.Failure; (f.NextRetry == nil) != (tc.nextRetry == nil) || tc.nextRetry != nil && !f.NextRetry.Equal(*tc.nextRetry) {
				t.Errorf("next retry = %v, want %v", f.NextRetry, tc.nextRetry)
			}
		})
	}
}

func TestClassifyObjectReportsAnUnreadableState(t *testing.T) {
	obj := object("a", nil, false, func(o *unstructured.Unstructured) {
		o.SetAnnotations(map[string]string{"opgate.dev/state.memcached": "{not json"})
	})
	got := ClassifyObject(testOperator(), obj, now)
	if got.StateError == "" || got.State != Pending {
		t.Fatalf("got %+v, want pending with a state error", got)
	}
}

func TestSummarizeCountsAndOrdersTheObjectsTheOperatorWatches(t *testing.T) {
	later := now.Add(time.Minute)
	objs := []*unstructured.Unstructured{
		object("settled", &state.State{}, true, nil),
		object("backing", &state.State{Progress: map[string]*state.Progress{"create": {Attempts: 2, Next: later, Digest: "current"}}}, false, nil),
		object("broken", &state.State{Progress: map[string]*state.Progress{"create": {Attempts: 1, Failed: true, Digest: "current"}}}, false, nil),
		object("going", &state.State{}, true, deleting),
		object("elsewhere", &state.State{Progress: map[string]*state.Progress{"create": {Attempts: 1, Failed: true, Digest: "current"}}}, false,
			func(o *unstructured.Unstructured) { o.SetNamespace("other") }),
	}
	ready := ReadinessOf(spec.OperatorStatus{Conditions: []metav1.Condition{{Type: "Ready", Status: "True", Reason: "Running"}}})
	got := Summarize(testOperator(), ready, objs, now)
	if !got.Ready.Ready || got.Objects != 4 || got.Failing != 2 || got.WaitingOnFinalizer != 1 {
		t.Fatalf("got %+v, want ready, 4 objects, 2 failing, 1 waiting on the finalizer", got)
	}
	var names []string
	for _, o := range got.Unsettled {
		names = append(names, o.Name)
	}
	if want := []string{"broken", "backing", "going"}; !equal(names, want) {
		t.Fatalf("unsettled = %v, want %v", names, want)
	}
	if got.States[Settled] != 1 || got.States[Failing] != 0 {
		t.Fatalf("states = %v", got.States)
	}
}

func TestReadinessOfAnOperatorNoGatewayReportedOn(t *testing.T) {
	if r := ReadinessOf(spec.OperatorStatus{}); r.Ready || r.Reason != "Unknown" {
		t.Fatalf("got %+v", r)
	}
}

func TestDescribeShowsRoundCallbacksEssenceFinalizerAndRequest(t *testing.T) {
	handledAt := now.Add(-90 * time.Second)
	st := &state.State{HandledAt: &handledAt, Requested: state.RequestDigest("2026-11-30T11:00:00Z"),
		Round:    &state.Round{Event: "delete"},
		Progress: map[string]*state.Progress{"cleanup": {Attempts: 2, Next: now.Add(time.Minute), Digest: "current", Reason: "HandlerError", Message: "boom"}}}
	obj := object("a", st, true, func(o *unstructured.Unstructured) {
		deleting(o)
		o.SetAnnotations(map[string]string{ReconcileRequestAnnotation: "2026-11-30T11:59:00Z"})
	})
	tick := now.Add(10 * time.Second)
	d := Describe(testOperator(), obj, &decide.Memory{TimerNext: map[string]time.Time{"backup": tick}}, now)
	if d.State != Deleting || d.Failure == nil || d.Failure.Reason != "HandlerError" {
		t.Fatalf("object = %+v", d.Object)
	}
	if d.Essence.Handled == "" || d.Essence.Handled != d.Essence.Current || d.Essence.StoredBytes == 0 || d.Essence.Age != "1m30s" {
		t.Fatalf("essence = %+v", d.Essence)
	}
	if d.Round == nil || d.Round.Event != "delete" || !equal(d.Round.Waiting, []string{"cleanup"}) {
		t.Fatalf("round = %+v", d.Round)
	}
	byID := map[string]Callback{}
	for _, c := range d.Callbacks {
		byID[c.ID] = c
	}
	if byID["cleanup"].State != string(BackingOff) || byID["create"].State != "idle" ||
		byID["backup"].NextFire == nil || !byID["backup"].NextFire.Equal(tick) || byID["backup"].Interval != "30s" {
		t.Fatalf("callbacks = %+v", d.Callbacks)
	}
	if !d.Finalizer.Held || d.Reconcile.Requested != "2026-11-30T11:59:00Z" || d.Reconcile.Handled || d.DeletingSince == nil {
		t.Fatalf("finalizer %+v, reconcile %+v", d.Finalizer, d.Reconcile)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The state keeps a digest of the request value; what is shown is the
// annotation's value, cut when long, and whether it was acted on.
func TestDescribeShowsTheReconcileRequestAndWhetherItWasHandled(t *testing.T) {
	long := strings.Repeat("y", 150_000)
	for _, tc := range []struct {
		name, value, stored string
		want                Reconcile
	}{
		{"none", "", "", Reconcile{}},
		{"to come", "2026-11-30T12:00:00Z", state.RequestDigest("2026-11-30T11:00:00Z"), Reconcile{Requested: "2026-11-30T12:00:00Z"}},
		{"handled", "2026-11-30T12:00:00Z", state.RequestDigest("2026-11-30T12:00:00Z"), Reconcile{Requested: "2026-11-30T12:00:00Z", Handled: true}},
		{"handled before digests were kept", "2026-11-30T12:00:00Z", "2026-11-30T12:00:00Z", Reconcile{Requested: "2026-11-30T12:00:00Z", Handled: true}},
		{"long value cut", long, state.RequestDigest(long), Reconcile{Requested: strings.Repeat("y", requestShown) + "…", Handled: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := object("a", &state.State{Handled: "x", Requested: tc.stored}, false, func(o *unstructured.Unstructured) {
				if tc.value != "" {
					o.SetAnnotations(map[string]string{ReconcileRequestAnnotation: tc.value})
				}
			})
			if got := Describe(testOperator(), obj, nil, now).Reconcile; got != tc.want {
				t.Fatalf("reconcile = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The round shown waits for the callbacks the gateway calls in it, not for
// every callback of its event: in the round of a change taken back, only
// those that acted on the change are called (and owed the essence now,
// with the one they acted on as old); the others are idle.
func TestDescribeShowsWhomARoundCallsAndWhatItOwesThem(t *testing.T) {
	op := testOperator()
	op.Spec.Callbacks = []spec.Callback{
		{ID: "create", Events: []spec.Event{spec.EventCreate}},
		{ID: "resize", Events: []spec.Event{spec.EventUpdate}},
		{ID: "audit", Events: []spec.Event{spec.EventUpdate}},
		{ID: "scale", Events: []spec.Event{spec.EventUpdate}, When: &spec.When{Fields: []string{"spec.replicas"}}},
	}
	sized := func(size int64) func(*unstructured.Unstructured) {
		return func(o *unstructured.Unstructured) { _ = unstructured.SetNestedField(o.Object, size, "spec", "size") }
	}
	digestAt := func(size int64) string { return essence.Digest(essence.Of(object("a", nil, false, sized(size)))) }
	tests := []struct {
		name        string
		handledSize int64 // the object is at size 3
		round       *state.Round
		behind      []*state.Seen
		wantWaiting []string
		wantOwed    []Owed
		wantStates  map[string]string
	}{
		{
			name:        "a change taken back: only the callback that acted on it",
			handledSize: 3,
			round:       &state.Round{Event: "update", Digest: digestAt(3)},
			behind:      []*state.Seen{{IDs: []string{"resize"}, Digest: digestAt(5)}},
			wantWaiting: []string{"resize"},
			wantOwed:    []Owed{{Callback: "resize", ActedOn: digestAt(5)}},
			wantStates:  map[string]string{"resize": "waiting", "audit": "idle", "scale": "idle"},
		},
		{
			name:        "a change: the callbacks it concerns, not done yet",
			handledSize: 1,
			round:       &state.Round{Event: "update", Digest: digestAt(3), Done: []string{"audit"}},
			wantWaiting: []string{"resize"},
			wantStates:  map[string]string{"resize": "waiting", "audit": "done", "scale": "idle"},
		},
		{
			name:        "a change taken back, its callback called already while another is owed it",
			handledSize: 3,
			round:       &state.Round{Event: "update", Digest: digestAt(3), Done: []string{"resize"}},
			behind:      []*state.Seen{{IDs: []string{"resize", "audit"}, Digest: digestAt(5)}},
			wantWaiting: []string{"audit"},
			wantOwed:    []Owed{{Callback: "audit", ActedOn: digestAt(5)}},
			wantStates:  map[string]string{"resize": "done", "audit": "waiting", "scale": "idle"},
		},
		{
			name:        "a change since the round began: it starts over, owing the done ones the essence now",
			handledSize: 1,
			round:       &state.Round{Event: "update", Digest: digestAt(5), Done: []string{"resize"}},
			wantWaiting: []string{"resize", "audit"},
			wantOwed:    []Owed{{Callback: "resize", ActedOn: digestAt(5)}},
			wantStates:  map[string]string{"resize": "waiting", "audit": "waiting", "scale": "idle"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &state.State{Round: tt.round, Behind: tt.behind}
			if err := st.SetHandled(essence.Of(object("a", nil, false, sized(tt.handledSize))), state.DefaultEssenceCap); err != nil {
				t.Fatal(err)
			}
			d := Describe(op, object("a", st, false, nil), nil, now)
			if d.Round == nil || !equal(d.Round.Waiting, tt.wantWaiting) {
				t.Fatalf("round = %+v, want waiting %v", d.Round, tt.wantWaiting)
			}
			if len(d.Round.Owed) != len(tt.wantOwed) || len(tt.wantOwed) > 0 && d.Round.Owed[0] != tt.wantOwed[0] {
				t.Errorf("owed = %+v, want %+v", d.Round.Owed, tt.wantOwed)
			}
			for _, c := range d.Callbacks {
				if want, ok := tt.wantStates[c.ID]; ok && c.State != want {
					t.Errorf("callback %s: state %s, want %s", c.ID, c.State, want)
				}
			}
		})
	}
}
