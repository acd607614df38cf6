package watchjson

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

var widgets = schema.GroupVersionResource{Group: "test.opgate.dev", Version: "v1", Resource: "widgets"}

// stream serves body as the answer to every watch of widgets, with status
// code; it records the query of the last request.
type stream struct {
	code int
	body string

	mu    sync.Mutex
	query string
}

func (s *stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.query = r.URL.RawQuery
	s.mu.Unlock()
	if s.code == dropConnection {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.code)
	_, _ = w.Write([]byte(s.body))
}

// dropConnection as a stream's code closes the connection without an
// answer.
const dropConnection = -1

// clients returns client-go's dynamic client and a Watcher on the same
// REST client configuration, both talking to srv.
func clients(t testing.TB, srv *httptest.Server, opts ...Option) (dynamic.Interface, *Watcher) {
	t.Helper()
	cfg := &rest.Config{Host: srv.URL}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dcfg := dynamic.ConfigFor(cfg)
	dcfg.GroupVersion, dcfg.APIPath = nil, "/unused"
	rc, err := rest.UnversionedRESTClientFor(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	w := New(rc, opts...)
	w.pause = 10 * time.Millisecond
	return dyn, w
}

type seen struct {
	Type   watch.EventType
	Object runtime.Object
}

func drain(t *testing.T, w watch.Interface) []seen {
	t.Helper()
	defer w.Stop()
	var out []seen
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return out
			}
			out = append(out, seen{ev.Type, ev.Object})
		case <-timeout:
			t.Fatal("watch did not end")
		}
	}
}

