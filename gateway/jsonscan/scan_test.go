package jsonscan

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	kjson "sigs.k8s.io/json"
)

// The scanner agrees with a JSON decoder on every valid input and never
// panics on an invalid one (the framer passes only valid frames on, but
// nothing may crash on a broken one).
func FuzzRawScanAgreesWithDecoding(f *testing.F) {
	for _, seed := range []string{
		`{"type":"ADDED","object":{"kind":"Deployment","metadata":{"name":"m","managedFields":[{"manager":"opgate","fieldsV1":{"f:spec":{}}}],"uid":"u"},"spec":{"replicas":3}}}`,
		`{"object":{"kind":"K","metadata":{"managedFields":[]}},"type":"BOOKMARK"}`,
		`{"type":"A\u0044DED","object":{}}`,
		`{"type":"ADDED","object":{"kind":"K","metadata":{"name":"a\"}","managedFields":null}}}`,
		` { "type" : "DELETED" , "object" : { "metadata" : { "managedFields" : [ { } ] , "uid" : "u" } } } `,
		`{"type":"ADDED","obj`, `{"type":`, `{`, `"`, ``, `[]`,
		// broken input that once ran the scanner past the end
		`00metadata"0{0managedFields`, `{"type":"ADDED","object":"\`,
		// keys given twice: decoders take the last
		`{"metadata":{"managedFields":[],"name":"a","managedFields":[{"m":1}]}}`,
		`{"metadata":{"managedFields":[]},"metadata":{"name":"b","managedFields":[{"m":1}]}}`,
		`{"type":"ADDED","object":{"kind":"K"},"type":"DELETED"}`,
		"{\"type\":\"\xeb\",\"object\":{}}",
		`{"metadata":{"name":"none"}}`, `{"metadata":{"managed\u0046ields":[1]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, objStart, objEnd, ok := EventObjectAt(data)
		obj := data[objStart:objEnd]
		start, end, cut := ManagedFieldsSpan(data)
		if cut && (start < 0 || end > len(data) || start > end) {
			t.Fatalf("span [%d,%d) outside %d bytes", start, end, len(data))
		}
		if !json.Valid(data) {
			return
		}
		var f struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if ok && kjson.UnmarshalCaseSensitivePreserveInts(data, &f) == nil && (typ != f.Type || !bytes.Equal(obj, f.Object)) {
			t.Errorf("scanner: %q %s; decoder: %q %s", typ, obj, f.Type, f.Object)
		}
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			return
		}
		md, _ := m["metadata"].(map[string]any)
		if _, has := md["managedFields"]; !has {
			if cut && start != end {
				t.Errorf("span [%d,%d) to cut from %s, which has no managedFields", start, end, data)
			}
			return
		}
		if cut && start == end {
			t.Errorf("nothing to cut from %s, which has managedFields", data)
		}
		out, err := WithoutManagedFields(data)
		if err != nil {
			t.Fatal(err)
		}
		delete(md, "managedFields")
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("cut %s from %s: %v", out, data, err)
		}
	})
}
