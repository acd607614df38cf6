package main

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
	"github.com/opgate/opgate/gateway/check/crdtest"
)

const crdFile = "../../crds/nginxservers.web.example.com.yaml"

func newTestRouter(t *testing.T) http.Handler {
	t.Helper()
	mux, err := newMux(slog.New(slog.DiscardHandler), "")
	if err != nil {
		t.Fatal(err)
	}
	return newRouter(mux)
}

// nginxServer is an NginxServer named web; replicas "" leaves it out.
func nginxServer(image, replicas string) string {
	spec := `image: ` + strconv.Quote(image)
	if replicas != "" {
		spec += `, replicas: ` + replicas
	}
	return `{apiVersion: web.example.com/v1, kind: NginxServer, metadata: {name: web, namespace: demo}, spec: {` + spec + `}}`
}

func field(t *testing.T, obj *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(obj.Object, path...)
	if err != nil || !found {
		t.Fatalf("%v: not found (%v) in %v", path, err, obj.Object)
	}
	return v
}

func TestCreateAndUpdateAnswerTheDeployment(t *testing.T) {
	wantLabels := map[string]any{"app": "nginx", "nginxserver": "web"}
	tests := []struct {
		name         string
		event        callbacks.Event
		object       string
		wantReplicas int64
		wantImage    string
		wantReason   string
	}{
		{"create runs replicas pods of the image", callbacks.EventCreate, nginxServer("nginx:1.27", "3"), 3, "nginx:1.27", "Created"},
		{"create without replicas runs one pod", callbacks.EventCreate, nginxServer("nginx:1.27", ""), 1, "nginx:1.27", "Created"},
		{"update follows a new image and replica count", callbacks.EventUpdate, nginxServer("registry.example.com:5000/team/nginx:1.27.2-alpine", "5"), 5, "registry.example.com:5000/team/nginx:1.27.2-alpine", "Updated"},
		{"a digest without tag is pinned enough", callbacks.EventUpdate, nginxServer("nginx@sha256:"+strings.Repeat("ab", 32), "2"), 2, "nginx@sha256:" + strings.Repeat("ab", 32), "Updated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := callbackstest.NewRequest(t, tt.event, tt.object)
			res := callbackstest.Call(t, newTestRouter(t), req, callbackstest.AtPath("/"+string(tt.event)))
			d := res.Child("apps/v1", "Deployment", "web")
			if got := field(t, d, "spec", "replicas"); got != tt.wantReplicas {
				t.Errorf("replicas = %v, want %d", got, tt.wantReplicas)
			}
			for _, path := range [][]string{{"spec", "selector", "matchLabels"}, {"spec", "template", "metadata", "labels"}} {
				if got := field(t, d, path...); !reflect.DeepEqual(got, wantLabels) {
					t.Errorf("%v = %v, want %v", path, got, wantLabels)
				}
			}
			container := field(t, d, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
			if container["image"] != tt.wantImage {
				t.Errorf("image = %v, want %s", container["image"], tt.wantImage)
			}
			if port := container["ports"].([]any)[0].(map[string]any)["containerPort"]; port != int64(80) {
				t.Errorf("containerPort = %v, want 80", port)
			}
			if e := res.Event(tt.wantReason); !strings.Contains(e.Message, tt.wantImage) {
				t.Errorf("event %+v should name the image", e)
			}
		})
	}
}

func TestSpecErrorsAreTemporaryOrPermanent(t *testing.T) {
	tests := []struct {
		name          string
		object        string
		wantPermanent bool
		wantMessage   string
	}{
		{"an image without tag waits for one", nginxServer("nginx", "1"), false, "image tag is empty; waiting for it to be set"},
		{"an image with an empty tag waits for one", nginxServer("nginx:", "1"), false, "image tag is empty; waiting for it to be set"},
		{"a registry image without tag waits for one", nginxServer("localhost:5000/nginx", "1"), false, "image tag is empty"},
		{"an empty image waits for one", nginxServer("", "1"), false, "spec.image is empty"},
		{"uppercase letters can never be pulled", nginxServer("NGINX:1.27", "1"), true, "lowercase"},
		{"a space can never be pulled", nginxServer("nginx :1.27", "1"), true, `spec.image "nginx :1.27" is not a valid image reference: invalid reference format`},
		{"an invalid tag can never be pulled", nginxServer("nginx:-1", "1"), true, "invalid reference format"},
		{"a doubled slash can never be pulled", nginxServer("library//nginx:1", "1"), true, "invalid reference format"},
		{"a short digest can never be pulled", nginxServer("nginx@sha256:abc", "1"), true, "invalid reference format"},
		{"a bad registry port can never be pulled", nginxServer("registry.example.com:port/nginx:1", "1"), true, "invalid reference format"},
		{"replicas out of range is permanent", nginxServer("nginx:1.27", "11"), true, "outside 1..10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, event := range []callbacks.Event{callbacks.EventCreate, callbacks.EventUpdate} {
				res := callbackstest.Call(t, newTestRouter(t), callbackstest.NewRequest(t, event, tt.object), callbackstest.AtPath("/"+string(event)))
				got := res.ReportedError()
				if got.Permanent != tt.wantPermanent || !strings.Contains(got.Message, tt.wantMessage) {
					t.Errorf("%s: error %+v, want permanent=%v containing %q", event, *got, tt.wantPermanent, tt.wantMessage)
				}
				if wantRetry := map[bool]string{false: "10s", true: ""}[tt.wantPermanent]; got.RetryAfter != wantRetry {
					t.Errorf("%s: retryAfter %q, want %q", event, got.RetryAfter, wantRetry)
				}
				if _, present := res.Children(); present {
					t.Errorf("%s: children answered with an error: %s", event, res.Body)
				}
			}
		})
	}
}

