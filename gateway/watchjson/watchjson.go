// Package watchjson watches a resource through the API server's JSON watch
// stream, decoding each event in one pass into an Unstructured object.
//
// client-go's dynamic watch reads every event four times over: the framer
// scans the stream for the frame's end, the serializer scans the frame to
// find its kind and again to decode it into a metav1.WatchEvent (copying
// the object's bytes), and then scans and decodes the object itself. About
// two thirds of the gateway's watch decoding went to the first three; here
// the frame's end is found by counting brackets (frames.go) and the frame
// decoded once, straight into maps.
package watchjson

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	kjson "sigs.k8s.io/json"

	"github.com/opgate/opgate/gateway/jsonscan"
	"github.com/opgate/opgate/internal/jsondec"
)

// versionV1 and parameters encode ListOptions as the dynamic client does.
var versionV1 = schema.GroupVersion{Version: "v1"}

func parameterCodec() runtime.ParameterCodec {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, versionV1)
	return runtime.NewParameterCodec(scheme)
}

// Watcher lists and opens watches through a REST client made like the
// dynamic client's (dynamic.ConfigFor): its rate limiter and error
// decoding, on whichever connection that client has.
type Watcher struct {
	rc     rest.Interface
	params runtime.ParameterCodec
	// attempts and pause: how often, and how far apart, a watch whose
	// connection is lost on the way is tried before Watch gives up
	// (rest.Request.Watch's defaults: its 10 retries are 11 tries, 1 s
	// apart); giving up answers an empty watch, as rest.Request.Watch does,
	// or the last error when lastError is set.
	attempts  int
	pause     time.Duration
	lastError bool
	// dropManagedFields: objects come without metadata.managedFields.
	dropManagedFields bool
}

// Option configures a Watcher.
type Option func(*Watcher)

// DropManagedFields delivers objects without metadata.managedFields, cut
// from the event's bytes before they are decoded: for informers that
// would drop them anyway, and where they are most of the object (one
// entry per writer) and so most of the decoding.
func DropManagedFields() Option { return func(w *Watcher) { w.dropManagedFields = true } }

// Attempts sets how often a watch whose connection is lost on the way is
// tried (11 by default, as rest.Request.Watch), and makes Watch answer the
// last try's error instead of an empty watch: for a caller that retries on
// its own schedule (1) and reports why the watch could not be opened.
func Attempts(n int) Option {
	return func(w *Watcher) { w.attempts, w.lastError = max(n, 1), true }
}