// both watches body through client-go's dynamic client and through
// Watcher, and returns what each delivered (or the error Watch returned).
// With dropManagedFields the Watcher drops them, and so they are taken
// from client-go's objects too.
func both(t *testing.T, code int, body string, dropManagedFields bool) (want, got []seen, wantErr, gotErr error) {
	t.Helper()
	s := &stream{code: code, body: body}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var wopts []Option
	if dropManagedFields {
		wopts = append(wopts, DropManagedFields())
	}
	dyn, w := clients(t, srv, wopts...)
	ctx := context.Background()
	opts := metav1.ListOptions{ResourceVersion: "7", AllowWatchBookmarks: true, LabelSelector: "a=b"}
	ref, wantErr := dyn.Resource(widgets).Namespace("ns").Watch(ctx, opts)
	if wantErr == nil {
		want = drain(t, ref)
	}
	for _, ev := range want {
		if u, ok := ev.Object.(*unstructured.Unstructured); ok && dropManagedFields {
			if md, ok := u.Object["metadata"].(map[string]any); ok {
				delete(md, "managedFields")
			}
		}
	}
	s.mu.Lock()
	refQuery := s.query
	s.mu.Unlock()
	mine, gotErr := w.Watch(ctx, widgets, "ns", opts)
	if gotErr == nil {
		got = drain(t, mine)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.query != refQuery {
		t.Errorf("query %q, client-go sends %q", s.query, refQuery)
	}
	return want, got, wantErr, gotErr
}

func frames(events ...string) string { return strings.Join(events, "\n") + "\n" }

const object = `{"apiVersion":"test.opgate.dev/v1","kind":"Widget","metadata":{"name":"a","namespace":"ns","resourceVersion":"8","labels":{"a":"b"},"annotations":{"x":"\u00e9\"\n"}},"spec":{"size":3,"ratio":0.5,"big":12345678901234,"neg":-2,"exp":1e3,"on":true,"none":null,"list":[1,"two",{"three":3.0}],"empty":{}}}`

func TestWatchDeliversWhatClientGosDynamicWatchDelivers(t *testing.T) {
	status410 := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}`
	for _, tc := range []struct {
		name string
		code int
		body string
	}{
		{"added, modified, bookmark, deleted", http.StatusOK, frames(
			`{"type":"ADDED","object":`+object+`}`,
			`{"type":"MODIFIED","object":`+object+`}`,
			`{"type":"BOOKMARK","object":{"apiVersion":"test.opgate.dev/v1","kind":"Widget","metadata":{"resourceVersion":"9","annotations":{"k8s.io/initial-events-end":"true"}}}}`,
			`{"type":"DELETED","object":`+object+`}`)},
		{"frames without newlines between them", http.StatusOK, `{"type":"ADDED","object":` + object + `}{"type":"DELETED","object":` + object + `}`},
		{"an expired watch", http.StatusOK, frames(`{"type":"ERROR","object":` + status410 + `}`)},
		{"a frame that is not JSON", http.StatusOK, frames(`{"type":"ADDED","object":`+object+`}`, `{"type":"ADDED","object":{"kind":`)},
		{"an unknown event type", http.StatusOK, frames(`{"type":"RENAMED","object":` + object + `}`)},
		{"an object without a kind", http.StatusOK, frames(`{"type":"ADDED","object":{"apiVersion":"v1","metadata":{"name":"a"}}}`)},
		{"a connection closed before the answer", dropConnection, ""},
		{"a refused watch", http.StatusForbidden, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"widgets is forbidden","reason":"Forbidden","code":403}`},
		{"a gone resource", http.StatusNotFound, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}`},
		{"objects with managedFields", http.StatusOK, frames(
			`{"type":"ADDED","object":`+withManagedFields+`}`,
			`{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"Widget","metadata":{"managedFields":[{"manager":"a"}],"name":"first"}}}`,
			`{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"Widget","metadata":{"name":"only","managedFields":[]}}}`,
			`{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"Widget","metadata":{"managed\u0046ields":[{"manager":"escaped"}],"name":"e"}}}`,
			`{"type":"DELETED","object":{"apiVersion":"v1","kind":"Widget","metadata":{"managedFields":[1],"name":"twice","managedFields":[2]}}}`)},
	} {
		for _, drop := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, dropManagedFields %v", tc.name, drop), func(t *testing.T) {
				want, got, wantErr, gotErr := both(t, tc.code, tc.body, drop)
				if (wantErr == nil) != (gotErr == nil) || wantErr != nil && apierrors.ReasonForError(wantErr) != apierrors.ReasonForError(gotErr) {
					t.Fatalf("Watch error %v, client-go's %v", gotErr, wantErr)
				}
				if len(got) != len(want) {
					t.Fatalf("%d events, client-go delivers %d:\n got  %s\n want %s", len(got), len(want), describe(got), describe(want))
				}
				for i := range want {
					if got[i].Type != want[i].Type {
						t.Errorf("event %d: type %s, client-go's %s", i, got[i].Type, want[i].Type)
					}
					if a, b := reflect.TypeOf(got[i].Object), reflect.TypeOf(want[i].Object); a != b {
						t.Errorf("event %d: object %v, client-go's %v", i, a, b)
					}
					if want[i].Type == watch.Error {
						// Decoding failures: the reason and code must match; the
						// message names the decoder.
						if a, b := apierrors.FromObject(got[i].Object), apierrors.FromObject(want[i].Object); apierrors.ReasonForError(a) != apierrors.ReasonForError(b) ||
							statusCode(a) != statusCode(b) {
							t.Errorf("event %d: error %v, client-go's %v", i, a, b)
						}
						continue
					}
					if !reflect.DeepEqual(got[i].Object, want[i].Object) {
						t.Errorf("event %d: object\n %#v\nclient-go's\n %#v", i, got[i].Object, want[i].Object)
					}
				}
			})
		}
	}
}

// withManagedFields is a Widget as the API server sends it: managedFields
// between the other members of metadata.
const withManagedFields = `{"apiVersion":"test.opgate.dev/v1","kind":"Widget","metadata":{"name":"a","namespace":"ns","uid":"u1","resourceVersion":"8","managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"test.opgate.dev/v1","time":"2026-11-30T20:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:size":{}}}},{"manager":"opgate","operation":"Update","subresource":"status","fieldsV1":{"f:status":{".":{}}}}],"finalizers":["opgate.dev/x"]},"spec":{"size":3},"status":{"ok":true}}`

// TestWatchOpensAgainAfterAConnectionLostOnTheWay: the first attempt's
// connection closes without an answer, the second is served; the events
// come, as client-go's Watch retries too (no relist of the informer).
func TestWatchOpensAgainAfterAConnectionLostOnTheWay(t *testing.T) {
	var requests atomic.Int32
	good := &stream{code: http.StatusOK, body: frames(`{"type":"ADDED","object":` + object + `}`)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			(&stream{code: dropConnection}).ServeHTTP(w, r)
			return
		}
		good.ServeHTTP(w, r)
	}))
	defer srv.Close()
	_, w := clients(t, srv)
	wi, err := w.Watch(context.Background(), widgets, "ns", metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, wi); len(got) != 1 || got[0].Type != watch.Added {
		t.Fatalf("events %s after %d requests, want the one ADDED of the second", describe(got), requests.Load())
	}
}

func statusCode(err error) int32 {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		return s.Status().Code
	}
	return 0
}

