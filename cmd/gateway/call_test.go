package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
)

const (
	callTestdata = "testdata/call/"
	memcachedCRD = "../../examples/crds/memcacheds.cache.example.com.yaml"
)

// callResult is what one `gateway call` did.
type callResult struct {
	code           int // the exit status the error stands for
	err            error
	rep            *callReport // with -o json
	stdout, stderr string
}

// runCall runs `gateway call args...`.
func runCall(t *testing.T, args ...string) callResult {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand()
	root.SetArgs(append([]string{"call"}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	r := callResult{err: root.Execute()}
	var ee *exitError
	switch {
	case r.err == nil:
	case errors.As(r.err, &ee):
		r.code = ee.ExitCode()
	default:
		r.code = 1
	}
	r.stdout, r.stderr = out.String(), errOut.String()
	if slices.Contains(args, "json") && out.Len() > 0 {
		r.rep = &callReport{}
		if err := json.Unmarshal(out.Bytes(), r.rep); err != nil {
			t.Fatalf("-o json printed what is not a report: %v\n%s", err, r.stdout)
		}
	}
	return r
}

// recordingHandler answers every call with answer and keeps the requests.
type recordingHandler struct {
	answer func(w http.ResponseWriter)

	mu       sync.Mutex
	requests []receivedRequest
}

type receivedRequest struct {
	req    *callbacks.Request
	header http.Header
	body   []byte
}

func (h *recordingHandler) received() []receivedRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

func (h *recordingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req callbacks.Request
	_ = json.Unmarshal(body, &req)
	h.mu.Lock()
	h.requests = append(h.requests, receivedRequest{&req, r.Header.Clone(), body})
	h.mu.Unlock()
	h.answer(w)
}

func answerJSON(code int, body string, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCallCommandAgainstAGoHandler(t *testing.T) {
	const secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
	secretFile := writeSecret(t, secret)
	deployment := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"example-memcached"},"spec":{"replicas":3}}`
	object := []string{"--object", callTestdata + "memcached.yaml", "--hmac-secret-file", secretFile, "-o", "json", "--show-children"}
	sync := append([]string{"--event", "sync", "--children-kinds", "apps/v1/Deployment", "--children", callTestdata + "deployments.yaml",
		"--related", callTestdata + "pods.yaml", "--crd", memcachedCRD}, object...)
	tests := []struct {
		name     string
		args     []string
		answer   func(http.ResponseWriter)
		wantCode int
		want     callOutcome
		check    func(t *testing.T, rep *callReport, req *callbacks.Request)
	}{{
		name:   "a sync answer with children and status is reported as the gateway would apply it",
		args:   sync,
		answer: answerJSON(200, `{"children":[`+deployment+`],"status":{"nodes":["a"],"nodez":1},"events":[{"reason":"Synced","message":"ok"}],"requeueAfter":"30s"}`),
		want:   callOutcome{Result: resultSuccess},
		check: func(t *testing.T, rep *callReport, req *callbacks.Request) {
			if label, _, _ := unstructured.NestedString(rep.Children[0].Object, "metadata", "labels", "opgate.dev/operator"); len(rep.Children) != 1 || rep.Children[0].Namespace != "demo" || label != "dev" {
				t.Errorf("children = %+v, want the Deployment defaulted to the parent's namespace and labelled", rep.Children)
			}
			if rep.Prune == nil || !reflect.DeepEqual(rep.Prune.Delete, []string{"apps/v1/Deployment example-memcached-canary"}) {
				t.Errorf("prune = %+v, want the canary deleted", rep.Prune)
			}
			if rep.Status == nil || !rep.Status.Checked || !reflect.DeepEqual(rep.Status.Pruned, []string{"status.nodez"}) ||
				!reflect.DeepEqual(rep.Status.Merged, map[string]any{"nodes": []any{"a"}}) {
				t.Errorf("status = %+v, want nodes merged and status.nodez pruned", rep.Status)
			}
			if rep.RequeueAfter != "30s" || len(rep.Events) != 1 || rep.Events[0].Reason != "Synced" {
				t.Errorf("requeueAfter %q, events %+v", rep.RequeueAfter, rep.Events)
			}
			if len(req.Related["v1/Pod"]) != 4 || len(req.Children["apps/v1/Deployment"]) != 2 {
				t.Errorf("request related %d pods, children %d deployments; want 4 and 2", len(req.Related["v1/Pod"]), len(req.Children["apps/v1/Deployment"]))
			}
		},
	}, {
		name:   "update sends old and the field diff of the essences",
		args:   append([]string{"--event", "update", "--old", callTestdata + "memcached-old.yaml"}, object...),
		answer: answerJSON(200, `{}`),
		want:   callOutcome{Result: resultSuccess},
		check: func(t *testing.T, _ *callReport, req *callbacks.Request) {
			diff, _ := json.Marshal(req.Diff)
			if string(diff) != `[{"op":"change","path":"spec.size","old":1,"new":3}]` {
				t.Errorf("diff = %s", diff)
			}
			if size, _, _ := unstructured.NestedInt64(req.Old.Object, "spec", "size"); size != 1 || req.Old.GetNamespace() != "demo" {
				t.Errorf("old = %v, want size 1 in namespace demo", req.Old.Object)
			}
			if req.OldUnavailable {
				t.Errorf("an update with old says oldUnavailable")
			}
		},
	}, {
		name:   "update without --old says old is unavailable",
		args:   append([]string{"--event", "update"}, object...),
		answer: answerJSON(200, `{}`),
		want:   callOutcome{Result: resultSuccess},
		check: func(t *testing.T, _ *callReport, req *callbacks.Request) {
			if !req.OldUnavailable || req.Old != nil || req.Diff != nil {
				t.Errorf("oldUnavailable %v, old %v, diff %v; want true and neither", req.OldUnavailable, req.Old != nil, req.Diff)
			}
		},
	}, {
		name:   "delete with finalized false keeps the finalizer and requeues after the default",
		args:   append([]string{"--event", "delete"}, object...),
		answer: answerJSON(200, `{"finalized":false}`),
		want:   callOutcome{Result: resultSuccess},
		check: func(t *testing.T, rep *callReport, _ *callbacks.Request) {
			if rep.Finalized == nil || *rep.Finalized || rep.RequeueAfter != "10s" {
				t.Errorf("finalized %v requeueAfter %q, want false and 10s", rep.Finalized, rep.RequeueAfter)
			}
		},
	}, {
		name:     "a 503 with Retry-After is a temporary failure with that delay",
		args:     append([]string{"--event", "create"}, object...),
		answer:   answerJSON(503, "busy", "Retry-After", "7"),
		wantCode: 1,
		want:     callOutcome{Result: resultTemporary, Reason: "HandlerUnavailable", RetryAfter: "7s"},
	}, {
		name: "a handler-reported permanent error is permanent; its events and status are still applied, its children not",
		args: append([]string{"--event", "create"}, object...),
		answer: answerJSON(200, `{"error":{"message":"no","permanent":true},"events":[{"type":"Warning","reason":"Bad","message":"no"}],`+
			`"status":{"nodes":["down"]},"children":[`+deployment+`]}`),
		wantCode: 1,
		want:     callOutcome{Result: resultPermanent, Reason: "HandlerError"},
		check: func(t *testing.T, rep *callReport, _ *callbacks.Request) {
			if len(rep.Events) != 1 || rep.Children != nil {
				t.Errorf("events %+v children %+v, want the event and no children", rep.Events, rep.Children)
			}
			if rep.Status == nil || !reflect.DeepEqual(rep.Status.Patch, map[string]any{"nodes": []any{"down"}}) {
				t.Errorf("status = %+v, want the answer's status patch", rep.Status)
			}
		},
	}, {
		name:     "the status of an error answer that the CRD's schema refuses is reported as not applied",
		args:     append([]string{"--event", "create", "--crd", memcachedCRD}, object...),
		answer:   answerJSON(200, `{"error":{"message":"no"},"status":{"nodes":"not a list"}}`),
		wantCode: 1,
		want:     callOutcome{Result: resultTemporary, Reason: "HandlerError"},
		check: func(t *testing.T, rep *callReport, _ *callbacks.Request) {
			if rep.Status != nil || !strings.Contains(rep.StatusRefused, "nodes") {
				t.Errorf("status %+v, refused %q; want no status and why", rep.Status, rep.StatusRefused)
			}
		},
	}, {
		name:     "garbage JSON is a temporary InvalidResponse",
		args:     append([]string{"--event", "create"}, object...),
		answer:   answerJSON(200, `{"children": [oops`),
		wantCode: 1,
		want:     callOutcome{Result: resultTemporary, Reason: "InvalidResponse"},
	}, {
		name:     "a child of an undeclared kind refuses the whole answer",
		args:     append([]string{"--event", "create", "--children-kinds", "v1/ConfigMap"}, object...),
		answer:   answerJSON(200, `{"children":[`+deployment+`]}`),
		wantCode: 1,
		want:     callOutcome{Result: resultPermanent, Reason: "ChildRefused"},
	}, {
		name:     "a status the CRD's schema refuses is permanent",
		args:     append([]string{"--event", "timer", "--crd", memcachedCRD}, object...),
		answer:   answerJSON(200, `{"status":{"nodes":"not a list"}}`),
		wantCode: 1,
		want:     callOutcome{Result: resultPermanent, Reason: "InvalidStatus"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recordingHandler{answer: tt.answer}
			srv := httptest.NewServer(h)
			defer srv.Close()
			r := runCall(t, append([]string{"--url", srv.URL + "/hook"}, tt.args...)...)
			if r.code != tt.wantCode || r.rep == nil {
				t.Fatalf("exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", r.code, r.err, tt.wantCode, r.stdout, r.stderr)
			}
			rep := r.rep
			if got := rep.Outcome; got.Result != tt.want.Result || got.Reason != tt.want.Reason || got.RetryAfter != tt.want.RetryAfter {
				t.Errorf("outcome = %+v, want %+v", got, tt.want)
			}
			got := h.received()
			if len(got) != 1 {
				t.Fatalf("handler got %d requests, want 1", len(got))
			}
			assertSentLikeTheGateway(t, got[0], secret)
			if tt.check != nil {
				tt.check(t, rep, got[0].req)
			}
		})
	}
}

// assertSentLikeTheGateway checks the envelope every request carries.
func assertSentLikeTheGateway(t *testing.T, got receivedRequest, secret string) {
	t.Helper()
	req, header, body := got.req, got.header, got.body
	if err := callbacks.ValidateRequest(body); err != nil {
		t.Errorf("request breaks the contract: %v", err)
	}
	v, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(header, body); err != nil {
		t.Errorf("signature: %v", err)
	}
	if req.Attempt != 1 || req.Deadline.IsZero() || header.Get(callbacks.HeaderIdempotencyKey) != req.UID {
		t.Errorf("attempt %d deadline %v idempotency key %q uid %q", req.Attempt, req.Deadline, header.Get(callbacks.HeaderIdempotencyKey), req.UID)
	}
	if _, leaked := req.Object.GetAnnotations()["opgate.dev/state.memcached"]; leaked {
		t.Error("the gateway's state annotation was sent to the handler")
	}
}

func TestCallCommandUsageErrorsSendNothing(t *testing.T) {
	obj := callTestdata + "memcached.yaml"
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"without a handler there is nothing to call", []string{"--event", "create", "--object", obj}, "give the handler's --url"},
		{"an unknown event is refused", []string{"--url", "{}", "--event", "explode", "--object", obj}, `--event "explode"`},
		{"--old belongs to update", []string{"--url", "{}", "--event", "create", "--object", obj, "--old", obj}, "with update only"},
		{"--related belongs to sync and delete", []string{"--url", "{}", "--event", "create", "--object", obj, "--related", obj}, "sync and delete only"},
		{"a callback the registration lacks is refused with the ids it has", []string{"-f", "../../examples/operators/memcached.yaml", "--callback", "nope", "--object", obj}, `callback "nope" does not exist in operator memcached, which has create-deployment, resize`},
		{"-f needs --callback", []string{"-f", "../../examples/operators/memcached.yaml", "--object", obj}, "choose one with --callback: create-deployment, resize"},
		{"an event the callback does not handle is refused", []string{"-f", "../../examples/operators/memcached.yaml", "--callback", "create-deployment", "--event", "sync", "--object", obj}, "callback create-deployment does not handle sync, only create"},
		{"an operator the file lacks is refused with the names it has", []string{"-f", "../../examples/operators/memcached.yaml", "--operator", "memcachd", "--callback", "create-deployment", "--object", obj}, `-f ../../examples/operators/memcached.yaml has no operator "memcachd"; it defines memcached`},
		{"an object of a kind the operator does not watch is refused", []string{"-f", "../../examples/operators/memcached.yaml", "--callback", "create-deployment", "--object", callTestdata + "configmap.yaml"}, "--object is a ConfigMap v1, but operator memcached watches Memcached cache.example.com/v1alpha1"},
		{"the object file must exist", []string{"--url", "{}", "--event", "create", "--object", "missing.yaml"}, "no such file"},
		{"--object holds exactly one object", []string{"--url", "{}", "--event", "sync", "--object", callTestdata + "pods.yaml"}, "want exactly one object, got 4"},
		{"a CRD of another kind is refused", []string{"--url", "{}", "--event", "sync", "--object", callTestdata + "configmap.yaml", "--crd", memcachedCRD}, "but the object is a ConfigMap"},
		{"an unknown output format is refused", []string{"--url", "{}", "--event", "create", "--object", obj, "-o", "xml"}, `--output "xml"`},
		{"an unknown flag is a usage error", []string{"--url", "{}", "--bogus"}, "unknown flag"},
		{"a URL that is not http(s) is a usage error", []string{"--url", "ftp://x", "--event", "create", "--object", obj}, `scheme "ftp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recordingHandler{answer: answerJSON(200, `{}`)}
			srv := httptest.NewServer(h)
			defer srv.Close()
			args := slices.Clone(tt.args)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "{}", srv.URL)
			}
			r := runCall(t, args...)
			if r.code != exitUsage || r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
				t.Errorf("exit %d error %v, want exit 2 with %q", r.code, r.err, tt.wantErr)
			}
			if n := len(h.received()); n != 0 {
				t.Errorf("handler got %d requests, want none", n)
			}
		})
	}
}

