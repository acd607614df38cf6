package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
	"github.com/opgate/opgate/gateway/check/crdtest"
)

const crdFile = "../../crds/memcacheds.cache.example.com.yaml"

var backupTime = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// newTestRouter is the handler as main wires it, with a fixed clock.
func newTestRouter(t *testing.T) http.Handler {
	t.Helper()
	mux, err := newMux(slog.New(slog.DiscardHandler), "", func() time.Time { return backupTime })
	if err != nil {
		t.Fatal(err)
	}
	return newRouter(mux)
}

func memcached(size string) string {
	return `
		apiVersion: cache.example.com/v1alpha1
		kind: Memcached
		metadata: {name: example, namespace: demo, uid: 0c1d2e3f}
		spec: {size: ` + size + `}`
}

// pod is a pod of the instance, in the phase given ("" for none), and
// being deleted when terminating.
func pod(name, instance, phase string, terminating bool) string {
	meta := `{name: ` + name + `, namespace: demo, labels: {app: memcached, memcached_cr: ` + instance + `}}`
	if terminating {
		meta = `{name: ` + name + `, namespace: demo, labels: {app: memcached, memcached_cr: ` + instance + `}, deletionTimestamp: "2026-11-25T09:00:00Z"}`
	}
	return `{apiVersion: v1, kind: Pod, metadata: ` + meta + `, status: {phase: "` + phase + `"}}`
}

func nested(t *testing.T, obj *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(obj.Object, path...)
	if err != nil || !found {
		t.Fatalf("%v: not found (%v) in %v", path, err, obj.Object)
	}
	return v
}

func TestCreateAndResizeAnswerTheDeployment(t *testing.T) {
	wantLabels := map[string]any{"app": "memcached", "memcached_cr": "example"}
	tests := []struct {
		name         string
		path         string
		req          *callbacks.Request
		wantReplicas int64
		wantReason   string
		wantMessage  string
	}{
		{
			name:         "create makes a Deployment of spec.size replicas",
			path:         pathCreate,
			req:          callbackstest.NewRequest(t, callbacks.EventCreate, memcached("3"), callbackstest.WithCallback("create-deployment")),
			wantReplicas: 3, wantReason: "Created", wantMessage: "Deployment example with 3 replicas",
		},
		{
			name: "resize from 3 to 5 answers 5 replicas",
			path: pathResize,
			req: callbackstest.NewRequest(t, callbacks.EventUpdate, memcached("5"),
				callbackstest.WithCallback("resize"), callbackstest.WithOld(memcached("3"))),
			wantReplicas: 5, wantReason: "Scaled", wantMessage: "from 3 to 5 replicas",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := callbackstest.Call(t, newTestRouter(t), tt.req, callbackstest.AtPath(tt.path))
			d := res.Child("apps/v1", "Deployment", "example")
			if got := nested(t, d, "spec", "replicas"); got != tt.wantReplicas {
				t.Errorf("replicas = %v, want %d", got, tt.wantReplicas)
			}
			// Both labels in the selector and on the pods: two instances in
			// one namespace must never share pods.
			for _, path := range [][]string{{"spec", "selector", "matchLabels"}, {"spec", "template", "metadata", "labels"}} {
				if got := nested(t, d, path...); !reflect.DeepEqual(got, wantLabels) {
					t.Errorf("%v = %v, want %v", path, got, wantLabels)
				}
			}
			container := nested(t, d, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
			if container["image"] != "memcached:1.4.36" {
				t.Errorf("image = %v, want memcached:1.4.36", container["image"])
			}
			if port := container["ports"].([]any)[0].(map[string]any)["containerPort"]; port != int64(11211) {
				t.Errorf("containerPort = %v, want 11211", port)
			}
			if e := res.Event(tt.wantReason); e.Type != callbacks.EventTypeNormal || e.Message != tt.wantMessage {
				t.Errorf("event = %+v, want Normal %q", e, tt.wantMessage)
			}
		})
	}
}

