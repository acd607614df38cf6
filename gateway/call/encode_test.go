package call

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
)

// The request the client sends is byte for byte json.Marshal of the
// callbacks.Request, whatever it holds.
func TestEncodeRequestEqualsMarshal(t *testing.T) {
	full := memcachedRequest()
	full.APIVersion, full.Kind, full.Deadline = callbacks.APIVersion, callbacks.RequestKind, now
	full.OldUnavailable = true
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "c"}, "data": map[string]any{"html": "<a href=\"x\">&</a>", "sep": "\u2028", "f": 1.5, "i": int64(-3)}}}
	full.Children = map[string]map[string]*unstructured.Unstructured{"v1/ConfigMap": {"c": cm, "gone": nil, "empty": {}}, "v1/Secret": nil, "v1/Pod": {}}
	full.Related = map[string]map[string]*unstructured.Unstructured{"v1/ConfigMap": {"other/c": cm}}

	tests := []struct {
		name string
		req  *callbacks.Request
	}{
		{"every field", full},
		{"create: no old, no diff, no children", testRequest("u1", 1)},
		{"nil object", &callbacks.Request{UID: "u2"}},
		{"objects without maps", &callbacks.Request{UID: "u3", Object: &unstructured.Unstructured{}, Old: &unstructured.Unstructured{}}},
		{"empty maps kept apart from nil", &callbacks.Request{UID: "u4", Object: &unstructured.Unstructured{Object: map[string]any{}},
			Old: &unstructured.Unstructured{Object: map[string]any{}}, Children: map[string]map[string]*unstructured.Unstructured{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeRequest(tt.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encodeRequest:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// Every field of callbacks.Request, filled, is sent as encoding/json
// sends it: a field added to the contract cannot go missing from the
// hand-written encoder. A field of a type this test cannot fill fails it.
func TestEncodeRequestSendsEveryFieldOfRequest(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"}}}
	var req callbacks.Request
	v := reflect.ValueOf(&req).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Interface().(type) {
		case string, callbacks.Event:
			f.SetString(name + " <&>")
		case int:
			f.SetInt(int64(i + 1))
		case bool:
			f.SetBool(true)
		case time.Time:
			f.Set(reflect.ValueOf(now))
		case *unstructured.Unstructured:
			f.Set(reflect.ValueOf(obj))
		case []callbacks.DiffOp:
			f.Set(reflect.ValueOf([]callbacks.DiffOp{{Op: callbacks.OpChange, Path: ".spec.size", Old: json.RawMessage(`1`), New: json.RawMessage(` 3 `)}}))
		case map[string]map[string]*unstructured.Unstructured:
			f.Set(reflect.ValueOf(map[string]map[string]*unstructured.Unstructured{"v1/ConfigMap": {name: obj}}))
		default:
			t.Fatalf("field %s of type %s: fill it here and write it in encodeRequest", name, f.Type())
		}
	}
	want, err := json.Marshal(&req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeRequest(&req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encodeRequest:\n got %s\nwant %s", got, want)
	}
}

// Children held as the API server's JSON are sent as they are, and read
// by a handler as the same objects as children held as maps.
func TestChildrenAsJSONAreSentAsTheObjectsTheyAre(t *testing.T) {
	cmJSON := `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","labels":{"b":"2","a":"1"}},"data":{"f":"1.5","n":"a \"quoted\" <value>"}}`
	var cm unstructured.Unstructured
	if err := cm.UnmarshalJSON([]byte(cmJSON)); err != nil {
		t.Fatal(err)
	}
	req := testRequest("u1", 1)
	req.Children = map[string]map[string]*unstructured.Unstructured{"v1/ConfigMap": {"c": &cm, "gone": nil}, "v1/Secret": {}}
	asMaps, err := encodeRequest(req, nil)
	if err != nil {
		t.Fatal(err)
	}
	asJSON, err := encodeRequest(req, Children{"v1/ConfigMap": {"c": json.RawMessage(cmJSON), "gone": nil}, "v1/Secret": {}})
	if err != nil {
		t.Fatal(err)
	}
	var got, want callbacks.Request
	if err := json.Unmarshal(asJSON, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(asMaps, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("children as JSON sent %s\nwant the same request as %s", asJSON, asMaps)
	}
	if !bytes.Contains(asJSON, []byte(`"labels":{"b":"2","a":"1"}`)) {
		t.Errorf("the child's JSON was not sent as it is: %s", asJSON)
	}
}