// `gateway call --hmac-secret-file F` signs as the gateway signs with a
// Secret holding F's bytes (kubectl create secret --from-file=key=F), and
// a handler that reads F by the documented rule (surrounding ASCII
// whitespace dropped) accepts it.
func TestCallCommandSignsAsTheGatewayDoesWithASecretOfTheSameBytes(t *testing.T) {
	tests := []struct {
		name, file, handlerKey string
	}{
		{"a hex key from openssl rand -hex, with its newline", "9f86d081884c7d65aa3e1b2c\n", "9f86d081884c7d65aa3e1b2c"},
		{"a raw key without newline", "raw-key", "raw-key"},
		{"a raw key between ASCII blanks", " \traw-key\r\n", "raw-key"},
		{"a raw key ending in a no-break space, which is not ASCII whitespace", "raw-key\u00a0\n", "raw-key\u00a0"},
		{"a whsec key with its newline", "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=\n", "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			h := &recordingHandler{answer: answerJSON(200, `{}`)}
			srv := httptest.NewServer(h)
			defer srv.Close()
			r := runCall(t, "--url", srv.URL, "--event", "create", "--object", callTestdata+"memcached.yaml", "--hmac-secret-file", path)
			got := h.received()
			if r.code != 0 || len(got) != 1 {
				t.Fatalf("exit %d (%v) after %d requests, want 0 after 1\nstderr:\n%s", r.code, r.err, len(got), r.stderr)
			}
			for who, secret := range map[string]string{"the gateway, given a Secret of the file's bytes,": tt.file, "a handler reading the file": tt.handlerKey} {
				v, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: []byte(secret)})
				if err != nil {
					t.Fatal(err)
				}
				if err := v.Verify(got[0].header, got[0].body); err != nil {
					t.Errorf("%s signs otherwise than gateway call: %v", who, err)
				}
			}
		})
	}
}