func TestBadSizeIsAPermanentError(t *testing.T) {
	tests := []struct {
		name   string
		object string
	}{
		{"size above 10", memcached("11")},
		{"size 0", memcached("0")},
		{"size not a number", memcached(`"three"`)},
		{"size missing", `{"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached", "metadata": {"name": "example", "namespace": "demo"}, "spec": {}}`},
		{"name too long for a label", `{"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached", "metadata": {"name": "a-name-that-is-far-too-long-to-be-the-value-of-a-kubernetes-label", "namespace": "demo"}, "spec": {"size": 1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{pathCreate, pathResize} {
				req := callbackstest.NewRequest(t, callbacks.EventCreate, tt.object)
				res := callbackstest.Call(t, newTestRouter(t), req, callbackstest.AtPath(path))
				if !res.IsPermanentError() {
					t.Errorf("%s answered %s, want a permanent error", path, res.Body)
				}
				if children, present := res.Children(); present {
					t.Errorf("%s answered children %v with its error", path, children)
				}
			}
		})
	}
}

func TestStatusListsThisInstancesLivePods(t *testing.T) {
	tests := []struct {
		name    string
		related []string
		want    []string
	}{
		{
			name:    "three pods are listed sorted",
			related: []string{pod("example-c", "example", "Running", false), pod("example-a", "example", "Pending", false), pod("example-b", "example", "", false)},
			want:    []string{"example-a", "example-b", "example-c"},
		},
		{
			name:    "pods of another instance are ignored",
			related: []string{pod("example-a", "example", "Running", false), pod("other-a", "other", "Running", false)},
			want:    []string{"example-a"},
		},
		{
			name: "terminating and finished pods are not nodes",
			related: []string{
				pod("example-a", "example", "Running", false),
				pod("example-old", "example", "Failed", false),
				pod("example-done", "example", "Succeeded", false),
				pod("example-going", "example", "Running", true),
			},
			want: []string{"example-a"},
		},
		{
			name: "no pods is an empty list, not null",
			want: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := callbackstest.NewRequest(t, callbacks.EventSync, memcached("3"),
				callbackstest.WithCallback("status"), callbackstest.WithRelated(tt.related...))
			res := callbackstest.Call(t, newTestRouter(t), req, callbackstest.AtPath(pathSync))
			if got := res.StatusStrings("nodes"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("status.nodes = %v, want %v", got, tt.want)
			}
			// An answer with children would prune every owned child missing
			// from it; sync leaves the Deployment alone.
			if _, present := res.Children(); present {
				t.Errorf("sync answered children: %s", res.Body)
			}
			crdtest.CheckStatus(t, res, crdFile)
		})
	}
}

func TestCleanupReleasesTheFinalizer(t *testing.T) {
	req := callbackstest.NewRequest(t, callbacks.EventDelete, memcached("3"), callbackstest.WithCallback("cleanup"))
	res := callbackstest.Call(t, newTestRouter(t), req, callbackstest.AtPath(pathDelete))
	if !res.Finalized() || res.Response.Error != nil {
		t.Errorf("answer %s, want the finalizer released", res.Body)
	}
}

func TestBackupRecordsLastBackup(t *testing.T) {
	req := callbackstest.NewRequest(t, callbacks.EventTimer, memcached("3"), callbackstest.WithCallback("backup"))
	res := callbackstest.Call(t, newTestRouter(t), req, callbackstest.AtPath(pathBackup))
	if got := res.StatusField("lastBackup"); got != "2026-11-25T10:00:00Z" {
		t.Errorf("status.lastBackup = %v, want the clock's time in RFC 3339", got)
	}
	if e := res.Event("Backup"); e.Type != callbacks.EventTypeNormal {
		t.Errorf("event %+v, want Normal", e)
	}
	crdtest.CheckStatus(t, res, crdFile)
}

func TestRouterServesHealthzAndRoutesByPathWhateverTheID(t *testing.T) {
	router := newTestRouter(t)
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", rec.Code)
	}
	// A registration names its ids as it likes; the path routes.
	for _, id := range []string{"backup", "nightly-backup"} {
		req := callbackstest.NewRequest(t, callbacks.EventTimer, memcached("3"), callbackstest.WithCallback(id))
		res := callbackstest.Call(t, router, req, callbackstest.AtPath(pathBackup))
		if res.StatusField("lastBackup") == nil {
			t.Errorf("POST %s with id %s: %s, want the backup callback's answer", pathBackup, id, res.Body)
		}
	}
	req := callbackstest.NewRequest(t, callbacks.EventTimer, memcached("3"), callbackstest.WithCallback("backup"))
	res := callbackstest.Call(t, router, req, callbackstest.AtPath("/"), callbackstest.ExpectStatus(http.StatusNotFound))
	if !res.IsTemporaryError() {
		t.Errorf("POST / answered %s, want a temporary 404 (a routing fix cures it, not a new object)", res.Body)
	}
}

func TestSignedRequestsOnlyWhenASecretIsGiven(t *testing.T) {
	// The gateway signs with the bytes of the Secret the file is mounted
	// from; the handler takes the key from the file by the same rule.
	for _, file := range []string{"s3cret\n", "s3cret", " s3cret\r\n", "s3cret\u00a0\n", "whsec_czNjcmV0\n"} {
		t.Run(strconv.Quote(file), func(t *testing.T) {
			secretFile := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(secretFile, []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			mux, err := newMux(slog.New(slog.DiscardHandler), secretFile, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			req := callbackstest.NewRequest(t, callbacks.EventDelete, memcached("3"), callbackstest.WithCallback("cleanup"))
			callbackstest.Call(t, newRouter(mux), req, callbackstest.AtPath(pathDelete), callbackstest.Signed([]byte(file)))
			callbackstest.Call(t, newRouter(mux), req, callbackstest.AtPath(pathDelete), callbackstest.ExpectStatus(http.StatusUnauthorized))
		})
	}
	if _, err := newMux(slog.New(slog.DiscardHandler), filepath.Join(t.TempDir(), "missing"), time.Now); err == nil {
		t.Error("a missing secret file was accepted")
	}
}

func TestCRDIsValid(t *testing.T) {
	crd := crdtest.LoadCRD(t, crdFile)
	if got := crd.Spec.Names.ShortNames; !reflect.DeepEqual(got, []string{"mc"}) {
		t.Errorf("shortNames = %v, want [mc]", got)
	}
}