func TestExpiredWatchIsAnErrorTheReflectorRelistsOn(t *testing.T) {
	_, got, _, err := both(t, http.StatusOK, frames(`{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old","reason":"Expired","code":410}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Type != watch.Error || !apierrors.IsResourceExpired(apierrors.FromObject(got[0].Object)) {
		t.Fatalf("events %s, want one ERROR that is ResourceExpired", describe(got))
	}
}

// otherMetaKind says whether obj's kind is one of metav1's unversioned
// kinds other than Status.
func otherMetaKind(obj string) bool {
	var m struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal([]byte(obj), &m) != nil {
		return false
	}
	switch m.Kind {
	case "APIVersions", "APIGroupList", "APIGroup", "APIResourceList", "WatchEvent",
		"ListOptions", "GetOptions", "DeleteOptions", "CreateOptions", "UpdateOptions", "PatchOptions":
		return true
	}
	return false
}

// caseVariantTypeKeys says whether obj's top level has a key that is
// apiVersion or kind in another case.
func caseVariantTypeKeys(obj string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(obj), &m) != nil {
		return false
	}
	for k := range m {
		if k != "apiVersion" && strings.EqualFold(k, "apiVersion") || k != "kind" && strings.EqualFold(k, "kind") {
			return true
		}
	}
	return false
}

func describe(evs []seen) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "[%s %T] ", ev.Type, ev.Object)
	}
	return b.String()
}

// FuzzDecodeEventMatchesClientGo: for any object JSON, the event decodes to
// what client-go's dynamic watch decodes it to, or both fail.
func FuzzDecodeEventMatchesClientGo(f *testing.F) {
	for _, seed := range []string{object, `{"kind":"X"}`, `{"apiVersion":"v1","kind":"X","a":1.0}`, `{"apiVersion":"v1","kind":"X","a":-0}`,
		`{"apiVersion":"v1","kind":"X","a":1e400}`, `{"apiVersion":"v1","kind":"X","a":"\ud800"}`, `{"apiVersion":"v1","kind":""}`, `{}`, `null`, `[]`,
		`{"apiVersion":"v1","kind":"X","Kind":"Y"}`, `{"apiVersion":"v1","kind":"X","a":9223372036854775808}`, `{"apiVersion":"v1","kind":"X","ApiVersion":"v2"}`,
		`{"apiVersion":"a/v1","kind":"XList","items":[{"apiVersion":"a/v1","kind":"X"}]}`, `{"apiVersion":7,"kind":"X"}`,
		`{"apiVersion":"v1","kind":"Status","code":410,"reason":"Expired"}`, `{"apiVersion":"v1","kind":"Status","code":"x"}`,
		`{"apiVersion":"meta.k8s.io/v1","kind":"Status","code":410}`, withManagedFields,
		`{"apiVersion":"v1","kind":"X","metadata":{"managedFields":[],"managedFields":null}}`,
		// Broken: a string not closed runs into the next event's line.
		`"`, `{"apiVersion":"v1","kind":"X","metadata":{"managedFields":[] "name":"a"}}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, obj string) {
		if strings.ContainsAny(obj, "\n\r") {
			return // the test server's stream is one event per line
		}
		if otherMetaKind(obj) {
			// metav1's other unversioned kinds (APIGroup, ListOptions…)
			// never come as watched objects; client-go types them.
			return
		}
		if caseVariantTypeKeys(obj) {
			// client-go finds apiVersion and kind case-insensitively
			// ("ApiVersion"); an API server always writes them exactly.
			return
		}
		for _, drop := range []bool{false, true} {
			checkSameEvents(t, obj, drop)
		}
	})
}

// checkSameEvents watches one ADDED event of obj through both decoders.
func checkSameEvents(t *testing.T, obj string, dropManagedFields bool) {
	want, got, wantErr, gotErr := both(t, http.StatusOK, `{"type":"ADDED","object":`+obj+"}\n", dropManagedFields)
	if wantErr != nil || gotErr != nil {
		t.Fatalf("watch: %v / %v", gotErr, wantErr)
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d events, client-go %d: %s / %s", obj, len(got), len(want), describe(got), describe(want))
	}
	for i := range want {
		if got[i].Type != want[i].Type {
			t.Fatalf("%q: event %d type %s, client-go's %s", obj, i, got[i].Type, want[i].Type)
		}
		if reflect.TypeOf(got[i].Object) != reflect.TypeOf(want[i].Object) {
			t.Fatalf("%q: object %T, client-go's %T", obj, got[i].Object, want[i].Object)
		}
		if want[i].Type != watch.Error && !reflect.DeepEqual(got[i].Object, want[i].Object) {
			t.Fatalf("%q: object %#v, client-go's %#v", obj, got[i].Object, want[i].Object)
		}
	}
}

// TestWatchTriesALostConnectionAsOftenAsAsked: by default as client-go's
// Watch (its 10 retries: 11 tries, then an empty watch); with Attempts,
// that many tries and then the last error, for a caller that retries on
// its own schedule and reports why.
func TestWatchTriesALostConnectionAsOftenAsAsked(t *testing.T) {
	for _, tt := range []struct {
		name    string
		opts    []Option
		want    int32
		wantErr bool
	}{
		{"as client-go", nil, 11, false},
		{"once, for a caller that retries", []Option{Attempts(1)}, 1, true},
		{"three times, then the error", []Option{Attempts(3)}, 3, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				requests.Add(1)
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close() // the connection lost on the way
				}
			}))
			defer srv.Close()
			_, w := clients(t, srv, tt.opts...)
			w.pause = time.Millisecond // client-go waits 1 s
			got, err := w.Watch(context.Background(), widgets, "ns", metav1.ListOptions{})
			switch {
			case tt.wantErr && (err == nil || !utilnet.IsProbableEOF(err)):
				t.Errorf("Watch: %v, %v; want the lost connection's error", got, err)
			case !tt.wantErr && err != nil:
				t.Errorf("Watch: %v, want an empty watch", err)
			case !tt.wantErr:
				if evs := drain(t, got); len(evs) != 0 {
					t.Errorf("events %v from a lost connection", evs)
				}
			}
			if n := requests.Load(); n != tt.want {
				t.Errorf("%d tries, want %d", n, tt.want)
			}
		})
	}
}