func pod(name, server, phase string) string {
	return `{apiVersion: v1, kind: Pod, metadata: {name: ` + name + `, namespace: demo, labels: {app: nginx, nginxserver: ` + server + `}}, status: {phase: ` + phase + `}}`
}

func TestSyncReportsTheDeploymentAndItsPods(t *testing.T) {
	const deployment = `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: demo}, status: {availableReplicas: 2}}`
	const terminating = `{apiVersion: v1, kind: Pod, metadata: {name: web-going, namespace: demo, labels: {nginxserver: web}, deletionTimestamp: "2026-11-25T09:00:00Z"}}`
	tests := []struct {
		name          string
		children      []string
		related       []string
		wantAvailable int64
		wantPods      []string
	}{
		{
			name:          "available replicas and sorted pod names",
			children:      []string{deployment},
			related:       []string{pod("web-b", "web", "Running"), pod("web-a", "web", "Running"), pod("api-a", "api", "Running"), terminating},
			wantAvailable: 2,
			wantPods:      []string{"web-a", "web-b"},
		},
		{
			name:          "before the Deployment exists nothing is available",
			wantAvailable: 0,
			wantPods:      []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := callbackstest.NewRequest(t, callbacks.EventSync, nginxServer("nginx:1.27", "2"),
				callbackstest.WithChildren(tt.children...), callbackstest.WithRelated(tt.related...))
			res := callbackstest.Call(t, newTestRouter(t), req, callbackstest.AtPath(pathSync))
			if got := res.StatusField("availableReplicas"); got != tt.wantAvailable {
				t.Errorf("status.availableReplicas = %#v, want %d", got, tt.wantAvailable)
			}
			if got := res.StatusStrings("podNames"); !reflect.DeepEqual(got, tt.wantPods) {
				t.Errorf("status.podNames = %v, want %v", got, tt.wantPods)
			}
			if _, present := res.Children(); present {
				t.Errorf("sync answered children, which would prune: %s", res.Body)
			}
			crdtest.CheckStatus(t, res, crdFile)
		})
	}
}

func TestDeleteReleasesTheFinalizer(t *testing.T) {
	res := callbackstest.Call(t, newTestRouter(t), callbackstest.NewRequest(t, callbacks.EventDelete, nginxServer("nginx:1.27", "1")), callbackstest.AtPath(pathDelete))
	if !res.Finalized() || res.Response.Error != nil {
		t.Errorf("answer %s, want the finalizer released", res.Body)
	}
}

func TestCRDIsValid(t *testing.T) {
	crd := crdtest.LoadCRD(t, crdFile)
	if got := crd.Spec.Names.ShortNames; !reflect.DeepEqual(got, []string{"nginx"}) {
		t.Errorf("shortNames = %v, want [nginx]", got)
	}
}

// The gateway signs with the bytes of the Secret the file is mounted from;
// the handler takes the key from the file by the same rule.
func TestSignedRequestsWithTheKeyOfTheSecretFile(t *testing.T) {
	for _, file := range []string{"s3cret\n", " s3cret\r\n", "s3cret\u00a0\n"} {
		t.Run(strconv.Quote(file), func(t *testing.T) {
			secretFile := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(secretFile, []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			mux, err := newMux(slog.New(slog.DiscardHandler), secretFile)
			if err != nil {
				t.Fatal(err)
			}
			req := callbackstest.NewRequest(t, callbacks.EventDelete, nginxServer("nginx:1.27", "1"), callbackstest.WithCallback("delete"))
			callbackstest.Call(t, newRouter(mux), req, callbackstest.AtPath(pathDelete), callbackstest.Signed([]byte(file)))
			callbackstest.Call(t, newRouter(mux), req, callbackstest.AtPath(pathDelete), callbackstest.ExpectStatus(http.StatusUnauthorized))
		})
	}
}
