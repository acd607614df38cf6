package engine

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/opgate/opgate/gateway/jsonscan"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "sigs.k8s.io/json"
)

// rawChild is a child as its informer caches it: the object's JSON as the
// API server sent it, less metadata.managedFields, and its metadata
// decoded. Nearly everything the engine does with a cached child reads
// only the metadata (owner index, foreign-child check, unchanged-child
// check, pruning); the JSON is decoded whole (whole) only where a child
// goes to a handler or into the sync digest. A Deployment kept this way
// costs a fraction of the memory and decoding time of a map.
type rawChild struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	// raw is the whole object's JSON without managedFields. Copies share
	// it: it is never modified.
	raw []byte
}

var _ metav1.Object = (*rawChild)(nil)

// DeepCopyObject copies the metadata; the JSON is immutable and shared.
func (r *rawChild) DeepCopyObject() runtime.Object {
	if r == nil {
		return nil
	}
	return &rawChild{TypeMeta: r.TypeMeta, ObjectMeta: *r.ObjectMeta.DeepCopy(), raw: r.raw}
}

// whole decodes the child as the dynamic client decodes an object.
func (r *rawChild) whole() (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(r.raw); err != nil {
		return nil, fmt.Errorf("decode cached %s %s: %w", r.Kind, metaKey(r), err)
	}
	return u, nil
}

// metaKey is an object's informer cache key.
func metaKey(o metav1.Object) string {
	if ns := o.GetNamespace(); ns != "" {
		return ns + "/" + o.GetName()
	}
	return o.GetName()
}

// rawDoc is what decoding reads of an object, a list or a Status: its
// kind and metadata. encoding/json skips every other member (spec,
// status, ...) without building anything.
type rawDoc struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Metadata   rawMeta `json:"metadata"`
	Items      rawSpan `json:"items"`
}

// rawMeta is an object's metadata without managedFields (only noted), or
// a list's metadata (continue, remainingItemCount, resourceVersion).
type rawMeta struct {
	metav1.ObjectMeta
	ManagedFields      presence `json:"managedFields"`
	Continue           string   `json:"continue"`
	RemainingItemCount *int64   `json:"remainingItemCount"`
}

// presence notes that a member was there, without decoding it.
type presence bool

func (p *presence) UnmarshalJSON([]byte) error { *p = true; return nil }

// rawSpan keeps a member's JSON as a slice of the input, not a copy: it
// is read before the input is (the watch decoder reuses its buffer).
type rawSpan []byte

func (s *rawSpan) UnmarshalJSON(b []byte) error { *s = b; return nil }

// decodeDoc reads data's kind and metadata, case-sensitively as the API
// server does. It fails on malformed JSON anywhere in data.
func decodeDoc(data []byte) (*rawDoc, error) {
	var d rawDoc
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// newRawChild makes a cached child of the object d was decoded from: a
// copy of data without managedFields. An object with neither apiVersion
// nor kind gets the given ones when they are set (items of a built-in
// kind's list, as the dynamic client does); otherwise it is refused.
func newRawChild(d *rawDoc, data []byte, apiVersion, kind string) (*rawChild, error) {
	var raw []byte
	switch {
	case bool(d.Metadata.ManagedFields):
		var err error
		if raw, err = jsonscan.WithoutManagedFields(data); err != nil {
			return nil, err
		}
	default:
		raw = bytes.Clone(data)
	}
	if d.Kind == "" && d.APIVersion == "" && kind != "" {
		d.Kind, d.APIVersion = kind, apiVersion
		raw = withTypeMeta(raw, apiVersion, kind)
	}
	if d.Kind == "" {
		return nil, fmt.Errorf("object %s has no kind", metaKey(&d.Metadata.ObjectMeta))
	}
	return &rawChild{TypeMeta: metav1.TypeMeta{APIVersion: d.APIVersion, Kind: d.Kind}, ObjectMeta: d.Metadata.ObjectMeta, raw: raw}, nil
}

// withTypeMeta inserts apiVersion and kind as the first members of the
// JSON object raw (valid, so its first non-space byte is '{').
func withTypeMeta(raw []byte, apiVersion, kind string) []byte {
	head, _ := json.Marshal(apiVersion)
	k, _ := json.Marshal(kind)
	i := bytes.IndexByte(raw, '{') + 1
	rest := raw[i:]
	sep := ","
	if len(bytes.TrimSpace(rest)) == 1 { // "}": the object was empty
		sep = ""
	}
	out := make([]byte, 0, len(raw)+len(head)+len(k)+len(`"apiVersion":,"kind":,`))
	out = append(out, raw[:i]...)
	out = append(out, `"apiVersion":`...)
	out = append(out, head...)
	out = append(out, `,"kind":`...)
	out = append(out, k...)
	out = append(out, sep...)
	return append(out, rest...)
}