// New returns a Watcher over rc.
func New(rc rest.Interface, opts ...Option) *Watcher {
	w := &Watcher{rc: rc, params: parameterCodec(), attempts: 11, pause: time.Second}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Watch starts a watch of gvr in namespace ("" for all) with opts, as
// dynamic.ResourceInterface.Watch does. Unlike it, opening the watch takes
// a token of the client's rate limiter (rest.Request.Stream does): one
// per watch, which the reflector opens every few minutes.
func (w *Watcher) Watch(ctx context.Context, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	if err := validNamespace(namespace); err != nil {
		return nil, err
	}
	opts.Watch = true
	var body io.ReadCloser
	for attempt := 1; ; attempt++ {
		var err error
		body, err = w.rc.Get().AbsPath(segments(gvr, namespace)...).
			SpecificallyVersionedParams(&opts, w.params, versionV1).
			// Whatever else the client may accept (CBOR), this decoder
			// reads JSON.
			SetHeader("Accept", "application/json").
			MaxRetries(w.retryAfterRetries()).
			Stream(ctx)
		if err == nil {
			break
		}
		if !utilnet.IsProbableEOF(err) && !utilnet.IsTimeout(err) {
			return nil, err
		}
		// As rest.Request.Watch: a connection lost on the way is tried
		// again, and in the end an empty watch, which the reflector
		// opens again.
		if attempt >= w.attempts {
			if w.lastError && attempt == 1 {
				return nil, fmt.Errorf("watch not opened: %w", err)
			}
			if w.lastError {
				return nil, fmt.Errorf("watch not opened after %d tries: %w", attempt, err)
			}
			return watch.NewEmptyWatch(), nil
		}
		select {
		case <-ctx.Done():
			return watch.NewEmptyWatch(), nil
		case <-time.After(w.pause):
		}
	}
	// Decoding errors are reported as client-go's watch reports them.
	dec := NewDecoder(body)
	dec.dropManagedFields = w.dropManagedFields
	return watch.NewStreamWatcher(dec,
		apierrors.NewClientErrorReporter(http.StatusInternalServerError, http.MethodGet, "ClientWatchDecoding")), nil
}

// List lists gvr in namespace ("" for all) with opts, as
// dynamic.ResourceInterface.List does; with Attempts, in one request (for
// a caller that retries on its own schedule), else client-go's up to 11.
func (w *Watcher) List(ctx context.Context, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	if err := validNamespace(namespace); err != nil {
		return nil, err
	}
	var out unstructured.UnstructuredList
	if err := w.rc.Get().AbsPath(segments(gvr, namespace)...).
		SpecificallyVersionedParams(&opts, w.params, versionV1).
		MaxRetries(w.retryAfterRetries()).
		Do(ctx).Into(&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// retryAfterRetries is how often client-go itself tries a request again
// that the server answered with Retry-After (and, for a list, one whose
// connection was lost): its default 10, or none for a caller that retries
// on its own schedule (Attempts), which caps the server's delay.
func (w *Watcher) retryAfterRetries() int {
	if w.lastError {
		return 0
	}
	return 10
}

// validNamespace: as the dynamic client, a namespace must be a path
// segment ("..", "a/b" would change the path AbsPath joins).
func validNamespace(namespace string) error {
	if msgs := rest.IsValidPathSegmentName(namespace); len(msgs) != 0 {
		return fmt.Errorf("invalid namespace %q: %v", namespace, msgs)
	}
	return nil
}

func segments(gvr schema.GroupVersionResource, namespace string) []string {
	out := []string{"api"}
	if gvr.Group != "" {
		out = []string{"apis", gvr.Group}
	}
	out = append(out, gvr.Version)
	if namespace != "" {
		out = append(out, "namespaces", namespace)
	}
	return append(out, gvr.Resource)
}

// Decoder reads watch events from a JSON stream ({"type": …, "object": …}
// one after the other). It implements watch.Decoder.
type Decoder struct {
	body              io.ReadCloser
	frames            *frameReader
	dropManagedFields bool
}

// NewDecoder decodes the events of body; Close closes it.
func NewDecoder(body io.ReadCloser) *Decoder {
	return &Decoder{body: body, frames: newFrames(body)}
}

type event struct {
	Type   watch.EventType `json:"type"`
	Object map[string]any  `json:"object"`
}

// Decode returns the next event, its object an *unstructured.Unstructured
// (a *metav1.Status for a Status).
// The stream's own errors (io.EOF at its end) are returned as they are.
func (d *Decoder) Decode() (watch.EventType, runtime.Object, error) {
	frame, err := d.frames.next()
	if err != nil {
		return "", nil, err
	}
	return decodeEvent(frame, d.dropManagedFields)
}

func decodeEvent(frame []byte, dropManagedFields bool) (watch.EventType, runtime.Object, error) {
	ev, err := readEvent(frame, dropManagedFields)
	if err != nil {
		return "", nil, fmt.Errorf("unable to decode watch event: %w", err)
	}
	switch ev.Type {
	case watch.Added, watch.Modified, watch.Deleted, watch.Error, watch.Bookmark:
	default:
		return "", nil, fmt.Errorf("got invalid watch event type: %q", ev.Type)
	}
	if ev.Object == nil {
		return "", nil, fmt.Errorf("unable to decode watch event: %s event without an object", ev.Type)
	}
	u := &unstructured.Unstructured{Object: ev.Object}
	if u.GetKind() == "" {
		return "", nil, fmt.Errorf("unable to decode watch event: Object 'Kind' is missing in %s", snippet(frame))
	}
	if u.GetAPIVersion() == "" {
		return "", nil, fmt.Errorf("unable to decode watch event: Object 'apiVersion' is missing in %s", snippet(frame))
	}
	if u.GetKind() == "Status" {
		// As the dynamic client decodes it (an ERROR event's object):
		// metav1's unversioned kinds are typed, whatever their apiVersion.
		status := &metav1.Status{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(ev.Object, status); err != nil {
			return "", nil, fmt.Errorf("unable to decode watch event: %w", err)
		}
		return ev.Type, status, nil
	}
	return ev.Type, u, nil
}

// readEvent decodes frame, refusing it unless it is valid JSON (frameReader
// does not check). Numbers come as int64 where they fit, float64
// otherwise, keys case-sensitively: what unstructured's own JSON decoding
// gives.
func readEvent(frame []byte, dropManagedFields bool) (event, error) {
	var ev event
	if dropManagedFields {
		// Cut managedFields from the bytes rather than decode and drop it;
		// where the scanner cannot tell (escaped keys, keys given twice),
		// decode all and drop it from the map. The frame is checked as
		// json.Decoder checked it: the bytes cut (and the commas around
		// them) with the whole frame, else the event around the object
		// here and the object by its decoding.
		if typ, objStart, objEnd, ok := jsonscan.EventObjectAt(frame); ok {
			obj := frame[objStart:objEnd]
			if start, end, ok := jsonscan.ManagedFieldsSpan(obj); ok {
				var valid bool
				if start == end {
					valid = jsonscan.ValidAround(frame, objStart, objEnd) // the object is checked by its decoding
				} else {
					valid = json.Valid(frame) // the bytes cut are checked by nothing else
				}
				if !valid {
					return ev, kjson.UnmarshalCaseSensitivePreserveInts(frame, &ev) // for its error
				}
				if start != end {
					obj = append(append(make([]byte, 0, len(obj)-(end-start)), obj[:start]...), obj[end:]...)
				}
				ev.Type = watch.EventType(typ)
				if m, ok := jsondec.Object(obj, jsondec.PreserveInts); ok {
					ev.Object = m
					return ev, nil
				}
				// null, not an object, broken or nested past jsondec's
				// limit: as the API machinery takes it.
				return ev, kjson.UnmarshalCaseSensitivePreserveInts(obj, &ev.Object)
			}
		}
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(frame, &ev); err != nil {
		return ev, err
	}
	if dropManagedFields {
		if md, ok := ev.Object["metadata"].(map[string]any); ok {
			delete(md, "managedFields")
		}
	}
	return ev, nil
}

func snippet(b []byte) string {
	const max = 200
	b = bytes.TrimSpace(b)
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// Close closes the stream.
func (d *Decoder) Close() { _ = d.body.Close() }
