package invariant

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
)

// Outcome is how one call ended, from the handler's side.
type Outcome string

// The outcomes a Recorder tells apart.
const (
	// Succeeded: a 2xx answer without error that the gateway was still
	// waiting for.
	Succeeded Outcome = "succeeded"
	// Requeued: succeeded, but asked to be called again (requeueAfter, or
	// finalized: false on a delete), so the next call is not a repeat.
	Requeued Outcome = "requeued"
	// Failed: a non-2xx answer, an answer with error, or one the gateway
	// would refuse.
	Failed Outcome = "failed"
	// Abandoned: the gateway stopped waiting (timeout, connection closed,
	// process killed) before the handler answered.
	Abandoned Outcome = "abandoned"
	// Unreadable: the request itself could not be decoded.
	Unreadable Outcome = "unreadable"
)

// ChildRef names a child by apiVersion, kind, namespace and name.
type ChildRef struct {
	APIVersion, Kind, Namespace, Name string
}

func (c ChildRef) String() string {
	if c.Namespace == "" {
		return c.APIVersion + "/" + c.Kind + " " + c.Name
	}
	return c.APIVersion + "/" + c.Kind + " " + c.Namespace + "/" + c.Name
}

// Call is one request the handler received and what it answered.
type Call struct {
	Seq             int // order of the answers, from 1
	ObjectUID       types.UID
	Namespace, Name string
	Event           callbacks.Event
	Callback        string
	Delivery        string // the request's uid, the same on every retry
	Attempt         int
	Essence         string // digest of the request object's essence
	ResourceVersion string
	Generation      int64
	At              time.Time // when the answer was given
	Code            int
	Outcome         Outcome
	// Status is the answer's status patch; nil when it had none.
	Status map[string]any
	// Children is the answer's children when it had the key (HasChildren).
	Children    []ChildRef
	HasChildren bool
}

// Recorder is an http.Handler wrapper that logs every call. It is safe
// for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	calls []Call
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Wrap returns h with every call recorded: h sees the request unchanged,
// and its answer is passed to the gateway as written.
func (r *Recorder) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		call := Call{Outcome: Unreadable}
		var cbReq callbacks.Request
		if err == nil && json.Unmarshal(body, &cbReq) == nil {
			call = callOf(&cbReq)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		tee := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tee, req)
		if call.Outcome != Unreadable {
			call.Code = tee.status()
			call.Outcome, call.Status, call.Children, call.HasChildren = judge(call.Code, tee.body.Bytes())
			if tee.hijacked || req.Context().Err() != nil {
				call.Outcome = Abandoned
			}
		}
		r.add(call)
	})
}

// Add records a call made some other way (a handler that is not an
// http.Handler); Seq and At are set here.
func (r *Recorder) Add(c Call) { r.add(c) }

func (r *Recorder) add(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.Seq = len(r.calls) + 1
	if c.At.IsZero() {
		c.At = time.Now()
	}
	r.calls = append(r.calls, c)
}

// Calls returns a copy of the calls, in the order they were answered.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

func callOf(req *callbacks.Request) Call {
	c := Call{Event: req.Event, Callback: req.Callback, Delivery: req.UID, Attempt: req.Attempt}
	if req.Object != nil {
		c.ObjectUID, c.Namespace, c.Name = req.Object.GetUID(), req.Object.GetNamespace(), req.Object.GetName()
		c.ResourceVersion, c.Generation = req.Object.GetResourceVersion(), req.Object.GetGeneration()
		c.Essence = EssenceOf(req.Object)
	}
	return c
}

// judge classifies an answer as the gateway would (docs/contract.md,
// "Errors and retries"), as far as the handler's side can tell.
func judge(code int, body []byte) (Outcome, map[string]any, []ChildRef, bool) {
	if code < 200 || code > 299 {
		return Failed, nil, nil, false
	}
	resp, err := callbacks.DecodeResponse(body)
	if err != nil {
		return Failed, nil, nil, false
	}
	if resp.Error != nil {
		return Failed, resp.Status, nil, false
	}
	outcome := Succeeded
	if resp.RequeueAfter != "" || (resp.Finalized != nil && !*resp.Finalized) {
		outcome = Requeued
	}
	if resp.Children == nil {
		return outcome, resp.Status, nil, false
	}
	refs := make([]ChildRef, 0, len(*resp.Children))
	for _, ch := range *resp.Children {
		refs = append(refs, refOf(ch))
	}
	return outcome, resp.Status, refs, true
}

func refOf(u *unstructured.Unstructured) ChildRef {
	return ChildRef{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// teeWriter passes the answer through as the handler writes it (a slow or
// streaming body stays slow) and keeps a copy. Unwrap lets the handler
// reach Flush and Hijack through http.ResponseController, so a handler
// that closes the connection mid-body still can.
type teeWriter struct {
	http.ResponseWriter
	code     int
	body     bytes.Buffer
	hijacked bool
}

func (w *teeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack marks the call abandoned: whatever the handler writes on the raw
// connection is not an answer the recorder can judge.
func (w *teeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *teeWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
