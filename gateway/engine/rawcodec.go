package engine

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opgate/opgate/gateway/jsonscan"
	"github.com/opgate/opgate/gateway/watchjson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
)

// rawCodec decodes what the API server answers to the list and watch of
// one child kind into rawChild objects, rawChildList lists and
// metav1.Status (error bodies, ERROR watch events), and watch frames into
// metav1.WatchEvent. It is the NegotiatedSerializer of the child
// informers' REST clients (rawinformer.go); it encodes nothing.
type rawCodec struct {
	gvk        schema.GroupVersionKind
	apiVersion string // gvk's
	what       string // "deployments.apps in namespace shop": named in errors
}

func newRawCodec(gvk schema.GroupVersionKind, what string) rawCodec {
	return rawCodec{gvk: gvk, apiVersion: gvk.GroupVersion().String(), what: what}
}

// rawChildList is a list of a child kind.
type rawChildList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []*rawChild
}

func (l *rawChildList) DeepCopyObject() runtime.Object {
	out := &rawChildList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy(), Items: make([]*rawChild, len(l.Items))}
	for i, it := range l.Items {
		out.Items[i] = it.DeepCopyObject().(*rawChild)
	}
	return out
}

var (
	_ runtime.Serializer           = rawCodec{}
	_ runtime.NegotiatedSerializer = rawCodec{}
)

// Decode decodes into into when it is a *metav1.WatchEvent or a
// *metav1.Status; otherwise by the document's kind.
func (c rawCodec) Decode(data []byte, _ *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	switch t := into.(type) {
	case *metav1.WatchEvent:
		if err := c.decodeEvent(data, t); err != nil {
			return nil, nil, err
		}
		return t, nil, nil
	case *metav1.Status:
		if err := kjson.UnmarshalCaseSensitivePreserveInts(data, t); err != nil {
			return nil, nil, c.malformed("status", err)
		}
		return t, nil, nil
	}
	d, err := decodeDoc(data)
	if err != nil {
		return nil, nil, c.malformed("answer", err)
	}
	switch {
	case d.Kind == "Status":
		st := &metav1.Status{}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(data, st); err != nil {
			return nil, nil, c.malformed("status", err)
		}
		return st, nil, nil
	case (d.Items != nil || d.Kind == c.gvk.Kind+"List") && d.Kind != c.gvk.Kind:
		// A list, also one without items (an empty list, as the dynamic
		// client takes it).
		l, err := c.decodeList(d)
		return l, nil, err
	}
	o, err := newRawChild(d, data, "", "")
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", c.what, err)
	}
	c.share(o)
	return o, nil, nil
}

// share replaces o's apiVersion and kind strings by the codec's when
// equal: one copy for every cached object.
func (c rawCodec) share(o *rawChild) {
	if o.Kind == c.gvk.Kind {
		o.Kind = c.gvk.Kind
	}
	if o.APIVersion == c.apiVersion {
		o.APIVersion = c.apiVersion
	}
}

func (c rawCodec) malformed(what string, err error) error {
	return fmt.Errorf("cannot decode the API server's %s for %s: %w", what, c.what, err)
}

func (c rawCodec) decodeList(d *rawDoc) (*rawChildList, error) {
	var items []rawSpan
	if d.Items != nil {
		if err := kjson.UnmarshalCaseSensitivePreserveInts(d.Items, &items); err != nil {
			return nil, c.malformed("list", err)
		}
	}
	l := &rawChildList{
		TypeMeta: metav1.TypeMeta{APIVersion: d.APIVersion, Kind: d.Kind},
		ListMeta: metav1.ListMeta{ResourceVersion: d.Metadata.ResourceVersion, Continue: d.Metadata.Continue,
			RemainingItemCount: d.Metadata.RemainingItemCount},
		Items: make([]*rawChild, 0, len(items)),
	}
	itemKind := strings.TrimSuffix(d.Kind, "List")
	for i, it := range items {
		id, err := decodeDoc(it)
		if err != nil {
			return nil, c.malformed(fmt.Sprintf("list item %d", i), err)
		}
		o, err := newRawChild(id, it, d.APIVersion, itemKind)
		if err != nil {
			return nil, fmt.Errorf("%s: list item %d: %w", c.what, i, err)
		}
		c.share(o)
		l.Items = append(l.Items, o)
	}
	return l, nil
}

// watchFrame is a watch event's JSON; the object stays a slice of the
// frame, decoded (and copied) by the embedded decoder right after.
type watchFrame struct {
	Type   string  `json:"type"`
	Object rawSpan `json:"object"`
}

// decodeEvent reads a watch event's type and finds its object, which the
// embedded decoder decodes (and checks) next.
func (c rawCodec) decodeEvent(data []byte, into *metav1.WatchEvent) error {
	var f watchFrame
	// The frame reader (watchjson.Framer) leaves the syntax check to this
	// decoding: the object is checked by the embedded decoder, the event
	// around it here.
	if typ, start, end, ok := jsonscan.EventObjectAt(data); ok && jsonscan.ValidAround(data, start, end) {
		f.Type, f.Object = typ, data[start:end]
	} else if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &f); err != nil {
		return c.malformed("watch event", err)
	}
	if len(f.Object) == 0 {
		return c.malformed("watch event", errors.New("no object"))
	}
	into.Type, into.Object = f.Type, runtime.RawExtension{Raw: f.Object}
	return nil
}

// Encode is not supported: the child informers only read.
func (c rawCodec) Encode(runtime.Object, io.Writer) error {
	return errors.New("the child informers' codec encodes nothing")
}

func (c rawCodec) Identifier() runtime.Identifier { return "opgate-raw-child" }

func (c rawCodec) SupportedMediaTypes() []runtime.SerializerInfo {
	return []runtime.SerializerInfo{{
		MediaType: "application/json", MediaTypeType: "application", MediaTypeSubType: "json",
		EncodesAsText: true, Serializer: c,
		StreamSerializer: &runtime.StreamSerializerInfo{EncodesAsText: true, Serializer: c, Framer: watchjson.Framer},
	}}
}

func (c rawCodec) EncoderForVersion(e runtime.Encoder, _ runtime.GroupVersioner) runtime.Encoder {
	return e
}

func (c rawCodec) DecoderToVersion(d runtime.Decoder, _ runtime.GroupVersioner) runtime.Decoder {
	return d
}
